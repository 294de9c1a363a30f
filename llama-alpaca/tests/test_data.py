"""Alpaca data: the real sample, the registry, the val split, max_samples, and every error path."""

from __future__ import annotations

import json
import logging

import pytest

from alpaca_sft.data import DATASETS, Collator, DataError, load_records, load_splits, read_file, split, turns_of
from alpaca_sft.templates import IGNORE_INDEX


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_real_alpaca_gpt4_sample(alpaca_sample, tokenizer):
    records = read_file(alpaca_sample)
    assert len(records) == 899 and all(r["output"] for r in records)
    assert turns_of({"instruction": "Do it.", "input": "x", "output": "y"}) == [("Do it.\n\nx", "y")]
    train, val = load_splits(str(alpaca_sample), tokenizer, "default", cutoff_len=1024, val_size=0.1, max_samples=200)
    assert (len(train), len(val)) == (180, 20)
    assert all(len(e["input_ids"]) <= 1024 and e["labels"][0] == IGNORE_INDEX for e in train + val)


def test_registry():
    assert DATASETS["alpaca_gpt4_en"].hub == "vicgalle/alpaca-gpt4"
    assert len(load_records("demo")) == 600
    assert len(load_records("demo,demo")) == 1200


def test_split_is_seeded_and_disjoint():
    records = [{"instruction": str(i), "output": "o"} for i in range(50)]
    train, val = split(records, 10, seed=1)
    assert (
        len(val) == 10 and len(train) == 40 and not {r["instruction"] for r in train} & {r["instruction"] for r in val}
    )
    assert split(records, 0.2, seed=1) == (train, val)
    with pytest.raises(DataError, match="leaves no training records"):
        split(records, 50, seed=1)


@pytest.mark.parametrize(
    "records, message",
    [
        (
            [{"instruction": "a", "output": "b"}, {"instruction": "a", "output": "b"}, "oops"],
            r"record 3: expected a JSON object",
        ),
        ([{"instruction": "a", "output": "b"}, {"instruction": "a"}], r"record 2: field 'output' must be a string"),
        ([{"instruction": "  ", "output": "b"}], r"record 1: field 'instruction' is empty"),
        ([{"instruction": "a", "output": "b", "input": 3}], r"record 1: field 'input' must be a string"),
        ([{"instruction": "a", "output": "b", "history": [["q"]]}], r"record 1: field 'history'"),
    ],
)
def test_malformed_record_names_file_and_number(tmp_path, records, message):
    path = write(tmp_path, "bad.json", json.dumps(records))
    with pytest.raises(DataError, match=f"bad.json: {message}"):
        read_file(path)


def test_jsonl_errors_name_record_and_line(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"instruction": "a", "output": "b"}\n\n{"instruction": "a", "output": \n')
    with pytest.raises(DataError, match=r"bad.jsonl: record 2 \(line 3\) is not valid JSON"):
        read_file(path)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("empty.json", "[]", "has no records"),
        ("empty.jsonl", "\n", "has no records"),
        ("dict.json", '{"instruction": "a"}', "expected a JSON list of records"),
        ("broken.json", "[{", "is not valid JSON"),
    ],
)
def test_bad_files(tmp_path, name, text, message):
    with pytest.raises(DataError, match=message):
        load_records(str(write(tmp_path, name, text)))


def test_unknown_and_missing_datasets(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'nope'.*alpaca_gpt4_en"):
        load_records("nope")
    with pytest.raises(DataError, match="does not exist"):
        load_records(str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match=r"expected a \.json or \.jsonl"):
        read_file(write(tmp_path, "data.csv", "a,b"))


def test_cutoff_shorter_than_prompts(tmp_path, tokenizer, caplog):
    long_prompt = {"instruction": "word " * 100, "output": "x"}
    path = write(tmp_path, "d.json", json.dumps([long_prompt] * 3))
    with pytest.raises(DataError, match="cutoff_len=16 is shorter than every prompt.*raise --cutoff_len"):
        load_splits(str(path), tokenizer, "default", cutoff_len=16)
    path = write(tmp_path, "d2.json", json.dumps([{"instruction": "hi", "output": "x"}, long_prompt]))
    with caplog.at_level(logging.WARNING):
        train, _ = load_splits(str(path), tokenizer, "default", cutoff_len=16)
    assert len(train) == 1 and "1 of 2 records dropped" in caplog.text and "first: record 2" in caplog.text


def test_unknown_template_fails_before_reading(tokenizer):
    with pytest.raises(ValueError, match="unknown template"):
        load_splits("nope", tokenizer, "vicuna", cutoff_len=64)


def test_collator_pads_right():
    batch = Collator(pad_token_id=9)(
        [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4], "labels": [4]}]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
