"""Rating parsing follows FastChat's rules; the averages match values computed by hand (and
test_fastchat.py holds them against FastChat's own show_result.py)."""

import math

import pytest

from mt_bench.scores import parse_rating, parse_verdict, repeated, summarize, win_rates


@pytest.mark.parametrize(
    "judgment, rating",
    [
        ("The answer is correct.\n\nRating: [[7]]", 7),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [[10]]", 10),
        ("I would give [[3]] at first, but on reflection [[9]].", 3),  # the first [[N]] counts
        ("Rating: [6]", 6),  # FastChat's fallback: [N]
        ("Score [2] but final Rating: [[4]]", 4),  # [[N]] wins over an earlier [N]
        ("Rating: [[ 7 ]]", -1),  # no spaces allowed, as in FastChat
        ("Rating: 7/10", -1),
        ("[[A]]", -1),
        ("", -1),
    ],
)
def test_parse_rating(judgment, rating):
    assert parse_rating(judgment) == rating
    assert type(parse_rating(judgment)) is type(rating)  # 7 stays 7 in the file, as FastChat writes it


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
    J("b", 1, 2, 2),  # b's first turn-1 judgment is repeated: both count, as in FastChat
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
    assert (b.turn1, b.turn2, b.overall, b.categories, b.judged, b.turns) == (5.0, 2.0, 4.0, {"writing": 4.0}, 3, 2)
    assert repeated(JUDGMENTS, ("judge", "model", "question_id", "turn")) == 1


def test_judge_filter_and_nothing_rated():
    assert summarize(JUDGMENTS, CATEGORIES)["b"].turn1 == pytest.approx(19 / 3)  # both judges count: (4 + 6 + 9) / 3
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


def C(qid, g1, g2, model_1="m", model_2="base"):
    return {
        "question_id": qid,
        "turn": 1,
        "g1_winner": g1,
        "g2_winner": g2,
        "model_1": model_1,
        "model_2": model_2,
        "judge": ["gpt-4", "pair-v2"],
    }


def test_win_rates_by_hand():
    comparisons = [
        C(1, "model_1", "model_1"),  # both games agree: win
        C(2, "model_2", "model_2"),  # loss
        C(3, "model_1", "model_2"),  # games disagree: tie
        C(4, "tie", "tie"),  # tie
        C(5, "model_1", "model_1"),  # win
        C(6, "error", "model_1"),  # left out
        C(7, "model_2", "model_2", model_1="base", model_2="other"),  # not against m
    ]
    r = win_rates(comparisons, baseline="base")
    assert set(r) == {"m", "other"}  # the baseline has no row
    assert (r["m"].win, r["m"].loss, r["m"].tie, r["m"].error) == (2, 1, 2, 1)
    assert r["m"].rates() == pytest.approx({"win_rate": 2 / 5, "loss_rate": 1 / 5, "win_rate_adjusted": (2 + 1) / 5})
    assert (r["other"].win, r["other"].loss) == (1, 0)
    everyone = win_rates(comparisons)  # pairwise-all: both models of every comparison
    assert (everyone["base"].win, everyone["base"].loss, everyone["base"].tie) == (1, 3, 2)
    assert set(win_rates(comparisons, model_list=["base"])) == {"base", "other"}  # lines whose model_1 is base
