"""Grade model answers with an LLM judge, as FastChat's gen_judgment.py does.

`--mode single` (the MT-bench score) rates each answered turn from 1 to 10; `--mode pairwise-baseline`
compares each answered turn with a baseline's (gpt-3.5-turbo's answers by default, put in
<out_dir>/model_answer/ like any other), twice, once in each order. The prompts are FastChat's (see
prompts.py). The judge is any OpenAI-compatible chat-completions endpoint, asked at temperature 0 for
at most 2048 tokens, as FastChat asks GPT-4.

Every judgment is appended to <out_dir>/model_judgment/<judge_model>_single.jsonl (pairwise: one line
per game in <judge_model>_pair_games.jsonl) the moment it arrives, and a rerun asks only for the
judgments not yet there: a crash never pays twice for a judgment, and failed ones (FastChat would
record "$ERROR$" for them) are asked for again by the next run.

    OPENAI_API_KEY=sk-... python -m mt_bench.judge --model_list llama3-8b-base llama3-8b-badam \\
        --judge_model gpt-4 --data_dir ../shared/data/mt_bench

Answers are read from <out_dir>/model_answer/<model_id>.jsonl (what mt_bench.generate writes).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from transformers import HfArgumentParser

from mt_bench.client import ChatClient, JudgeAPIError
from mt_bench.data import (OUTPUT_DIR, append_jsonl, load_answers, load_judge_prompts, load_questions,
                           load_reference_answers, read_jsonl, resolve_data_dir)
from mt_bench.prompts import NEED_REF_CATS, Match, answered, pair_match, single_match

# The fields that tell one judgment from another, in both modes' records.
KEY_FIELDS = ("judge", "model", "model_1", "model_2", "question_id", "turn", "game")


@dataclass
class JudgeArgs:
    model_list: list[str] = field(metadata={"help": "model ids whose answers are judged"})
    mode: str = field(default="single", metadata={"help": "single (MT-bench score) or pairwise-baseline"})
    baseline_model: str = field(default="gpt-3.5-turbo", metadata={"help": "pairwise-baseline: the model compared with"})
    judge_model: str = field(default="gpt-4", metadata={"help": "model name sent to the endpoint"})
    api_base: str = field(default="https://api.openai.com/v1", metadata={"help": "OpenAI-compatible base URL"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the API key"})
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl etc. (default: FastChat's)"})
    out_dir: str = field(default=str(OUTPUT_DIR), metadata={"help": "reads model_answer/, writes model_judgment/"})
    judgment_file: str | None = field(default=None, metadata={"help": "explicit judgment file instead of the one in out_dir"})
    ref_model: str = field(default="gpt-4", metadata={"help": "reference answers: reference_answer/<ref_model>.jsonl"})
    parallel: int = field(default=4, metadata={"help": "judgments requested at once"})
    temperature: float = field(default=0.0, metadata={"help": "judge temperature (FastChat: 0)"})
    max_tokens: int = field(default=2048, metadata={"help": "judge reply limit (FastChat: 2048)"})
    timeout: float = field(default=120.0, metadata={"help": "seconds for one request"})
    max_retries: int = field(default=8, metadata={"help": "retries of one request on 429/5xx/timeouts/bad bodies"})
    backoff: float = field(default=2.0, metadata={"help": "seconds before the first retry, doubled after each"})


def record_key(record: dict) -> tuple:
    return tuple(json.dumps(record.get(k)) for k in KEY_FIELDS)


def make_matches(args: JudgeArgs, data_dir: Path) -> list[Match]:
    """Every judgment of the mode for the models' answers (reference answers where FastChat uses them)."""
    questions = load_questions(data_dir)
    prompts = load_judge_prompts(data_dir)
    refs = load_reference_answers(data_dir, args.ref_model) if any(q["category"] in NEED_REF_CATS for q in questions) else {}
    models = args.model_list + ([args.baseline_model] if args.mode == "pairwise-baseline" else [])
    files = {m: Path(args.out_dir) / "model_answer" / f"{m}.jsonl" for m in models}
    for model, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"no answers for model {model!r}: {path} (run mt_bench.generate first)")
    answers = {m: load_answers(p) for m, p in files.items()}
    matches = []
    for model in args.model_list:
        for q, turns, ref, n in answered(questions, answers[model], files[model], refs):
            if args.mode == "single":
                matches += [single_match(model, q, turns, ref, turn, prompts, args.judge_model) for turn in range(1, n + 1)]
                continue
            base = answers[args.baseline_model].get(q["question_id"])
            if base is None or len(base["choices"][0]["turns"]) < n:
                raise ValueError(f"{files[args.baseline_model]}: no complete answer to question {q['question_id']}")
            matches += [pair_match(model, args.baseline_model, q, turns, base["choices"][0]["turns"], ref, turn, game,
                                   prompts, args.judge_model) for turn in range(1, n + 1) for game in (1, 2)]
    return matches


def judge_one(client: ChatClient, match: Match, args: JudgeArgs) -> dict:
    """A judgment record in FastChat's format."""
    judgment = client.complete(match.messages, args.temperature, args.max_tokens)
    return {**match.record, "user_prompt": match.messages[1]["content"], "judgment": judgment,
            **match.parse(judgment), "tstamp": time.time()}


def run_matches(client: ChatClient, matches: list[Match], judgment_file: Path, args: JudgeArgs) -> list[str]:
    """Judge matches concurrently, appending each judgment as it arrives; the failures' messages."""
    failures: list[str] = []
    recorded: set[Future] = set()

    def record(future: Future) -> None:
        recorded.add(future)
        try:
            append_jsonl(judgment_file, [future.result()])
        except JudgeAPIError as e:
            failures.append(str(e))
            tqdm.write(f"judgment failed, a rerun will ask again: {e}")

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(judge_one, client, m, args) for m in matches]
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc=f"judging ({args.judge_model})"):
                record(future)
        except KeyboardInterrupt:
            # Requests already sent are paid for: stop sending new ones, keep what the sent ones bring.
            for future in futures:
                future.cancel()
            for future in futures:
                if future not in recorded and not future.cancelled():
                    record(future)
            raise
    return failures


def judge(args: JudgeArgs) -> Path:
    if args.mode not in ("single", "pairwise-baseline"):
        raise ValueError(f"--mode {args.mode!r}: use single or pairwise-baseline")
    suffix = "single" if args.mode == "single" else "pair_games"
    judgment_file = Path(args.judgment_file or Path(args.out_dir) / "model_judgment" / f"{args.judge_model}_{suffix}.jsonl")
    done = {record_key(j) for j in (read_jsonl(judgment_file) if judgment_file.is_file() else [])}
    matches = [m for m in make_matches(args, resolve_data_dir(args.data_dir))
               if record_key(m.record) not in done]
    print(f"{len(matches)} judgments to ask {args.judge_model} for; already in {judgment_file}: {len(done)}")
    if not matches:
        return judgment_file
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        warnings.warn(f"${args.api_key_env} is not set: sending requests without an API key", stacklevel=2)
    client = ChatClient(args.api_base, args.judge_model, api_key, args.timeout, args.max_retries, args.backoff)
    try:
        failures = run_matches(client, matches, judgment_file, args)
    finally:
        client.close()
    if failures:
        raise JudgeAPIError(f"{len(failures)} of {len(matches)} judgments failed (rerun to ask for them again); "
                            f"first: {failures[0]}")
    return judgment_file


def main(argv: list[str] | None = None) -> Path:
    (args,) = HfArgumentParser(JudgeArgs).parse_args_into_dataclasses(args=argv)
    return judge(args)


if __name__ == "__main__":
    main(sys.argv[1:])
