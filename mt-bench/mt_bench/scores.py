"""Judgments to numbers: FastChat's verdict parsers, the MT-bench averages and pairwise win rates.

A single-answer judgment ends with "Rating: [[N]]". As in FastChat, the first "[[N]]" counts, else
the first "[N]"; a judgment with neither scores -1. Averages leave the -1s out, as FastChat's
show_result.py does: turn 1, turn 2, overall (all judged turns of all questions pooled, which is
the MT-bench score) and per category (both turns pooled).

A pairwise judgment says "[[A]]", "[[B]]" or "[[C]]" (tie), else it is an "error". A comparison is won
only when both of its games (the two answer orders) name the same winner, else it is a tie; one
with an error in either game is left out; all as in FastChat's show_result.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mt_bench.data import CATEGORIES

RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


def parse_rating(judgment: str) -> float:
    """The judge's rating, or -1 when the judgment has none."""
    match = RATING.search(judgment) or RATING_BACKUP.search(judgment)
    return float(match.group(1)) if match else -1.0


def parse_verdict(judgment: str) -> str:
    """A pairwise judgment's verdict: "A", "B", "tie" or "error"."""
    for tag, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if tag in judgment:
            return verdict
    return "error"


@dataclass
class Summary:
    """One model's MT-bench scores (NaN where nothing was judged)."""

    model: str
    turn1: float
    turn2: float
    overall: float
    categories: dict[str, float] = field(default_factory=dict)
    judged: int = 0  # judgments with a rating, counted in the averages
    unparsed: int = 0  # judgments without a rating (-1), left out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(judgments: list[dict], categories: dict[int, str], judge_model: str | None = None) -> dict[str, Summary]:
    """Summaries by model from single-answer judgment records (FastChat's format).

    categories maps question_id to category. Only `judge_model`'s judgments count when it is given. A
    judgment repeated for the same (judge, model, question, turn) counts once, the last one."""
    unique = {}
    for j in judgments:
        if judge_model is None or j["judge"][0] == judge_model:
            unique[(tuple(j["judge"]), j["model"], j["question_id"], j["turn"])] = j
    by_model: dict[str, list[dict]] = {}
    for j in unique.values():
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
        )
    return summaries


def _category_order(category: str) -> tuple[int, str]:
    return (CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES), category)


@dataclass
class WinRate:
    """A model's record against a baseline, over the comparisons both of whose games are judged."""

    model: str
    baseline: str
    win: int
    loss: int
    tie: int
    error: int  # comparisons left out: a game without a verdict

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


def win_rates(games: list[dict], judge_model: str | None = None) -> dict[tuple[str, str], WinRate]:
    """WinRates by (model, baseline) from pairwise game records (one line per game, see prompts.py)."""
    comparisons: dict[tuple, dict[int, str]] = {}
    for g in games:
        if judge_model is None or g["judge"][0] == judge_model:
            key = (g["judge"][0], g["model_1"], g["model_2"], g["question_id"], g["turn"])
            comparisons.setdefault(key, {})[g["game"]] = g["winner"]
    rates: dict[tuple[str, str], WinRate] = {}
    for (_, model, baseline, _, _), winners in comparisons.items():
        r = rates.setdefault((model, baseline), WinRate(model, baseline, 0, 0, 0, 0))
        if len(winners) < 2:
            continue  # the other game is not judged yet: a rerun of the judge adds it
        g1, g2 = winners[1], winners[2]
        if "error" in (g1, g2):
            r.error += 1
        elif g1 == "tie" or g1 != g2:
            r.tie += 1
        elif g1 == "model_1":
            r.win += 1
        else:
            r.loss += 1
    return rates
