"""Grade model answers with an LLM judge, as FastChat's gen_judgment.py does.

`--mode single` (the MT-bench score) rates each answered turn from 1 to 10. The pairwise modes compare
two models' answers to each turn, twice, once in each order: `pairwise-baseline` each model with a
baseline (gpt-3.5-turbo's answers by default, put in <out_dir>/model_answer/ like any other),
`pairwise-all` every pair of the models. The prompts are FastChat's (see prompts.py). The judge is
any OpenAI-compatible chat-completions endpoint, asked at temperature 0 for at most 2048 tokens, as
FastChat asks GPT-4.

Judgments go to <out_dir>/model_judgment/<judge_model>_single.jsonl or <judge_model>_pair.jsonl in
FastChat's formats (pairwise: one line per comparison, with both games). Each is appended the
moment it arrives (a comparison's first game waits in <file>.partial until its second is in) and a
rerun asks only for the judgments not yet there: a crash never pays twice for a judgment, and failed
ones (FastChat would record "$ERROR$" for them) are asked for again by the next run. On Ctrl-C or
SIGTERM nothing new is sent, the requests in flight are awaited and recorded, and the command exits
saying so (status 130 or 143); an endpoint nothing listens on stops it the same way within seconds
(status 2).

    OPENAI_API_KEY=sk-... python -m mt_bench.judge --model_list llama3-8b-base llama3-8b-badam \\
        --judge_model gpt-4 --data_dir ../shared/data/mt_bench

Answers are read from <out_dir>/model_answer/<model_id>.jsonl (what mt_bench.generate and
mt_bench.api_answer write).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mt_bench import cli
from mt_bench.cli import UsageError
from mt_bench.client import APIArgs, ChatClient
from mt_bench.data import (
    OUTPUT_DIR,
    append_jsonl,
    check_question_ids,
    load_answers,
    load_judge_prompts,
    load_judgments,
    load_questions,
    load_reference_answers,
    partial_path,
    prune_jsonl,
    resolve_data_dir,
    select_questions,
)
from mt_bench.pool import run_jobs
from mt_bench.prompts import NEED_REF_CATS, Match, answered, pair_match, prompt_name, single_match

MODES = ["single", "pairwise-baseline", "pairwise-all"]
# The fields that tell one judgment (single) or comparison (pairwise) from another.
KEY_FIELDS = ("judge", "model", "model_1", "model_2", "question_id", "turn")
# FastChat's field order: the records read the same as the ones its gen_judgment.py writes.
FIELD_ORDER = ("question_id", "model", "model_1", "model_2", "game", "judge", "user_prompt", "judgment", "score")


@dataclass
class JudgeArgs(APIArgs):
    model_list: list[str] = field(metadata={"help": "model ids whose answers are judged"})
    mode: str = field(default="single", metadata={"help": "single (MT-bench score) or pairwise", "choices": MODES})
    baseline_model: str = field(
        default="gpt-3.5-turbo", metadata={"help": "pairwise-baseline: the model compared with"}
    )
    judge_model: str = field(default="gpt-4", metadata={"help": "model name sent to the endpoint"})
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl etc. (default: FastChat's)"})
    out_dir: str = field(default=str(OUTPUT_DIR), metadata={"help": "reads model_answer/, writes model_judgment/"})
    judgment_file: str | None = field(
        default=None, metadata={"help": "explicit judgment file instead of the one in out_dir"}
    )
    ref_model: str = field(default="gpt-4", metadata={"help": "reference answers: reference_answer/<ref_model>.jsonl"})
    question_begin: int | None = field(default=None, metadata={"help": "judge a slice of the questions: first index"})
    question_end: int | None = field(default=None, metadata={"help": "judge a slice of the questions: end index"})
    first_n: int | None = field(default=None, metadata={"help": "judge only the first n questions (FastChat's)"})
    temperature: float = field(default=0.0, metadata={"help": "judge temperature (FastChat: 0)"})
    max_tokens: int = field(default=2048, metadata={"help": "judge reply limit (FastChat: 2048)"})

    def __post_init__(self):
        super().__post_init__()
        for name, low in (("max_tokens", 1), ("temperature", 0), ("first_n", 1)):
            if getattr(self, name) is not None and getattr(self, name) < low:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least {low}")
        if self.mode == "pairwise-all" and len(self.model_list) < 2:
            raise UsageError("--mode pairwise-all: needs at least 2 models in --model_list")


def record_key(record: dict) -> tuple:
    return tuple(json.dumps(record.get(k)) for k in KEY_FIELDS)


def pairs(args: JudgeArgs) -> list[tuple[str, str]]:
    """(model_1, model_2) of every comparison, in FastChat's order for the mode."""
    if args.mode == "pairwise-all":
        return [(m, other) for i, m in enumerate(args.model_list) for other in args.model_list[i + 1 :]]
    return [(m, args.baseline_model) for m in args.model_list if m != args.baseline_model]


def make_matches(args: JudgeArgs, data_dir: Path) -> list[Match]:
    """Every judgment of the mode for the models' answers (reference answers where FastChat uses them)."""
    all_questions = load_questions(data_dir)
    questions = select_questions(all_questions, args.question_begin, args.question_end)[: args.first_n]
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
    models = list(dict.fromkeys(args.model_list + ([args.baseline_model] if args.mode == "pairwise-baseline" else [])))
    files = {m: Path(args.out_dir) / "model_answer" / f"{m}.jsonl" for m in models}
    for model, path in files.items():
        if not path.is_file():
            todo = (
                "put the baseline's answers there (e.g. FastChat's published ones, or mt_bench.api_answer's), "
                "or see --baseline_model"
                if model not in args.model_list
                else "run mt_bench.generate first, or check --model_list and --out_dir"
            )
            raise UsageError(f"no answers for model {model!r}: {path} ({todo})")
    answers = {m: load_answers(p) for m, p in files.items()}
    for model, path in files.items():
        if not answers[model]:
            raise UsageError(f"{path}: no answers in it (run mt_bench.generate for {model!r})")
        check_question_ids(answers[model], all_questions, path, data_dir)
    if args.mode == "single":
        return [
            single_match(model, q, turns, ref, turn, prompts, args.judge_model)
            for model in args.model_list
            for q, turns, ref, n in answered(questions, answers[model], files[model], refs)
            for turn in range(1, n + 1)
        ]
    matches = []
    for one, two in pairs(args):
        for q, turns, ref, n in answered(questions, answers[one], files[one], refs):
            other = answers[two].get(q["question_id"])
            if other is None or len(other["choices"][0]["turns"]) < n:
                raise UsageError(f"{files[two]}: no complete answer to question {q['question_id']}")
            matches += [
                pair_match(one, two, q, turns, other["choices"][0]["turns"], ref, turn, game, prompts, args.judge_model)
                for turn in range(1, n + 1)
                for game in (1, 2)
            ]
    return matches


def judge_one(client: ChatClient, match: Match, args: JudgeArgs) -> dict:
    """A judgment record in FastChat's format (for pairwise: one game's, see PairRecorder)."""
    judgment = client.complete(match.messages, args.temperature, args.max_tokens)
    fields = {
        **match.record,
        "user_prompt": match.messages[1]["content"],
        "judgment": judgment,
        **match.parse(judgment),
    }
    return {**{k: fields.pop(k) for k in FIELD_ORDER if k in fields}, **fields, "tstamp": time.time()}


class PairRecorder:
    """Writes FastChat's pairwise file, one line per comparison once both of its games are judged.

    A game whose partner is not judged yet waits in <file>.partial, so neither a crash nor Ctrl-C
    between the two games pays for one of them twice; close() keeps there only the games still
    waiting."""

    def __init__(self, path: Path, done: set[tuple]):
        self.path, self.partial, self.done = path, partial_path(path), done
        self.waiting: dict[tuple, dict[int, dict]] = {}
        for game in load_judgments(self.partial, "game") if self.partial.exists() else []:
            self.add(game, kept=True)

    def has(self, match: Match) -> bool:
        """Whether the match's game is judged (its comparison written, or the game waiting)."""
        key = record_key(match.record)
        return key in self.done or match.record["game"] in self.waiting.get(key, {})

    def add(self, game: dict, kept: bool = False) -> None:
        """Record a judged game (`kept`: read back from the partial file)."""
        key = record_key(game)
        if key in self.done:
            return
        games = self.waiting.setdefault(key, {})
        games[game["game"]] = game
        if len(games) == 2:
            append_jsonl(self.path, [comparison_record(games[1], games[2])])
            self.done.add(key)
            del self.waiting[key]
        elif not kept:
            append_jsonl(self.partial, [game])

    def close(self) -> None:
        prune_jsonl(self.partial, lambda game: record_key(game) in self.waiting)


def comparison_record(g1: dict, g2: dict) -> dict:
    """FastChat's line for a comparison, from its two games."""
    return {
        "question_id": g1["question_id"],
        "model_1": g1["model_1"],
        "model_2": g1["model_2"],
        "g1_winner": g1["winner"],
        "g2_winner": g2["winner"],
        "judge": g1["judge"],
        "g1_user_prompt": g1["user_prompt"],
        "g1_judgment": g1["judgment"],
        "g2_user_prompt": g2["user_prompt"],
        "g2_judgment": g2["judgment"],
        "turn": g1["turn"],
        "tstamp": time.time(),
    }


def judge(args: JudgeArgs) -> Path:
    kind = "single" if args.mode == "single" else "pair"
    judgment_file = Path(
        args.judgment_file or Path(args.out_dir) / "model_judgment" / f"{args.judge_model}_{kind}.jsonl"
    )
    done = {record_key(j) for j in (load_judgments(judgment_file, kind) if judgment_file.exists() else [])}
    matches = make_matches(args, resolve_data_dir(args.data_dir))
    recorder = PairRecorder(judgment_file, done) if kind == "pair" else None
    try:
        if recorder:
            matches = [m for m in matches if not recorder.has(m)]
            waiting = sum(len(games) for games in recorder.waiting.values())
            where = (
                f"comparisons already in {judgment_file}: {len(done)}, games waiting for their other game: {waiting}"
            )
        else:
            matches = [m for m in matches if record_key(m.record) not in done]
            where = f"already in {judgment_file}: {len(done)}"
        print(f"{len(matches)} judgments to ask {args.judge_model} for; {where}")
        if matches:
            run(args, matches, judgment_file, recorder)
    finally:
        if recorder:
            recorder.close()
    return judgment_file


def run(args: JudgeArgs, matches: list[Match], judgment_file: Path, recorder: PairRecorder | None) -> None:
    client = args.client(args.judge_model)
    lock = threading.Lock()

    def judge_and_record(match: Match) -> None:
        record = judge_one(client, match, args)
        with lock:
            if recorder:
                recorder.add(record)
            else:
                append_jsonl(judgment_file, [record])

    jobs = [lambda m=m: judge_and_record(m) for m in matches]
    run_jobs(client, jobs, args.parallel, f"judging ({args.judge_model})", "judgments", judgment_file)


def main(argv: list[str] | None = None) -> Path:
    return judge(cli.parse_args(JudgeArgs, argv))


if __name__ == "__main__":
    cli.run(main)
