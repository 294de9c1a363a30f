"""Reading the task files: the real SuperGLUE data, hand-made bad files, and hub rows."""

import json

import pytest

from superglue.data import from_hub, load_examples, local_file, task_dir
from superglue.files import read_jsonl, write_json_atomic
from superglue.tasks import TASKS, get_task, read_examples

# jiant's examples in the shared files: one per line, except MultiRC (one per answer option; 83
# passages, 953 questions in val).
REAL_SIZES = {
    "boolq": (32, 3270),
    "copa": (400, 100),
    "multirc": (None, 4848),
    "rte": (2490, 277),
    "wic": (5428, 638),
    "wsc": (554, 104),
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_real_files_load(data_dir, name):
    task = get_task(name)
    train, train_source = load_examples(task, "train", data_dir)  # BoolQ, MultiRC: FewGLUE's train32.jsonl
    val, val_source = load_examples(task, "val", data_dir)
    expected_train, expected_val = REAL_SIZES[name]
    assert len(val) == expected_val
    if expected_train is not None:
        assert len(train) == expected_train
    assert val_source.endswith(f"{task.official_name}/val.jsonl")
    assert train_source.endswith("train32.jsonl" if name in ("boolq", "multirc") else "train.jsonl")
    assert val[0].where == (f"{val_source}:1 question 0 answer 0" if name == "multirc" else f"{val_source}:1")
    assert val[0].jiant.guid.startswith("val-") and train[0].jiant.guid.startswith("train-")


def test_multirc_examples_are_answer_options(data_dir):
    val, source = load_examples(get_task("multirc"), "val", data_dir)
    assert len({e.question for e in val}) == 953
    first = [e for e in val if e.question == 0]
    assert [e.where for e in first] == [f"{source}:1 question 0 answer {a}" for a in range(4)]
    assert first[0].jiant.question.startswith("Would the mass of a baseball")
    assert first[0].jiant.paragraph.startswith("What causes a change in motion?")
    assert [e.jiant.label for e in first] == [0, 1, 1, 0]
    assert first[3].jiant.guid == "val-0-0-3"  # jiant's passage-question-answer


def test_task_dir_any_case_and_train_file_fallback(tmp_path):
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "train32.jsonl").write_text("")
    assert task_dir(tmp_path, get_task("RTE")) == tmp_path / "rte"
    assert local_file(tmp_path / "rte", "train.jsonl, train32.jsonl").name == "train32.jsonl"
    with pytest.raises(FileNotFoundError, match=r"none of train.jsonl in .*rte \(it has: train32.jsonl\)"):
        local_file(tmp_path / "rte", "train.jsonl")
    with pytest.raises(FileNotFoundError, match="no WiC/ \\(or wic/\\) directory"):
        task_dir(tmp_path, get_task("wic"))


def test_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "RTE").mkdir()
    path = tmp_path / "RTE" / "val.jsonl"
    good = json.dumps({"premise": "a", "hypothesis": "b", "label": "entailment", "idx": 0})
    path.write_text(good + "\n\n" + '{"premise": "a", "hypo\n')
    with pytest.raises(ValueError, match=rf"^{path}:3: not valid JSON"):
        load_examples(get_task("rte"), "val", tmp_path)
    path.write_text(good + "\n[1, 2]\n")
    with pytest.raises(ValueError, match=rf"^{path}:2: expected a JSON object, got list"):
        read_jsonl(path)


def test_atomic_write_leaves_no_temporary(tmp_path):
    write_json_atomic(tmp_path / "a" / "results.json", {"x": 1})
    write_json_atomic(tmp_path / "a" / "results.json", {"x": 2})
    assert json.loads((tmp_path / "a" / "results.json").read_text()) == {"x": 2}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["results.json"]


def test_hub_rows_become_official_records():
    # The hub's aps/super_glue rows: class ids for labels (-1 in test), MultiRC one row per answer.
    rte = from_hub(
        get_task("rte"),
        [
            {"premise": "p", "hypothesis": "h", "idx": 0, "label": 1},
            {"premise": "p", "hypothesis": "h", "idx": 1, "label": -1},
        ],
        "hub",
    )
    assert rte[0]["label"] == "not_entailment" and "label" not in rte[1]
    assert rte[1]["_where"] == "hub row 1"
    boolq = from_hub(get_task("boolq"), [{"question": "q", "passage": "p", "idx": 0, "label": 1}], "hub")
    assert boolq[0]["label"] is True
    copa = from_hub(
        get_task("copa"),
        [{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "idx": 0, "label": 1}],
        "hub",
    )
    assert copa[0]["label"] == 1
    wsc = from_hub(
        get_task("wsc"),
        [
            {
                "text": "Mark told Pete he lied .",
                "span1_index": 0,
                "span2_index": 3,
                "span1_text": "Mark",
                "span2_text": "he",
                "idx": 0,
                "label": 0,
            }
        ],
        "hub",
    )
    assert wsc[0]["target"] == {"span1_index": 0, "span2_index": 3, "span1_text": "Mark", "span2_text": "he"}
    assert wsc[0]["label"] is False
    rows = [
        {
            "paragraph": "P0",
            "question": "Q0",
            "answer": a,
            "idx": {"paragraph": 0, "question": q, "answer": i},
            "label": lab,
        }
        for i, (q, a, lab) in enumerate([(0, "a", 1), (0, "b", 0), (1, "c", 0)])
    ]
    rows.append(
        {
            "paragraph": "P1",
            "question": "Q2",
            "answer": "d",
            "idx": {"paragraph": 1, "question": 2, "answer": 3},
            "label": 1,
        }
    )
    passages = from_hub(get_task("multirc"), rows, "hub")
    assert [p["idx"] for p in passages] == [0, 1]
    assert [[a["label"] for a in q["answers"]] for q in passages[0]["passage"]["questions"]] == [[1, 0], [0]]
    options = read_examples(get_task("multirc"), passages, "val")
    assert [(o.jiant.paragraph, o.jiant.question, o.jiant.answer, o.question) for o in options] == [
        ("P0", "Q0", "a", 0),
        ("P0", "Q0", "b", 0),
        ("P0", "Q0", "c", 1),
        ("P1", "Q2", "d", 2),
    ]
