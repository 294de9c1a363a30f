"""Answer the MT-bench questions with a model behind an API, as FastChat's gen_api_answer.py does.

Both turns of a question are one conversation in FastChat's conversation template for the model's
name (gpt-4, gpt-3.5-turbo: chatgpt's, system message "You are a helpful assistant."), sent as chat
messages to any OpenAI-compatible endpoint through the judge's client (retries, Ctrl-C and SIGTERM
as in judge.py), at FastChat's per-category temperature (or --force_temperature), at most
--max_tokens per turn. Answers go to <out_dir>/model_answer/<model>.jsonl in FastChat's format, for
instance as the pairwise baseline. Each turn is kept in <answer file>.partial the moment it arrives,
until its question is whole; a rerun asks only for the turns not answered yet, so none is paid twice.

    OPENAI_API_KEY=sk-... python -m mt_bench.api_answer --model gpt-3.5-turbo --data_dir ../shared/data/mt_bench
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import shortuuid

from mt_bench import cli
from mt_bench.cli import UsageError
from mt_bench.client import APIArgs, ChatClient
from mt_bench.data import (
    OUTPUT_DIR,
    TEMPERATURE,
    append_jsonl,
    load_answers,
    numbered_records,
    partial_path,
    prune_jsonl,
    questions_to_answer,
    reorg_answers,
)
from mt_bench.pool import run_jobs


@dataclass
class APIAnswerArgs(APIArgs):
    model: str = field(default="gpt-3.5-turbo", metadata={"help": "model name sent to the endpoint, and its id"})
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl (default: FastChat's)"})
    out_dir: str = field(
        default=str(OUTPUT_DIR), metadata={"help": "answers go to <out_dir>/model_answer/<model>.jsonl"}
    )
    answer_file: str | None = field(
        default=None, metadata={"help": "explicit answer file instead of the one in out_dir"}
    )
    num_choices: int = field(default=1, metadata={"help": "answers per question"})
    force_temperature: float | None = field(
        default=None, metadata={"help": "one temperature for every category instead of FastChat's"}
    )
    max_tokens: int = field(default=1024, metadata={"help": "answer length limit per turn (FastChat: 1024)"})
    question_begin: int | None = field(default=None, metadata={"help": "slice of the questions: first index"})
    question_end: int | None = field(default=None, metadata={"help": "slice of the questions: end index"})

    def __post_init__(self):
        super().__post_init__()
        for name in ("num_choices", "max_tokens"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least 1")
        if self.force_temperature is not None and self.force_temperature < 0:
            raise UsageError(f"--force_temperature {self.force_temperature}: must be at least 0")


def load_kept_turns(partial: Path, model: str) -> dict[tuple[int, int, int], str]:
    """The turns answered by earlier runs: text by (question_id, choice index, turn index)."""
    kept = {}
    for lineno, r in numbered_records(partial) if partial.exists() else []:
        try:
            if r["model_id"] == model:
                kept[(int(r["question_id"]), int(r["index"]), int(r["turn"]))] = str(r["text"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(
                f"{partial}:{lineno}: not a kept turn (model_id, question_id, index, turn, text): "
                "delete the line, its turn is asked for again"
            ) from None
    return kept


def answer_question(
    client: ChatClient, question: dict, args: APIAnswerArgs, kept: dict, record: Callable[[dict], None]
) -> dict:
    """FastChat's model_answer record for one question; `record(turn)` keeps each new turn."""
    from fastchat.model import get_conversation_template  # slow import: only when asked for

    category = question["category"]
    temperature = args.force_temperature if args.force_temperature is not None else TEMPERATURE.get(category, 0.7)
    choices = []
    for index in range(args.num_choices):
        conv = get_conversation_template(args.model)
        turns = []
        for turn, query in enumerate(question["turns"]):
            conv.append_message(conv.roles[0], query)
            conv.append_message(conv.roles[1], None)
            key = (question["question_id"], index, turn)
            text = kept.get(key)
            if text is None:
                text = client.complete(conv.to_openai_api_messages(), temperature, args.max_tokens)
                record({"model_id": args.model, "question_id": key[0], "index": index, "turn": turn, "text": text})
            conv.update_last_message(text)
            turns.append(text)
        choices.append({"index": index, "turns": turns})
    return {
        "question_id": question["question_id"],
        "answer_id": shortuuid.uuid(),
        "model_id": args.model,
        "choices": choices,
        "tstamp": time.time(),
    }


def api_answer(args: APIAnswerArgs) -> Path:
    answer_file = Path(args.answer_file or Path(args.out_dir) / "model_answer" / f"{args.model}.jsonl")
    todo = questions_to_answer(args.data_dir, args.question_begin, args.question_end, answer_file, args.model)
    partial = partial_path(answer_file)
    kept = load_kept_turns(partial, args.model)
    if not todo:
        return answer_file
    client = args.client(args.model)
    lock = threading.Lock()

    def keep(turn: dict) -> None:
        with lock:
            append_jsonl(partial, [turn])

    def answer(question: dict) -> None:
        record = answer_question(client, question, args, kept, keep)
        with lock:
            append_jsonl(answer_file, [record])

    try:
        jobs = [lambda q=q: answer(q) for q in todo]
        run_jobs(client, jobs, args.parallel, f"answering ({args.model})", "questions", answer_file)
    finally:
        if answer_file.exists():  # whatever stopped the run: the whole questions leave the partial file
            reorg_answers(answer_file)
            answered = set(load_answers(answer_file))
            prune_jsonl(partial, lambda turn: turn.get("question_id") not in answered)
    return answer_file


def main(argv: list[str] | None = None) -> Path:
    return api_answer(cli.parse_args(APIAnswerArgs, argv))


if __name__ == "__main__":
    cli.run(main)
