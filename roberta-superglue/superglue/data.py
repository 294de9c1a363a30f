"""Where task examples come from: a local SuperGLUE directory, or the Hugging Face hub.

Local layout, as in the official SuperGLUE release and in jiant's task data: one directory per task
(named `BoolQ` as in the release or `boolq` as in jiant; case does not matter) holding
`train.jsonl` and `val.jsonl`. Every record remembers its file and line, so a bad one is reported
there. Without a local directory the tasks are read from the hub's `aps/super_glue`, whose rows are
turned back into the official records (MultiRC's answer rows regrouped into passages).

    examples, source = load_examples(get_task("rte"), "val", data_dir="../shared/data/superglue")

The examples are jiant's (superglue.tasks.read_examples), each with the file and line it came from.
The training file is the first of `train_file`'s names that exists (by default `train.jsonl`, else
FewGLUE's `train32.jsonl`, the only training file BoolQ and MultiRC have in the shared data).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from superglue.files import read_jsonl
from superglue.tasks import Example, Task, read_examples

HUB_DATASET = "aps/super_glue"
HUB_SPLITS = {"train": "train", "val": "validation"}
TRAIN_FILES = "train.jsonl,train32.jsonl"


def task_dir(data_dir: str | Path, task: Task) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"--data_dir {data_dir} does not exist (it should hold the SuperGLUE task directories: BoolQ/, COPA/, ...)"
        )
    for path in sorted(data_dir.iterdir()):
        if path.is_dir() and path.name.lower() == task.name:
            return path
    raise FileNotFoundError(f"no {task.official_name}/ (or {task.name}/) directory in --data_dir {data_dir}")


def local_file(directory: Path, candidates: str) -> Path:
    """The first existing file of a comma-separated list of names in `directory`."""
    for name in candidates.split(","):
        if (directory / name.strip()).is_file():
            return directory / name.strip()
    present = ", ".join(sorted(p.name for p in directory.glob("*.jsonl"))) or "no jsonl files"
    raise FileNotFoundError(f"none of {candidates} in {directory} (it has: {present}); name the file with --train_file")


def load_examples(
    task: Task, split: str, data_dir: str | Path | None, train_file: str = TRAIN_FILES
) -> tuple[list[Example], str]:
    """The examples of `split` (train or val) and where they were read from."""
    if split not in HUB_SPLITS:
        raise ValueError(f"unknown split {split!r}; the protocol reads train and val")
    if data_dir is not None:
        path = local_file(task_dir(data_dir, task), train_file if split == "train" else "val.jsonl")
        records = [{**record, "_where": f"{path}:{lineno}"} for lineno, record in read_jsonl(path)]
        return read_examples(task, records, split), str(path)
    from datasets import load_dataset

    source = f"{HUB_DATASET}/{task.hub_config}:{HUB_SPLITS[split]}"
    try:
        rows = load_dataset(HUB_DATASET, task.hub_config, split=HUB_SPLITS[split])
    except OSError as e:  # datasets' ConnectionError and DatasetNotFoundError are OSErrors
        raise FileNotFoundError(
            f"{source} is not in the local datasets cache and could not be downloaded "
            f"({str(e).splitlines()[0]}): pass --data_dir with the SuperGLUE task "
            "directories"
        ) from None
    return read_examples(task, from_hub(task, rows, source), split), source


def from_hub(task: Task, rows: Iterable[dict], source: str) -> list[dict]:
    """The hub's rows as official SuperGLUE records (labels as in the jsonl files, none for -1)."""
    records = []
    for number, row in enumerate(rows):
        row = dict(row)
        where = f"{source} row {number}"
        label = row.pop("label", -1)
        if task.name == "multirc":
            ids = row["idx"]
            if not records or records[-1]["idx"] != ids["paragraph"]:
                records.append(
                    {"idx": ids["paragraph"], "passage": {"text": row["paragraph"], "questions": []}, "_where": where}
                )
            questions = records[-1]["passage"]["questions"]
            if not questions or questions[-1]["idx"] != ids["question"]:
                questions.append({"idx": ids["question"], "question": row["question"], "answers": []})
            answer = {"idx": ids["answer"], "text": row["answer"]}
            questions[-1]["answers"].append(answer if label == -1 else {**answer, "label": label})
            continue
        if task.name == "wsc":
            row = {
                "text": row["text"],
                "idx": row["idx"],
                "target": {k: row[k] for k in ("span1_index", "span2_index", "span1_text", "span2_text")},
            }
        if label != -1:
            row["label"] = task.labels[label]  # the jsonl files hold the value of the class id
        records.append({**row, "_where": where})
    return records
