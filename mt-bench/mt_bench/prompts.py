"""The judge's messages, filled in exactly as FastChat's llm_judge fills them: one Match per judgment.

Single-answer grading (the MT-bench score): turn 1 with the `single-v1` prompt, turn 2 with
`single-v1-multi-turn` (the whole conversation, judged on its second answer); math, reasoning and
coding questions use the `single-math-v1` variants, which show the reference answers.

Pairwise grading (FastChat's `pairwise-baseline` and `pairwise-all`): `pair-v2` / `pair-math-v1` and
their -multi-turn variants, each comparison asked twice with the answers swapped (game 1 shows
model_1 as Assistant A, game 2 as Assistant B), as FastChat does to cancel the judge's position bias.
Only turns 1 and 2 are judged, as in FastChat.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mt_bench.cli import UsageError
from mt_bench.scores import parse_rating, parse_verdict

NEED_REF_CATS = ("math", "reasoning", "coding")  # judged against reference answers, as in FastChat


@dataclass
class Match:
    """One judgment to ask for."""

    messages: list[dict]  # system and user message for the judge
    record: dict  # FastChat's record fields known before the judge answers
    parse: Callable[[str], dict]  # the judgment's verdict fields, e.g. {"score": 7.0}


def fill(prompt: dict, question: dict, answers: dict[str, list[str]], ref: list[str] | None, turn: int) -> list[dict]:
    """The judge's messages; `answers` maps a prompt's answer suffix ("" single, "_a"/"_b" pairwise) to turns."""
    if turn == 1:
        kwargs = {"question": question["turns"][0], **{f"answer{s}": a[0] for s, a in answers.items()}}
    else:
        kwargs = {
            "question_1": question["turns"][0],
            "question_2": question["turns"][1],
            **{f"answer{s}_{i + 1}": a[i] for s, a in answers.items() for i in (0, 1)},
        }
    if ref:
        kwargs.update({f"ref_answer_{i + 1}": r for i, r in enumerate(ref[:turn])})
    return [
        {"role": "system", "content": prompt["system_prompt"]},
        {"role": "user", "content": prompt["prompt_template"].format(**kwargs)},
    ]


def prompt_name(kind: str, ref: bool, turn: int) -> str:
    """FastChat's judge prompt name: kind is "single" or "pair" (whose general prompt is pair-v2)."""
    version = "math-v1" if ref else ("v1" if kind == "single" else "v2")
    return f"{kind}-{version}" + ("-multi-turn" if turn == 2 else "")


def single_match(
    model: str,
    question: dict,
    answer: list[str],
    ref: list[str] | None,
    turn: int,
    prompts: dict[str, dict],
    judge_model: str,
) -> Match:
    name = prompt_name("single", ref is not None, turn)
    record = {"question_id": question["question_id"], "model": model, "judge": [judge_model, name], "turn": turn}
    return Match(
        fill(prompts[name], question, {"": answer}, ref, turn),
        record,
        lambda judgment: {"score": parse_rating(judgment)},
    )


def pair_match(
    model: str,
    baseline: str,
    question: dict,
    answer: list[str],
    base: list[str],
    ref: list[str] | None,
    turn: int,
    game: int,
    prompts: dict[str, dict],
    judge_model: str,
) -> Match:
    name = prompt_name("pair", ref is not None, turn)
    shown = {"_a": answer, "_b": base} if game == 1 else {"_a": base, "_b": answer}
    record = {
        "question_id": question["question_id"],
        "model_1": model,
        "model_2": baseline,
        "game": game,
        "judge": [judge_model, name],
        "turn": turn,
    }
    # Assistant A is model_1 in game 1 and model_2 in game 2.
    winner = {"A": "model_1", "B": "model_2"} if game == 1 else {"A": "model_2", "B": "model_1"}
    winner.update(tie="tie", error="error")
    return Match(
        fill(prompts[name], question, shown, ref, turn),
        record,
        lambda judgment: {"winner": winner[parse_verdict(judgment)]},
    )


def answered(
    questions: list[dict], answers: dict[int, dict], answer_file: Path, refs: dict[int, list[str]]
) -> Iterator[tuple[dict, list[str], list[str] | None, int]]:
    """(question, answer turns, reference turns or None, turns to judge) for each answered question."""
    missing = 0
    for q in questions:
        qid = q["question_id"]
        if qid not in answers:
            missing += 1
            continue
        turns, n = answers[qid]["choices"][0]["turns"], min(len(q["turns"]), 2)
        if len(turns) < n:
            raise UsageError(
                f"{answer_file}: question {qid} has {len(turns)} answer turns, needs {n} "
                "(regenerate it: delete its line and rerun mt_bench.generate)"
            )
        if q["category"] in NEED_REF_CATS and qid not in refs:
            raise UsageError(f"no reference answer for question {qid} ({q['category']}); see --ref_model")
        yield q, turns, refs.get(qid) if q["category"] in NEED_REF_CATS else None, n
    if missing:
        warnings.warn(f"{answer_file}: {missing} questions have no answer and are not judged", stacklevel=2)
