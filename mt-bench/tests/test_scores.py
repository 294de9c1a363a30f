"""Rating parsing follows FastChat's rules; the averages match values computed by hand."""

import math

import pytest

from mt_bench.scores import parse_rating, parse_verdict, summarize, win_rates


@pytest.mark.parametrize(
    "judgment, rating",
    [
        ("The answer is correct.\n\nRating: [[7]]", 7.0),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [[10]]", 10.0),
        ("I would give [[3]] at first, but on reflection [[9]].", 3.0),  # the first [[N]] counts
        ("Rating: [6]", 6.0),  # FastChat's fallback: [N]
        ("Score [2] but final Rating: [[4]]", 4.0),  # [[N]] wins over an earlier [N]
        ("Rating: [[ 7 ]]", -1.0),  # no spaces allowed, as in FastChat
        ("Rating: 7/10", -1.0),
        ("[[A]]", -1.0),
        ("", -1.0),
    ],
)
def test_parse_rating(judgment, rating):
    assert parse_rating(judgment) == rating


def J(model, qid, turn, score, judge="gpt-4"):
    return {"model": model, "question_id": qid, "turn": turn, "score": score, "judge": [judge, "single-v1"]}


CATEGORIES = {1: "writing", 2: "writing", 3: "math"}
JUDGMENTS = [
    J("a", 1, 1, 8),
    J("a", 1, 2, 6),
    J("a", 2, 1, 10),
    J("a", 2, 2, -1),
    J("a", 3, 1, 3),
    J("a", 3, 2, 5),
    J("b", 1, 1, 4),
    J("b", 1, 1, 6),
    J("b", 1, 2, 2),  # b's first turn-1 judgment is repeated: the last counts
    J("b", 3, 1, 9, judge="gpt-3.5-turbo"),
]


def test_summaries_by_hand():
    s = summarize(JUDGMENTS, CATEGORIES, judge_model="gpt-4")
    a = s["a"]
    assert a.turn1 == pytest.approx((8 + 10 + 3) / 3)  # 7.0
    assert a.turn2 == pytest.approx((6 + 5) / 2)  # 5.5: the unparsed -1 is left out
    assert a.overall == pytest.approx(32 / 5)  # 6.4: all rated turns pooled, not (7.0 + 5.5) / 2
    assert a.categories == pytest.approx({"writing": 8.0, "math": 4.0})
    assert list(a.categories) == ["writing", "math"]  # MT-bench's category order
    assert (a.judged, a.unparsed) == (5, 1)
    b = s["b"]
    assert (b.turn1, b.turn2, b.overall, b.categories, b.judged) == (6.0, 2.0, 4.0, {"writing": 4.0}, 2)


def test_judge_filter_and_nothing_rated():
    assert summarize(JUDGMENTS, CATEGORIES)["b"].turn1 == pytest.approx(7.5)  # both judges count: (6 + 9) / 2
    s = summarize([J("c", 1, 1, -1)], CATEGORIES)["c"]
    assert math.isnan(s.overall) and (s.judged, s.unparsed) == (0, 1)


@pytest.mark.parametrize(
    "judgment, verdict",
    [
        ("Assistant A is better. [[A]]", "A"),
        ("[[B]]", "B"),
        ("It is a tie: [[C]]", "tie"),
        ("[[A]] or maybe [[B]]", "A"),  # FastChat checks [[A]] first
        ("Assistant A", "error"),
        ("[A]", "error"),
    ],
)
def test_parse_verdict(judgment, verdict):
    assert parse_verdict(judgment) == verdict


def G(qid, turn, game, winner, model="m"):
    return {
        "question_id": qid,
        "turn": turn,
        "game": game,
        "winner": winner,
        "model_1": model,
        "model_2": "base",
        "judge": ["gpt-4", "pair-v2"],
    }


def test_win_rates_by_hand():
    games = [
        G(1, 1, 1, "model_1"),
        G(1, 1, 2, "model_1"),  # both games agree: win
        G(1, 2, 1, "model_2"),
        G(1, 2, 2, "model_2"),  # loss
        G(2, 1, 1, "model_1"),
        G(2, 1, 2, "model_2"),  # games disagree: tie
        G(2, 2, 1, "tie"),
        G(2, 2, 2, "tie"),  # tie
        G(3, 1, 1, "model_1"),
        G(3, 1, 2, "model_1"),  # win
        G(3, 2, 1, "error"),
        G(3, 2, 2, "model_1"),  # left out
        G(4, 1, 1, "model_1"),  # game 2 not judged yet: left out
    ]
    r = win_rates(games)[("m", "base")]
    assert (r.win, r.loss, r.tie, r.error) == (2, 1, 2, 1)
    assert r.rates() == pytest.approx({"win_rate": 2 / 5, "loss_rate": 1 / 5, "win_rate_adjusted": (2 + 1) / 5})
