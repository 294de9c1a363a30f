"""The FastChat data files are read and checked; the JSONL writers survive interrupted writes."""

import json

import pytest

from mt_bench.cli import UsageError
from mt_bench.data import (
    CATEGORIES,
    append_jsonl,
    check_question_ids,
    load_judge_prompts,
    load_judgments,
    load_questions,
    load_reference_answers,
    read_jsonl,
    resolve_data_dir,
)
from mt_bench.judge import NEED_REF_CATS


def test_real_questions_references_and_prompts(data_dir):
    questions = load_questions(data_dir)
    assert len(questions) == 80
    assert {c: sum(q["category"] == c for q in questions) for c in CATEGORIES} == {c: 10 for c in CATEGORIES}
    assert all(len(q["turns"]) == 2 for q in questions)
    refs = load_reference_answers(data_dir, "gpt-4")
    need_ref = {q["question_id"] for q in questions if q["category"] in NEED_REF_CATS}
    assert len(need_ref) == 30 and need_ref <= set(refs)
    assert all(len(refs[qid]) == 2 for qid in need_ref)
    prompts = load_judge_prompts(data_dir)
    for name in ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"):
        assert prompts[name]["type"] == "single" and "[[rating]]" in prompts[name]["output_format"]
    assert load_questions(data_dir, 10, 20) == questions[10:20]


def test_judge_prompts_one_level_up_as_in_fastchat(tmp_path, data_dir):
    # FastChat keeps judge_prompts.jsonl in data/, next to data/mt_bench/.
    (tmp_path / "mt_bench").mkdir()
    (tmp_path / "judge_prompts.jsonl").write_text((data_dir / "judge_prompts.jsonl").read_text())
    assert "single-v1" in load_judge_prompts(tmp_path / "mt_bench")


def test_missing_data_dir_says_where_to_get_it(tmp_path):
    with pytest.raises(UsageError, match="question.jsonl.*--data_dir.*raw.githubusercontent"):
        resolve_data_dir(str(tmp_path))


def test_bad_lines_name_file_and_line(tmp_path):
    bad_json = tmp_path / "question.jsonl"
    bad_json.write_text('{"question_id": 1, "category": "math", "turns": ["a"]}\n{oops\n')
    with pytest.raises(UsageError, match=r"question.jsonl:2: not valid JSON"):
        load_questions(tmp_path)
    bad_json.write_text(
        '{"question_id": 1, "category": "math", "turns": ["a"]}\n'
        '{"question_id": "2", "category": "math", "turns": ["a"]}\n'
    )
    with pytest.raises(UsageError, match=r"question.jsonl:2: field 'question_id' must be int"):
        load_questions(tmp_path)
    bad_json.write_text('{"question_id": 1, "category": "math", "turns": ["a"]}\n' * 2)
    with pytest.raises(UsageError, match=r"question.jsonl:2: duplicate question_id 1"):
        load_questions(tmp_path)
    bad_json.write_text('{"question_id": 1, "category": "math", "turns": ["a"]}\n\n{"question_id": true}\n')
    with pytest.raises(UsageError, match=r"question.jsonl:3: field 'question_id' must be int, got True"):
        load_questions(tmp_path)  # line numbers count blank lines; a bool is no id
    bad_json.write_bytes(b'{"question_id": 1, "category": "math", "turns": ["a"]}\n{"turns": ["\xe9"]}\n')
    with pytest.raises(UsageError, match=r"question.jsonl:2: not UTF-8 text"):
        load_questions(tmp_path)
    with pytest.raises(UsageError, match=r"nothing.jsonl: no such file"):
        read_jsonl(tmp_path / "nothing.jsonl")


def test_judgments_are_checked(tmp_path, data_dir):
    path = tmp_path / "j.jsonl"
    good = {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "turn": 1, "score": 7.0}
    append_jsonl(path, [good, {**good, "score": "7"}])
    with pytest.raises(UsageError, match=r"j.jsonl:2: field 'score' must be int or float, got '7'"):
        load_judgments(path)
    path.unlink()
    pair = {"question_id": 81, "model_1": "m", "model_2": "b", "judge": ["gpt-4", "pair-v2"], "g1_winner": "tie"}
    append_jsonl(path, [{**pair, "g2_winner": "model_1"}, {**pair, "g2_winner": "A"}])
    with pytest.raises(UsageError, match=r"j.jsonl:2: field 'g2_winner' must be model_1, model_2, tie or error"):
        load_judgments(path, "pair")
    with pytest.raises(UsageError, match=r"j.jsonl:1: field 'model' must be str"):
        load_judgments(path)  # a pairwise file read as single-answer judgments
    with pytest.raises(UsageError, match=r"j.jsonl: 1 question ids not in .*question.jsonl \(7\): a file for another"):
        check_question_ids([81, 7], load_questions(data_dir), path, data_dir)


def test_append_after_an_interrupted_write(tmp_path):
    path = tmp_path / "out" / "a.jsonl"
    append_jsonl(path, [{"id": 1}, {"id": 2}])
    with path.open("a") as f:  # what a crash in the middle of a write leaves behind
        f.write('{"id": 3, "tex')
    with pytest.warns(UserWarning, match="a.jsonl:3: ignoring an unfinished last line"):
        assert read_jsonl(path) == [{"id": 1}, {"id": 2}]
    append_jsonl(path, [{"id": 3}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"id": 1}, {"id": 2}, {"id": 3}]
