"""Judging against a real local endpoint that fails in every way: each judgment is recorded exactly once."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mt_bench import judge, pool
from mt_bench.cli import UsageError
from mt_bench.client import JudgeAPIError
from mt_bench.data import load_judge_prompts, load_questions, load_reference_answers, read_jsonl
from mt_bench.fake_judge import FakeJudge, fake_rating, fake_verdict
from mt_bench.prompts import NEED_REF_CATS, pair_match, single_match

MT_BENCH = Path(__file__).resolve().parents[1]


def run_judge(fake, out_dir, data_dir, models, *extra):
    return judge.main(
        [
            "--model_list",
            *models,
            "--judge_model",
            "gpt-4",
            "--api_base",
            fake.api_base,
            "--data_dir",
            str(data_dir),
            "--out_dir",
            str(out_dir),
            "--parallel",
            "4",
            "--timeout",
            "0.5",
            "--backoff",
            "0.01",
            "--max_retries",
            "6",
            *extra,
        ]
    )


def test_prompts_are_filled_as_fastchat_fills_them(data_dir):
    questions = {q["question_id"]: q for q in load_questions(data_dir)}
    prompts, refs = load_judge_prompts(data_dir), load_reference_answers(data_dir)
    writing = single_match("m", questions[81], ["A1", "A2"], None, 1, prompts, "gpt-4")
    assert writing.record == {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "turn": 1}
    assert writing.messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert writing.messages[1]["content"].endswith(
        f"[Question]\n{questions[81]['turns'][0]}\n\n[The Start of Assistant's Answer]\nA1\n"
        "[The End of Assistant's Answer]"
    )
    math = single_match("m", questions[111], ["A1", "A2"], refs[111], 2, prompts, "gpt-4")
    assert math.record["judge"] == ["gpt-4", "single-math-v1-multi-turn"]
    assert math.messages[0]["content"] == prompts["single-math-v1-multi-turn"]["system_prompt"]
    q1, q2 = questions[111]["turns"]
    r1, r2 = refs[111]
    assert math.messages[1]["content"] == (
        f"<|The Start of Reference Answer|>\n\n### User:\n{q1}\n\n### Reference answer:\n{r1}\n\n### User:\n{q2}\n\n"
        f"### Reference answer:\n{r2}\n\n<|The End of Reference Answer|>\n\n\n"
        f"<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{q1}\n\n### Assistant A:\nA1\n\n"
        f"### User:\n{q2}\n\n### Assistant A:\nA2\n\n<|The End of Assistant A's Conversation with User|>"
    )


def test_pairwise_prompts_swap_the_answers(data_dir):
    questions = {q["question_id"]: q for q in load_questions(data_dir)}
    prompts = load_judge_prompts(data_dir)
    game2 = pair_match("m", "base", questions[81], ["M1", "M2"], ["B1", "B2"], None, 1, 2, prompts, "gpt-4")
    assert game2.record == {
        "question_id": 81,
        "model_1": "m",
        "model_2": "base",
        "game": 2,
        "judge": ["gpt-4", "pair-v2"],
        "turn": 1,
    }
    assert game2.messages[1]["content"] == (
        f"[User Question]\n{questions[81]['turns'][0]}\n\n[The Start of Assistant A's Answer]\nB1\n"
        "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\nM1\n[The End of Assistant B's Answer]"
    )
    assert game2.parse("[[A]]") == {"winner": "model_2"} and game2.parse("[[C]]") == {"winner": "tie"}
    refs = load_reference_answers(data_dir)
    game1 = pair_match("m", "base", questions[111], ["M1", "M2"], ["B1", "B2"], refs[111], 2, 1, prompts, "gpt-4")
    assert game1.record["judge"] == ["gpt-4", "pair-math-v1-multi-turn"]
    assert "### Assistant A:\nM2" in game1.messages[1]["content"] and refs[111][1] in game1.messages[1]["content"]
    assert game1.parse("[[A]]") == {"winner": "model_1"} and game1.parse("A is better") == {"winner": "error"}


def test_every_judgment_recorded_once_through_failures(tmp_path, data_dir, monkeypatch, answers_in):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    models = ["m1", "m2"]
    answers_in(tmp_path, data_dir, models)
    faults = ["429", "500", "ok", "malformed", "slow", "ok", "500", "429", "unrated"] * 6
    with FakeJudge(faults=faults, slow_seconds=1.0) as fake:
        path = run_judge(fake, tmp_path, data_dir, models)
    assert fake.authorization == {"Bearer sk-judge"}
    records = read_jsonl(path)
    keys = Counter((r["model"], r["question_id"], r["turn"]) for r in records)
    assert len(keys) == 2 * 80 * 2 and set(keys.values()) == {1}
    for r in records:
        category = {q["question_id"]: q["category"] for q in load_questions(data_dir)}[r["question_id"]]
        name = "single-" + ("math-" if category in NEED_REF_CATS else "") + "v1"
        assert r["judge"] == ["gpt-4", name + ("-multi-turn" if r["turn"] == 2 else "")]
    unrated = set(fake.served("unrated"))
    assert len(unrated) == 6 and {r["user_prompt"] for r in records if r["score"] == -1} == unrated
    assert all(r["score"] == fake_rating(r["user_prompt"]) for r in records if r["user_prompt"] not in unrated)
    # Each prompt got exactly one usable reply, and that reply is the one recorded.
    usable = Counter(fake.served("ok") + fake.served("unrated"))
    assert set(usable.values()) == {1} and set(usable) == {r["user_prompt"] for r in records}

    with FakeJudge() as fake:  # a rerun asks for nothing (unrated judgments are kept, as paid for)
        run_judge(fake, tmp_path, data_dir, models)
    assert fake.log == []


def test_a_crashed_run_resumes_without_paying_twice(tmp_path, data_dir, monkeypatch, answers_in):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    answers_in(tmp_path, data_dir, ["m1"])
    with FakeJudge(faults=["ok"] * 50 + ["401"] * 200) as fake:  # the key is revoked after 50 judgments
        with pytest.raises(JudgeAPIError, match="110 of 160 judgments failed"):
            run_judge(fake, tmp_path, data_dir, ["m1"])
    first = fake.served("ok")
    path = tmp_path / "model_judgment" / "gpt-4_single.jsonl"
    assert len(read_jsonl(path)) == 50
    with FakeJudge() as fake:
        run_judge(fake, tmp_path, data_dir, ["m1"])
    assert len(fake.log) == 110
    records = read_jsonl(path)
    assert len({(r["question_id"], r["turn"]) for r in records}) == len(records) == 160
    assert Counter(first + fake.served("ok")) == Counter(r["user_prompt"] for r in records)


def test_missing_answers_are_reported(tmp_path, data_dir):
    with pytest.raises(UsageError, match="no answers for model 'ghost'.*ghost.jsonl"):
        judge.main(["--model_list", "ghost", "--data_dir", str(data_dir), "--out_dir", str(tmp_path)])


def test_pairwise_comparisons_recorded_once_in_fastchats_format(tmp_path, data_dir, monkeypatch, answers_in):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    answers_in(tmp_path, data_dir, ["m1", "gpt-3.5-turbo"])
    with FakeJudge(faults=["429", "slow", "ok", "malformed", "500"] * 4, slow_seconds=1.0) as fake:
        path = run_judge(fake, tmp_path, data_dir, ["m1"], "--mode", "pairwise-baseline")
    assert path.name == "gpt-4_pair.jsonl" and not (tmp_path / "model_judgment" / "gpt-4_pair.jsonl.partial").exists()
    lines = read_jsonl(path)
    assert Counter((c["question_id"], c["turn"]) for c in lines) == {
        (qid, turn): 1 for qid in range(81, 161) for turn in (1, 2)
    }
    for c in lines:  # each game's verdict about Assistant A/B, mapped back to the models shown in that order
        assert (c["model_1"], c["model_2"]) == ("m1", "gpt-3.5-turbo")
        assert c["g1_winner"] == {"A": "model_1", "B": "model_2", "C": "tie"}[fake_verdict(c["g1_user_prompt"])]
        assert c["g2_winner"] == {"A": "model_2", "B": "model_1", "C": "tie"}[fake_verdict(c["g2_user_prompt"])]
    prompts = [c[f"g{g}_user_prompt"] for c in lines for g in (1, 2)]
    assert Counter(fake.served("ok")) == Counter(prompts)


def test_a_half_finished_comparison_is_not_paid_twice(tmp_path, data_dir, monkeypatch, answers_in):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    answers_in(tmp_path, data_dir, ["m1", "gpt-3.5-turbo"])
    with FakeJudge(faults=["ok"] * 51 + ["401"] * 400) as fake:  # an odd number of games: one is alone
        with pytest.raises(JudgeAPIError, match="judgments failed"):
            run_judge(fake, tmp_path, data_dir, ["m1"], "--mode", "pairwise-baseline")
    first = fake.served("ok")
    path = tmp_path / "model_judgment" / "gpt-4_pair.jsonl"
    waiting = read_jsonl(path.with_name(path.name + ".partial"))
    assert len(waiting) >= 1 and 2 * len(read_jsonl(path)) + len(waiting) == 51
    with FakeJudge() as fake:
        run_judge(fake, tmp_path, data_dir, ["m1"], "--mode", "pairwise-baseline")
    assert len(fake.log) == 2 * 160 - 51  # the waiting games were not asked for again
    assert not path.with_name(path.name + ".partial").exists()
    lines = read_jsonl(path)
    assert len({(c["question_id"], c["turn"]) for c in lines}) == len(lines) == 160
    prompts = [c[f"g{g}_user_prompt"] for c in lines for g in (1, 2)]
    assert Counter(first + fake.served("ok")) == Counter(prompts)


def test_ctrl_c_keeps_the_judgments_already_paid_for(tmp_path, data_dir, monkeypatch, answers_in):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    answers_in(tmp_path, data_dir, ["m1"])
    real_as_completed = pool.as_completed

    def interrupted_after_3(futures, **kw):  # Ctrl-C while 4 requests are in flight
        for i, future in enumerate(real_as_completed(futures, **kw)):
            if i == 3:
                raise KeyboardInterrupt
            yield future

    monkeypatch.setattr(pool, "as_completed", interrupted_after_3)
    with FakeJudge(faults=["slow"] * 160, slow_seconds=0.2) as fake:  # slow, but within the timeout
        with pytest.raises(KeyboardInterrupt, match="a rerun of the same command continues where it stopped"):
            run_judge(fake, tmp_path, data_dir, ["m1"], "--timeout", "10")
    records = read_jsonl(tmp_path / "model_judgment" / "gpt-4_single.jsonl")
    assert 3 < len(records) < 160  # the requests not yet sent were cancelled
    assert Counter(r["user_prompt"] for r in records) == Counter(fake.served("slow"))  # none lost


def judge_process(fake, out_dir, data_dir, *extra) -> subprocess.Popen:
    """`python -m mt_bench.judge` as a user starts it."""
    env = {**os.environ, "PYTHONPATH": str(MT_BENCH), "OPENAI_API_KEY": "sk-judge", "BADAM_DEBUG": ""}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mt_bench.judge",
            "--model_list",
            "m1",
            "--data_dir",
            str(data_dir),
            "--out_dir",
            str(out_dir),
            "--api_base",
            fake.api_base,
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_records_the_requests_in_flight_and_a_rerun_completes(tmp_path, data_dir, monkeypatch, answers_in):
    answers_in(tmp_path, data_dir, ["m1"])
    with FakeJudge(faults=["slow"] * 160, slow_seconds=1.0) as fake:
        process = judge_process(fake, tmp_path, data_dir, "--parallel", "4", "--timeout", "30")
        while len(fake.log) < 6:  # the first 4 are in, the next ones in flight
            assert process.poll() is None, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # the replies in flight take 1 s: a second signal must not cut the wait short
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "still waiting for the requests in flight" in err
    assert err.strip().splitlines()[-1].startswith("interrupted: ") and err.strip().endswith(
        "a rerun of the same command continues where it stopped"
    )
    path = tmp_path / "model_judgment" / "gpt-4_single.jsonl"
    first = read_jsonl(path)
    # Every request the server got, those in flight at the signal included, is recorded, once.
    assert 6 <= len(first) < 160
    assert Counter(r["user_prompt"] for r in first) == Counter(fake.served("slow"))

    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    with FakeJudge() as fake:
        run_judge(fake, tmp_path, data_dir, ["m1"])
    assert len(fake.log) == 160 - len(first)
    assert not set(fake.served()) & {r["user_prompt"] for r in first}  # nothing asked twice
    records = read_jsonl(path)
    assert len({(r["question_id"], r["turn"]) for r in records}) == len(records) == 160


def test_an_endpoint_that_refuses_connections_fails_within_seconds(tmp_path, data_dir, answers_in):
    answers_in(tmp_path, data_dir, ["m1"])
    with FakeJudge() as fake:
        pass  # stopped: its port refuses connections
    start = time.monotonic()
    process = judge_process(fake, tmp_path, data_dir, "--parallel", "1")  # the default retries and backoff
    _, err = process.communicate(timeout=60)
    assert time.monotonic() - start < 15  # 8 retries with backoff would take minutes
    assert process.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: cannot connect to {fake.api_base}/chat/completions (ConnectError: [Errno 111] Connection refused), "
        "3 times in a row: check --api_base (API_BASE for the scripts) and that the server is up"
    )
    for n in (1, 2):  # the retries were shown as they happened
        assert f"{fake.api_base}/chat/completions: attempt {n}/9 failed (ConnectError" in err
    assert not (tmp_path / "model_judgment" / "gpt-4_single.jsonl").exists()
