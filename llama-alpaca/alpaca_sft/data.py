"""Alpaca-format data: read and check the records, split off validation, tokenize with the template.

A record is {"instruction", "input" (optional), "output"}, optionally with "system" and "history"
(a list of [query, answer] pairs before this turn). The query is the instruction, then a blank line
and the input when there is one. `--dataset` is one or more (comma-separated) of:

* a registered name (`DATASETS` below: `alpaca_gpt4_en`, `alpaca_gpt4_en_sample`, `demo`);
* a local .json (a list of records) or .jsonl (one record a line) file;
* a Hugging Face hub dataset with those columns (split "train").
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from .templates import IGNORE_INDEX, build_example, encode_conversation, get_template

logger = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class DatasetSpec:
    """Where a registered dataset lives: local files tried in order, then the hub."""

    files: tuple[Path, ...] = ()
    hub: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    # The paper's data: the full 52k file if it sits in data/ or ../shared, else the hub copy.
    "alpaca_gpt4_en": DatasetSpec(
        files=(PROJECT / "data" / "alpaca_gpt4_data.json", SHARED / "alpaca_gpt4" / "alpaca_gpt4_data.json"),
        hub="vicgalle/alpaca-gpt4",
    ),
    "alpaca_gpt4_en_sample": DatasetSpec(files=(SHARED / "alpaca_gpt4" / "alpaca_gpt4_en_sample.json",)),
    "demo": DatasetSpec(files=(PROJECT / "data" / "demo_instructions.jsonl",)),
}


class DataError(ValueError):
    """Bad input data; the message names the file and the record."""


def _check_record(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with instruction/input/output, got {type(record).__name__}")
    for key in ("instruction", "output"):
        if not isinstance(record.get(key), str):
            raise DataError(f"{where}: field {key!r} must be a string, got {record.get(key)!r:.80}")
    if not record["instruction"].strip():
        raise DataError(f"{where}: field 'instruction' is empty")
    for key in ("input", "system"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise DataError(f"{where}: field {key!r} must be a string, got {record[key]!r:.80}")
    history = record.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history
    ):
        raise DataError(f"{where}: field 'history' must be a list of [query, answer] string pairs")
    return record


def read_file(path: Path) -> list[dict[str, Any]]:
    """Records of a .json or .jsonl file; a malformed one raises naming the file and record number (1-based)."""
    if path.suffix not in (".json", ".jsonl"):
        raise DataError(
            f"{path}: expected a .json or .jsonl file in Alpaca format, not {path.suffix or 'no extension'}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    if path.suffix == ".jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(_check_record(json.loads(line), f"{path}: record {len(records) + 1} (line {line_no})"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: record {len(records) + 1} (line {line_no}) is not valid JSON: {exc}") from exc
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return [_check_record(r, f"{path}: record {i}") for i, r in enumerate(data, 1)]


def _read_hub(name: str) -> list[dict[str, Any]]:
    import datasets

    try:
        rows = datasets.load_dataset(name, split="train")
    except OSError as exc:  # offline: a connection error; no such dataset: DatasetNotFoundError
        raise DataError(
            f"dataset {name!r} is not a local file and could not be loaded from the hub (no network, "
            f"or no such dataset): pass a local .json/.jsonl file ({exc.__class__.__name__})"
        ) from exc
    return [_check_record(r, f"hub dataset {name}: record {i}") for i, r in enumerate(rows, 1)]


def load_records(dataset: str) -> list[dict[str, Any]]:
    """All records of one or more comma-separated datasets, in order."""
    records: list[dict[str, Any]] = []
    for name in (n.strip() for n in dataset.split(",")):
        if name in DATASETS:
            spec = DATASETS[name]
            local = next((f for f in spec.files if f.is_file()), None)
            if local is None and spec.hub is None:
                raise DataError(f"dataset {name!r} needs one of {', '.join(map(str, spec.files))}, and none exists")
            records += read_file(local) if local is not None else _read_hub(spec.hub)
        elif Path(name).is_file() or Path(name).suffix in (".json", ".jsonl"):
            if not Path(name).is_file():
                raise DataError(f"dataset file {name} does not exist")
            records += read_file(Path(name))
        elif "/" in name:
            records += _read_hub(name)
        else:
            raise DataError(
                f"unknown dataset {name!r}: use a registered name ({', '.join(DATASETS)}), "
                "a .json/.jsonl file, or a hub dataset id"
            )
    if not records:
        raise DataError(f"dataset {dataset!r} has no records")
    return records


def turns_of(record: dict[str, Any], input_separator: str = "\n\n") -> list[tuple[str, str]]:
    query = record["instruction"] + (f"{input_separator}{record['input']}" if record.get("input") else "")
    return [*(tuple(t) for t in record.get("history") or []), (query, record["output"])]


def split(records: list, val_size: float, seed: int) -> tuple[list, list]:
    """(train, val): val_size < 1 is a fraction, >= 1 a count; a seeded shuffle picks the val records."""
    n_val = int(val_size) if val_size >= 1 else round(val_size * len(records))
    if val_size < 0 or n_val >= len(records):
        raise DataError(f"val_size={val_size} leaves no training records out of {len(records)}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    val_ids = set(order[:n_val])
    return ([r for i, r in enumerate(records) if i not in val_ids], [r for i, r in enumerate(records) if i in val_ids])


def tokenize(
    records: list[tuple[int, dict[str, Any]]],
    tokenizer: PreTrainedTokenizerBase,
    template_name: str,
    cutoff_len: int,
    desc: str = "tokenize",
    truncation: str = "tail",
) -> list[dict[str, list[int]]]:
    """Examples with masked prompts from (record number, record) pairs; records whose prompt leaves
    no room for an answer are dropped, with a warning naming the first."""
    template = get_template(template_name)
    examples, dropped, longest_prompt = [], [], 0
    for i, record in tqdm(records, desc=desc, leave=False):
        turns = turns_of(record, template.input_separator)
        encoded = encode_conversation(tokenizer, template, turns, record.get("system") or None)
        example = build_example(encoded, cutoff_len, truncation)
        if example is None:
            dropped.append(i)
            longest_prompt = max(longest_prompt, len(encoded[0][0]))
        else:
            examples.append(example)
    if not examples:
        raise DataError(
            f"cutoff_len={cutoff_len} is shorter than every prompt ({desc}: {len(records)} records; "
            f"prompts up to {longest_prompt} tokens): no answer token would be trained; raise --cutoff_len"
        )
    if dropped:
        logger.warning(
            "%s: %d of %d records dropped, their prompt is at least cutoff_len=%d tokens (first: record %d of the dataset)",
            desc,
            len(dropped),
            len(records),
            cutoff_len,
            dropped[0],
        )
    return examples


def load_splits(
    dataset: str,
    tokenizer: PreTrainedTokenizerBase,
    template: str,
    cutoff_len: int,
    val_size: float = 0.0,
    max_samples: int | None = None,
    seed: int = 42,
    truncation: str = "tail",
) -> tuple[list, list]:
    """Tokenized (train, val) examples: the first max_samples records, then the val split."""
    get_template(template)  # an unknown template fails before any reading
    records = list(enumerate(load_records(dataset)[:max_samples], 1))
    train, val = split(records, val_size, seed) if val_size else (records, [])
    return (
        tokenize(train, tokenizer, template, cutoff_len, "train", truncation),
        tokenize(val, tokenizer, template, cutoff_len, "val", truncation) if val else [],
    )


class Collator:
    """Right-pads a batch: input_ids with the pad id, labels with -100, and the attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([b[key] + [value] * (width - len(b[key])) for b in batch])

        mask = torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch])
        return {
            "input_ids": pad("input_ids", self.pad_token_id),
            "labels": pad("labels", IGNORE_INDEX),
            "attention_mask": mask,
        }
