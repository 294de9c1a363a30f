"""This project held against FastChat 0.2.36's own llm_judge code on the same files.

FastChat's gen_judgment.py (its match makers and play_a_match_*), gen_api_answer.py (get_answer) and
show_result.py (display_result_*) are imported and run here, their API calls answered by the same
fake judge as ours, so that the files both tools write can be compared line by line, and the
numbers FastChat prints with the ones this project shows for the same file. FastChat's published
judgment files are not available offline; files written by FastChat's own code stand in for them.
"""

import contextlib
import importlib.util
import io
import json
import re
import sys
import types
from collections import Counter
from types import SimpleNamespace

import pandas as pd
import pytest

from mt_bench import api_answer, judge, show
from mt_bench.client import ChatClient, JudgeAPIError
from mt_bench.data import load_questions, read_jsonl
from mt_bench.fake_judge import FakeJudge, fake_judgment, fake_rating
from mt_bench.scores import summarize

NUMBER = r"-?\d+(?:\.\d+)?"


@pytest.fixture
def fastchat(monkeypatch):
    """FastChat's llm_judge modules, every API call they make answered by fake_judgment."""
    for name in ("openai", "anthropic"):  # imported by common.py, used only by the calls patched below
        if importlib.util.find_spec(name) is None:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    from fastchat.llm_judge import common, gen_api_answer, gen_judgment, show_result

    monkeypatch.setattr(
        common,
        "chat_completion_openai",
        lambda model, conv, temperature, max_tokens, **kw: fake_judgment(conv.to_openai_api_messages()),
    )
    return SimpleNamespace(
        common=common, gen_judgment=gen_judgment, show_result=show_result, gen_api_answer=gen_api_answer
    )


def fastchat_judge(fc, mode, models, answer_dir, data_dir, output_file, baseline="gpt-3.5-turbo"):
    """What FastChat's gen_judgment.py does for a mode (its __main__, through its own functions)."""
    c, g = fc.common, fc.gen_judgment
    questions = c.load_questions(str(data_dir / "question.jsonl"), None, None)
    answers = c.load_model_answers(str(answer_dir))
    refs = c.load_model_answers(str(data_dir / "reference_answer"))
    prompts = c.load_judge_prompts(str(data_dir / "judge_prompts.jsonl"))
    if mode == "single":
        judges, make, play, baseline = (
            g.make_judge_single("gpt-4", prompts),
            g.make_match_single,
            c.play_a_match_single,
            None,
        )
    else:
        judges, play = g.make_judge_pairwise("gpt-4", prompts), c.play_a_match_pair
        make, baseline = (g.make_match_all_pairs, None) if mode == "pairwise-all" else (g.make_match, baseline)
    math = [q for q in questions if q["category"] in c.NEED_REF_CATS]
    default = [q for q in questions if q["category"] not in c.NEED_REF_CATS]
    matches = (
        make(default, models, answers, judges["default"], baseline)
        + make(math, models, answers, judges["math"], baseline, refs)
        + make(default, models, answers, judges["default-mt"], baseline, multi_turn=True)
        + make(math, models, answers, judges["math-mt"], baseline, refs, multi_turn=True)
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per match
        for match in matches:
            play(match, output_file=str(output_file))
    return matches


def fastchat_show(fc, mode, input_file, model_list=None, baseline="gpt-3.5-turbo") -> str:
    """What FastChat's show_result.py prints for a file."""
    args = SimpleNamespace(
        bench_name="mt_bench",
        input_file=str(input_file),
        judge_model="gpt-4",
        model_list=model_list,
        baseline_model=None if mode == "pairwise-all" else baseline,
        mode=mode,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pd.option_context("display.width", 1000):
        (fc.show_result.display_result_single if mode == "single" else fc.show_result.display_result_pairwise)(args)
    return out.getvalue()


def categories(data_dir) -> dict[int, str]:
    return {q["question_id"]: q["category"] for q in load_questions(data_dir)}


def without_tstamp(records):
    return sorted(json.dumps({k: v for k, v in r.items() if k != "tstamp"}, sort_keys=True) for r in records)


def markdown_rows(path) -> dict[str, list[str]]:
    return {
        cells[0]: cells[1:] for cells in (line.strip("| ").split(" | ") for line in path.read_text().splitlines()[2:])
    }


@pytest.mark.parametrize(
    "mode, models",
    [("single", ["m1", "m2"]), ("pairwise-baseline", ["m1", "m2"]), ("pairwise-all", ["m1", "m2", "m3"])],
)
def test_judgment_files_equal_fastchats(fastchat, tmp_path, data_dir, monkeypatch, answers_in, mode, models):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    answers_in(tmp_path, data_dir, [*models, "gpt-3.5-turbo"])
    theirs = tmp_path / "fastchat.jsonl"
    fastchat_judge(fastchat, mode, models, tmp_path / "model_answer", data_dir, theirs)
    with FakeJudge() as fake:
        where = ["--api_base", fake.api_base, "--data_dir", str(data_dir), "--out_dir", str(tmp_path)]
        ours = judge.main(["--model_list", *models, *where, "--mode", mode, "--parallel", "8"])
    assert ours.name == f"gpt-4_{'single' if mode == 'single' else 'pair'}.jsonl"
    assert without_tstamp(read_jsonl(ours)) == without_tstamp(read_jsonl(theirs))
    assert list(read_jsonl(ours)[0]) == list(read_jsonl(theirs)[0])  # the same fields in the same order
    if mode == "single":
        assert any(isinstance(r["score"], int) for r in read_jsonl(ours))  # 7, not 7.0
    # FastChat's show_result.py reads our file, and prints for it what it prints for its own.
    assert fastchat_show(fastchat, mode, ours).replace(str(ours), "") == fastchat_show(fastchat, mode, theirs).replace(
        str(theirs), ""
    )


def fastchat_single_scores(printed: str) -> dict[tuple[str, str], str]:
    """(model, "1" | "2" | "overall") -> the score as FastChat printed it."""
    scores, section = {}, None
    for line in printed.splitlines():
        if line.startswith("##########"):
            section = {"First": "1", "Second": "2", "Average": "overall"}[line.split()[1]]
        elif m := re.fullmatch(rf"(\S+)\s+(?:\d\s+)?({NUMBER})", line.strip()):
            scores[(m.group(1), section)] = m.group(2)
    return scores


def test_single_scores_equal_fastchats_on_a_file_with_repeats(fastchat, tmp_path, data_dir, capsys, answers_in):
    answers_in(tmp_path, data_dir, ["m1", "m2"])
    path = tmp_path / "model_judgment" / "gpt-4_single.jsonl"
    matches = fastchat_judge(fastchat, "single", ["m1", "m2"], tmp_path / "model_answer", data_dir, path)
    with contextlib.redirect_stdout(io.StringIO()):  # a rerun of part of FastChat's gen_judgment appends again
        for match in matches[:50]:
            fastchat.common.play_a_match_single(match, output_file=str(path))
    lines = read_jsonl(path)
    assert len(lines) == 2 * 160 + 50
    printed = fastchat_single_scores(fastchat_show(fastchat, "single", path))
    summaries = show.main(["--out_dir", str(tmp_path), "--data_dir", str(data_dir), "--table2_config", ""])
    assert "warning: " in (err := capsys.readouterr().err) and "50 lines repeat an earlier judgment" in err
    rows = markdown_rows(tmp_path / "results" / "results.md")
    for model in ("m1", "m2"):
        ours = dict(zip(("1", "2", "overall"), rows[model][2:5], strict=True))
        for part, value in ours.items():
            assert float(value) == float(printed[(model, part)])  # FastChat's 6 decimals, every line counted
    once = summarize(list({judge.record_key(r): r for r in lines}.values()), categories(data_dir))
    assert all(once[m].overall != summaries[m].overall for m in ("m1", "m2"))  # the repeats count, in both tools


def fastchat_win_rates(printed: str) -> dict[str, list[float]]:
    """model -> [win, loss, tie, win_rate, loss_rate, win_rate_adjusted] as FastChat printed them."""
    rows = {}
    for line in printed.splitlines():
        if m := re.fullmatch(rf"(\S+)((?:\s+{NUMBER}){{6}})", line.strip()):
            rows[m.group(1)] = [float(x) for x in m.group(2).split()]
    return rows


def test_pairwise_table_shows_fastchats_judgments_as_fastchat_counts_them(
    fastchat, tmp_path, data_dir, monkeypatch, answers_in
):
    # A pairwise-all file like FastChat's published gpt-4_pair.jsonl: some games without a verdict,
    # some comparisons judged twice.
    models = ["m1", "m2", "gpt-3.5-turbo"]
    answers_in(tmp_path, data_dir, models)
    monkeypatch.setattr(
        fastchat.common,
        "chat_completion_openai",
        lambda model, conv, temperature, max_tokens, **kw: (
            "No verdict." if fake_rating(conv.messages[0][1]) == 1 else fake_judgment(conv.to_openai_api_messages())
        ),
    )
    path = tmp_path / "model_judgment" / "gpt-4_pair.jsonl"
    matches = fastchat_judge(fastchat, "pairwise-all", models, tmp_path / "model_answer", data_dir, path)
    with contextlib.redirect_stdout(io.StringIO()):
        for match in matches[:40]:
            fastchat.common.play_a_match_pair(match, output_file=str(path))
    lines = read_jsonl(path)
    assert any("error" in (c["g1_winner"], c["g2_winner"]) for c in lines)
    base = ["--out_dir", str(tmp_path), "--data_dir", str(data_dir)]
    for mode, extra in [
        ("pairwise-all", []),
        ("pairwise-baseline", []),
        ("pairwise-baseline", ["--model_list", "m2"]),
        ("pairwise-all", ["--model_list", "m1", "m2"]),
    ]:
        model_list = extra[1:] or None
        printed = fastchat_win_rates(fastchat_show(fastchat, mode, path, model_list))
        show.main([*base, "--mode", mode, *extra])
        rows = markdown_rows(tmp_path / "results" / "pairwise.md")
        assert set(rows) == set(printed), (mode, extra)
        for model, row in rows.items():
            win, loss, tie, _, *rates = row
            assert [float(x) for x in (win, loss, tie, *rates)] == printed[model], (mode, extra, model)


def test_api_answers_equal_fastchats(fastchat, tmp_path, data_dir, monkeypatch):
    """mt_bench.api_answer and FastChat's gen_api_answer.get_answer, each against its own fake endpoint."""
    gen = fastchat.gen_api_answer
    monkeypatch.setattr(gen, "args", SimpleNamespace(force_temperature=None), raising=False)  # its __main__'s
    with FakeJudge() as theirs_fake:
        client = ChatClient(theirs_fake.api_base, "gpt-3.5-turbo")
        monkeypatch.setattr(
            gen,
            "chat_completion_openai",
            lambda model, conv, temperature, max_tokens, **kw: client.complete(
                conv.to_openai_api_messages(), temperature, max_tokens
            ),
        )
        theirs = tmp_path / "fastchat" / "gpt-3.5-turbo.jsonl"
        for q in fastchat.common.load_questions(str(data_dir / "question.jsonl"), None, None):
            gen.get_answer(q, "gpt-3.5-turbo", 1, 1024, str(theirs))
        gen.reorg_answer_file(str(theirs))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-answer")
    argv = ["--data_dir", str(data_dir), "--out_dir", str(tmp_path), "--parallel", "4"]
    with FakeJudge(faults=["ok"] * 25 + ["401"] * 200) as fake:  # the key is revoked after 25 turns
        with pytest.raises(JudgeAPIError, match="questions failed"):
            api_answer.main([*argv, "--api_base", fake.api_base])
    first = fake.requests
    kept = read_jsonl(tmp_path / "model_answer" / "gpt-3.5-turbo.jsonl.partial")
    assert kept and all(t["turn"] == 0 for t in kept)  # first turns whose question is not whole yet
    with FakeJudge() as fake:
        ours = api_answer.main([*argv, "--api_base", fake.api_base])
    assert not ours.with_name(ours.name + ".partial").exists()
    assert len(fake.requests) == 160 - 25  # the 25 turns answered before are not asked for again
    requests = first[:25] + fake.requests

    def answered(path):
        return [{k: a[k] for k in ("question_id", "model_id", "choices")} for a in read_jsonl(path)]

    assert answered(ours) == answered(theirs)
    asked = Counter(json.dumps({k: r[k] for k in ("model", "messages", "temperature", "max_tokens")}) for r in requests)
    assert asked == Counter(
        json.dumps({k: r[k] for k in ("model", "messages", "temperature", "max_tokens")}) for r in theirs_fake.requests
    )
