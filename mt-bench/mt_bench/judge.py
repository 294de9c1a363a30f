"""Grade model answers with an LLM judge, as FastChat's gen_judgment.py does.

`--mode single` (the MT-bench score) rates each answered turn from 1 to 10; `--mode pairwise-baseline`
compares each answered turn with a baseline's (gpt-3.5-turbo's answers by default, put in
<out_dir>/model_answer/ like any other), twice, once in each order. The prompts are FastChat's (see
prompts.py). The judge is any OpenAI-compatible chat-completions endpoint, asked at temperature 0 for
at most 2048 tokens, as FastChat asks GPT-4.

Every judgment is appended to <out_dir>/model_judgment/<judge_model>_single.jsonl (pairwise: one line
per game in <judge_model>_pair_games.jsonl) the moment it arrives, and a rerun asks only for the
judgments not yet there: a crash never pays twice for a judgment, and failed ones (FastChat would
record "$ERROR$" for them) are asked for again by the next run. On Ctrl-C or SIGTERM nothing new is
sent, the requests in flight are awaited and recorded, and the command exits saying so (status 130 or
143); an endpoint nothing listens on stops it the same way within seconds (status 2).

    OPENAI_API_KEY=sk-... python -m mt_bench.judge --model_list llama3-8b-base llama3-8b-badam \\
        --judge_model gpt-4 --data_dir ../shared/data/mt_bench

Answers are read from <out_dir>/model_answer/<model_id>.jsonl (what mt_bench.generate writes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mt_bench import cli
from mt_bench.cli import Interrupted, UsageError
from mt_bench.client import ChatClient, EndpointUnreachable, JudgeAPIError
from mt_bench.data import (
    OUTPUT_DIR,
    append_jsonl,
    check_question_ids,
    load_answers,
    load_judge_prompts,
    load_judgments,
    load_questions,
    load_reference_answers,
    resolve_data_dir,
)
from mt_bench.prompts import NEED_REF_CATS, Match, answered, pair_match, prompt_name, single_match

log = logging.getLogger(__name__)

# The fields that tell one judgment from another, in both modes' records.
KEY_FIELDS = ("judge", "model", "model_1", "model_2", "question_id", "turn", "game")


@dataclass
class JudgeArgs:
    model_list: list[str] = field(metadata={"help": "model ids whose answers are judged"})
    mode: str = field(
        default="single",
        metadata={"help": "single (MT-bench score) or pairwise-baseline", "choices": ["single", "pairwise-baseline"]},
    )
    baseline_model: str = field(
        default="gpt-3.5-turbo", metadata={"help": "pairwise-baseline: the model compared with"}
    )
    judge_model: str = field(default="gpt-4", metadata={"help": "model name sent to the endpoint"})
    api_base: str = field(default="https://api.openai.com/v1", metadata={"help": "OpenAI-compatible base URL"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the API key"})
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl etc. (default: FastChat's)"})
    out_dir: str = field(default=str(OUTPUT_DIR), metadata={"help": "reads model_answer/, writes model_judgment/"})
    judgment_file: str | None = field(
        default=None, metadata={"help": "explicit judgment file instead of the one in out_dir"}
    )
    ref_model: str = field(default="gpt-4", metadata={"help": "reference answers: reference_answer/<ref_model>.jsonl"})
    parallel: int = field(default=4, metadata={"help": "judgments requested at once"})
    temperature: float = field(default=0.0, metadata={"help": "judge temperature (FastChat: 0)"})
    max_tokens: int = field(default=2048, metadata={"help": "judge reply limit (FastChat: 2048)"})
    timeout: float = field(default=120.0, metadata={"help": "seconds for one request"})
    max_retries: int = field(
        default=8,
        metadata={
            "help": "retries of one request on 429/5xx/timeouts/bad bodies (3 failed connections in a row stop the run)"
        },
    )
    backoff: float = field(default=2.0, metadata={"help": "seconds before the first retry, doubled after each"})

    def __post_init__(self):  # checked before anything is loaded or sent
        for name, low in (("parallel", 1), ("max_tokens", 1), ("max_retries", 0), ("backoff", 0), ("temperature", 0)):
            if getattr(self, name) < low:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least {low}")
        if self.timeout <= 0:
            raise UsageError(f"--timeout {self.timeout}: must be more than 0 seconds")
        try:
            url = httpx.URL(self.api_base)
        except httpx.InvalidURL as e:
            raise UsageError(f"--api_base {self.api_base!r}: not a URL ({e})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(
                f"--api_base {self.api_base!r}: needs http:// or https:// and a host, e.g. https://api.openai.com/v1"
            )


def record_key(record: dict) -> tuple:
    return tuple(json.dumps(record.get(k)) for k in KEY_FIELDS)


def make_matches(args: JudgeArgs, data_dir: Path) -> list[Match]:
    """Every judgment of the mode for the models' answers (reference answers where FastChat uses them)."""
    questions = load_questions(data_dir)
    prompts = load_judge_prompts(data_dir)
    kind = "single" if args.mode == "single" else "pair"
    missing = {prompt_name(kind, ref, turn) for ref in (False, True) for turn in (1, 2)} - set(prompts)
    if missing:
        raise UsageError(f"judge_prompts.jsonl of {data_dir} lacks the prompts {sorted(missing)}: use FastChat's file")
    refs = (
        load_reference_answers(data_dir, args.ref_model)
        if any(q["category"] in NEED_REF_CATS for q in questions)
        else {}
    )
    models = args.model_list + ([args.baseline_model] if args.mode == "pairwise-baseline" else [])
    files = {m: Path(args.out_dir) / "model_answer" / f"{m}.jsonl" for m in models}
    for model, path in files.items():
        if not path.is_file():
            todo = (
                "put the baseline's answers there (e.g. FastChat's published ones), or see --baseline_model"
                if model not in args.model_list
                else "run mt_bench.generate first, or check --model_list and --out_dir"
            )
            raise UsageError(f"no answers for model {model!r}: {path} ({todo})")
    answers = {m: load_answers(p) for m, p in files.items()}
    for model, path in files.items():
        if not answers[model]:
            raise UsageError(f"{path}: no answers in it (run mt_bench.generate for {model!r})")
        check_question_ids(answers[model], questions, path, data_dir)
    matches = []
    for model in args.model_list:
        for q, turns, ref, n in answered(questions, answers[model], files[model], refs):
            if args.mode == "single":
                matches += [
                    single_match(model, q, turns, ref, turn, prompts, args.judge_model) for turn in range(1, n + 1)
                ]
                continue
            base = answers[args.baseline_model].get(q["question_id"])
            if base is None or len(base["choices"][0]["turns"]) < n:
                raise UsageError(f"{files[args.baseline_model]}: no complete answer to question {q['question_id']}")
            matches += [
                pair_match(
                    model,
                    args.baseline_model,
                    q,
                    turns,
                    base["choices"][0]["turns"],
                    ref,
                    turn,
                    game,
                    prompts,
                    args.judge_model,
                )
                for turn in range(1, n + 1)
                for game in (1, 2)
            ]
    return matches


def judge_one(client: ChatClient, match: Match, args: JudgeArgs) -> dict:
    """A judgment record in FastChat's format."""
    judgment = client.complete(match.messages, args.temperature, args.max_tokens)
    return {
        **match.record,
        "user_prompt": match.messages[1]["content"],
        "judgment": judgment,
        **match.parse(judgment),
        "tstamp": time.time(),
    }


def run_matches(client: ChatClient, matches: list[Match], judgment_file: Path, args: JudgeArgs) -> list[str]:
    """Judge matches concurrently, each judgment appended as it arrives; the failures' messages.

    On Ctrl-C/SIGTERM (raised as Interrupted) or an unreachable endpoint, nothing new is sent and the
    requests in flight are awaited, their judgments recorded, before the error is raised."""
    lock = threading.Lock()
    failures: list[str] = []

    def judge_and_record(match: Match) -> None:
        # Recorded by the worker, not the main thread: signals interrupt only the main thread, so a
        # judgment that arrived is never lost between its reply and its line in the file.
        record = judge_one(client, match, args)
        with lock:
            append_jsonl(judgment_file, [record])

    with (
        logging_redirect_tqdm(),
        ThreadPoolExecutor(max_workers=args.parallel) as pool,
        tqdm(total=len(matches), desc=f"judging ({args.judge_model})") as bar,
    ):
        futures = []
        try:
            for match in matches:
                futures.append(pool.submit(judge_and_record, match))
            for future in as_completed(futures):
                bar.update()
                try:
                    future.result()
                except EndpointUnreachable:
                    raise
                except JudgeAPIError as e:
                    failures.append(str(e))
                    log.warning("judgment failed, a rerun will ask again: %s", e)
        except BaseException as e:
            # Requests already sent are paid for: stop sending new ones, keep what the sent ones bring.
            client.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            await_in_flight([f for f in futures if not f.cancelled()])
            if not isinstance(e, KeyboardInterrupt):
                raise
            done = sum(f.done() and not f.cancelled() and f.exception() is None for f in futures)
            raise Interrupted(
                f"interrupted: {done} of the {len(matches)} judgments to ask for were recorded in "
                f"{judgment_file}, the requests in flight awaited; a rerun of the same command "
                "continues where it stopped"
            ) from None
    return failures


def await_in_flight(futures: list[Future]) -> None:
    """Wait for every future, whatever signals come meanwhile: the requests in flight are paid for.

    A wait on the futures, not a join of the pool's threads: Python 3.11 may take a join interrupted
    by a signal for a finished thread, and then exit before the judgment is written."""
    while True:
        try:
            wait(futures)
            return
        except KeyboardInterrupt:
            log.warning("still waiting for the requests in flight (at most --timeout seconds each)")


def judge(args: JudgeArgs) -> Path:
    pairwise = args.mode == "pairwise-baseline"
    judgment_file = Path(
        args.judgment_file
        or Path(args.out_dir) / "model_judgment" / f"{args.judge_model}_{'pair_games' if pairwise else 'single'}.jsonl"
    )
    done = {record_key(j) for j in (load_judgments(judgment_file, pairwise) if judgment_file.exists() else [])}
    matches = [m for m in make_matches(args, resolve_data_dir(args.data_dir)) if record_key(m.record) not in done]
    print(f"{len(matches)} judgments to ask {args.judge_model} for; already in {judgment_file}: {len(done)}")
    if not matches:
        return judgment_file
    api_key = os.environ.get(args.api_key_env)
    if not api_key and httpx.URL(args.api_base).host == "api.openai.com":
        raise UsageError(
            f"${args.api_key_env} is not set: export it with your OpenAI API key (or name the "
            "variable that holds it with --api_key_env)"
        )
    if not api_key:  # a local server (vLLM, the fake judge) may well need none
        warnings.warn(f"${args.api_key_env} is not set: sending requests without an API key", stacklevel=2)
    client = ChatClient(args.api_base, args.judge_model, api_key, args.timeout, args.max_retries, args.backoff)
    try:
        failures = run_matches(client, matches, judgment_file, args)
    finally:
        client.close()
    if failures:
        raise JudgeAPIError(
            f"{len(failures)} of {len(matches)} judgments failed (rerun to ask for them again); first: {failures[0]}"
        )
    return judgment_file


def main(argv: list[str] | None = None) -> Path:
    return judge(cli.parse_args(JudgeArgs, argv))


if __name__ == "__main__":
    cli.run(main)
