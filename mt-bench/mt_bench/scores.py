"""Judgments to numbers: FastChat's verdict parsers, the MT-bench averages and pairwise win rates.

A single-answer judgment ends with "Rating: [[N]]". As in FastChat, the first "[[N]]" counts, else
the first "[N]", kept as written (7 stays an int, 8.5 a float); a judgment with neither scores -1.
Averages leave the -1s out and count every line of the file, a repeated one too, as FastChat's
show_result.py does: turn 1, turn 2, overall (all judged turns of all questions pooled, which is the
MT-bench score) and per category (both turns pooled).

A pairwise judgment says "[[A]]", "[[B]]" or "[[C]]" (tie), else it is an "error". A comparison (one
line of FastChat's pairwise file: both games, the two answer orders) is won only when both games name
the same winner, else it is a tie; one with an error in either game is left out; it counts for both
of its models; all as in FastChat's show_result.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mt_bench.data import CATEGORIES

RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


def parse_rating(judgment: str) -> int | float:
    """The judge's rating as written (an int unless it has a decimal point), or -1 when it has none."""
    match = RATING.search(judgment) or RATING_BACKUP.search(judgment)
    if not match:
        return -1
    number = match.group(1)
    return float(number) if "." in number else int(number)


def parse_verdict(judgment: str) -> str:
    """A pairwise judgment's verdict: "A", "B", "tie" or "error"."""
    for tag, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if tag in judgment:
            return verdict
    return "error"


def repeated(records: Iterable[dict], fields: tuple[str, ...]) -> int:
    """How many records repeat the `fields` of an earlier record (FastChat counts each of them again)."""
    keys = [tuple(json.dumps(r.get(f)) for f in fields) for r in records]
    return len(keys) - len(set(keys))


@dataclass
class Summary:
    """One model's MT-bench scores (NaN where nothing was judged)."""

    model: str
    turn1: float
    turn2: float
    overall: float
    categories: dict[str, float] = field(default_factory=dict)
    judged: int = 0  # judgment lines with a rating, counted in the averages
    unparsed: int = 0  # judgment lines without a rating (-1), left out
    turns: int = 0  # distinct (question, turn) judged, repeated lines counted once


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(judgments: list[dict], categories: dict[int, str], judge_model: str | None = None) -> dict[str, Summary]:
    """Summaries by model from single-answer judgment records (FastChat's format).

    categories maps question_id to category. Only `judge_model`'s judgments count when it is given."""
    by_model: dict[str, list[dict]] = {}
    for j in judgments:
        if judge_model is None or j["judge"][0] == judge_model:
            by_model.setdefault(j["model"], []).append(j)
    summaries = {}
    for model, rows in by_model.items():
        rated = [j for j in rows if j["score"] != -1]
        cats = sorted({categories[j["question_id"]] for j in rated}, key=_category_order)
        summaries[model] = Summary(
            model=model,
            turn1=_mean([j["score"] for j in rated if j["turn"] == 1]),
            turn2=_mean([j["score"] for j in rated if j["turn"] == 2]),
            overall=_mean([j["score"] for j in rated]),
            categories={c: _mean([j["score"] for j in rated if categories[j["question_id"]] == c]) for c in cats},
            judged=len(rated),
            unparsed=len(rows) - len(rated),
            turns=len({(j["question_id"], j["turn"]) for j in rows}),
        )
    return summaries


def _category_order(category: str) -> tuple[int, str]:
    return (CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES), category)


@dataclass
class WinRate:
    """A model's record over the comparisons both of whose games are judged."""

    model: str
    win: int = 0
    loss: int = 0
    tie: int = 0
    error: int = 0  # comparisons left out: a game without a verdict

    def rates(self) -> dict[str, float]:
        """win_rate, loss_rate and win_rate_adjusted (a tie counts half a win), as FastChat reports them."""
        total = self.win + self.loss + self.tie
        if not total:
            return dict.fromkeys(("win_rate", "loss_rate", "win_rate_adjusted"), math.nan)
        return {
            "win_rate": self.win / total,
            "loss_rate": self.loss / total,
            "win_rate_adjusted": (self.win + 0.5 * self.tie) / total,
        }


def win_rates(
    comparisons: list[dict],
    baseline: str | None = None,
    model_list: list[str] | None = None,
    judge_model: str | None = None,
) -> dict[str, WinRate]:
    """WinRates by model from FastChat's pairwise records, counted as its show_result.py counts them.

    With a baseline (pairwise-baseline) only the comparisons with it count and the baseline has no
    row; without (pairwise-all) every comparison does. model_list keeps the lines whose model_1 is in
    it, as FastChat's --model-list does."""
    rates: dict[str, WinRate] = {}
    for c in comparisons:
        if judge_model is not None and c["judge"][0] != judge_model:
            continue
        if model_list is not None and c["model_1"] not in model_list:
            continue
        if baseline is not None and baseline not in (c["model_1"], c["model_2"]):
            continue
        one, two = (rates.setdefault(c[m], WinRate(c[m])) for m in ("model_1", "model_2"))
        g1, g2 = c["g1_winner"], c["g2_winner"]
        if "error" in (g1, g2):
            one.error, two.error = one.error + 1, two.error + 1
        elif g1 == "tie" or g1 != g2:
            one.tie, two.tie = one.tie + 1, two.tie + 1
        else:
            winner, loser = (one, two) if g1 == "model_1" else (two, one)
            winner.win, loser.loss = winner.win + 1, loser.loss + 1
    rates.pop(baseline, None)
    return rates
