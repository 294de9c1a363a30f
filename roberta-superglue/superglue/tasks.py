"""The six SuperGLUE tasks of the paper, read and formulated by jiant 2.2.0, and the split protocol.

Each task is jiant's task class (`jiant.tasks.lib.<task>`): its reader (`_create_examples`) turns
an official jsonl record into jiant's examples, and its example and template code turn those into
model inputs (superglue.encoding). What this module adds around jiant:

- every example remembers the file and line it came from, so a bad record is reported there
  (jiant would raise a bare KeyError); labels are checked against the task's label set with their
  type (jiant's label table would take 1 for True);
- the paper's split of the official validation set into a selection part (its first N examples)
  and the reported test part (the rest).

| task    | jiant's formulation                              | head            |
|---------|--------------------------------------------------|-----------------|
| boolq   | pair classification (question, passage)          | pooled          |
| rte     | pair classification (premise, hypothesis)        | pooled          |
| copa    | multiple choice, premise + jiant's question      | pooled, 1/choice|
| multirc | binary, one example per answer option            | pooled          |
| wic     | span comparison of the word in its two sentences | 2 word spans    |
| wsc     | span comparison of an entity and a pronoun       | 2 entity spans  |

Splits: jiant's example is a line of the file for every task but MultiRC, where it is one answer
option. The official code counts N in jiant's examples, answer options for MultiRC
(`multirc_split="option"`); `"question"` counts whole questions instead (see README.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jiant.tasks.core import BaseExample
from jiant.tasks.core import Task as JiantTask
from jiant.tasks.lib.boolq import BoolQTask
from jiant.tasks.lib.copa import CopaTask
from jiant.tasks.lib.multirc import MultiRCTask
from jiant.tasks.lib.rte import RteTask
from jiant.tasks.lib.wic import WiCTask
from jiant.tasks.lib.wsc import WSCTask
from torch.utils.data import Dataset
from tqdm import tqdm

import superglue.jiant_compat  # noqa: F401  (before any use of jiant's tokenization)
from superglue.cli import check_choice
from superglue.encoding import Featurizer

MULTIRC_SPLITS = {
    "option": "N answer options, jiant's examples (the official code)",
    "question": "N whole questions with all their answer options",
}


@dataclass(frozen=True)
class Example:
    where: str  # the file and line (MultiRC: question and answer number) it was read from
    jiant: BaseExample  # jiant's example

    @property
    def question(self) -> int | None:
        """MultiRC's question id (jiant's grouping for EM); None for the other tasks."""
        return getattr(self.jiant, "question_id", None)

    def content(self) -> dict:
        return dataclasses.asdict(self.jiant)


@dataclass(frozen=True)
class Task:
    name: str  # jiant's task name
    official_name: str  # the directory in the official SuperGLUE release
    hub_config: str  # the config of the hub's super_glue dataset
    formulation: str  # jiant's, in words
    head: str  # classification | multiple_choice | span_comparison
    selection_size: int  # the paper's N: the first N validation examples select the model
    metric: str  # what `score` is: accuracy, or mean of F1a and EM
    jiant_class: type[JiantTask]  # jiant's task: reader, formulation, evaluation scheme

    @property
    def jiant(self) -> JiantTask:
        return self.jiant_class(name=self.name, path_dict={})

    @property
    def labels(self) -> list:
        """The label values of the jsonl files, in jiant's id order."""
        return list(getattr(self.jiant_class, "LABELS", None) or self.jiant_class.CHOICE_KEYS)


TASKS = {
    t.name: t
    for t in [
        Task("boolq", "BoolQ", "boolq", "pair classification (question, passage)", "classification", 1270,
             "accuracy", BoolQTask),
        Task("copa", "COPA", "copa", "multiple choice between 2 choices", "multiple_choice", 30, "accuracy", CopaTask),
        Task("multirc", "MultiRC", "multirc", "binary classification of each answer option, grouped by question",
             "classification", 453, "(F1a + EM) / 2", MultiRCTask),
        Task("rte", "RTE", "rte", "pair classification (premise, hypothesis)", "classification", 128, "accuracy",
             RteTask),
        Task("wic", "WiC", "wic", "span comparison of the word in its two sentences", "span_comparison", 238,
             "accuracy", WiCTask),
        Task("wsc", "WSC", "wsc.fixed", "span comparison of an entity and a pronoun", "span_comparison", 44,
             "accuracy", WSCTask),
    ]
}  # fmt: skip


def get_task(name: str) -> Task:
    task = TASKS.get(name.lower())
    if task is None:
        known = "; ".join(f"{t.name} ({t.formulation}; {t.metric})" for t in TASKS.values())
        raise ValueError(f"unknown task {name!r}. The paper's SuperGLUE tasks are: {known}")
    return task


def get_field(record: dict, where: str, *keys: str):
    """record[k1][k2]..., or an error naming where the record came from and the missing field."""
    value = record
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{where}: missing field {'.'.join(keys[: depth + 1])!r}")
        value = value[key]
    return value


def jiant_lines(task: Task, record: dict) -> list[tuple[str, dict]]:
    """(where, line) to hand to jiant's reader: the record itself, or for MultiRC one passage line per
    answer option (jiant's reader yields one example per option), so that errors name the option."""
    where = record["_where"]
    if task.name != "multirc":
        return [(where, record)]
    lines = []
    for q, question in enumerate(get_field(record, where, "passage", "questions")):
        answers = get_field(question, f"{where} question {q}", "answers")
        if not answers:
            raise ValueError(f"{where} question {q}: a question without answers")
        for a, answer in enumerate(answers):
            passage = {**record["passage"], "questions": [{**question, "answers": [answer]}]}
            lines.append((f"{where} question {q} answer {a}", {**record, "passage": passage}))
    return lines


def read_examples(task: Task, records: list[dict], split: str) -> list[Example]:
    """jiant's examples of the records (each with its "_where"), in file order; split: train or val."""
    reader, labels = task.jiant, task.labels
    examples = []
    for record in records:
        for where, line in jiant_lines(task, record):
            try:
                made = reader._create_examples(lines=[line], set_type=split)
            except KeyError as e:
                key = e.args[0]
                field = next((k for k, v in line.items() if v == key and isinstance(v, str)), None)
                problem = (
                    f"missing field {key!r}"
                    if field is None
                    else f"{field} {key!r} is not one jiant's {task.name} reader knows"
                )
                raise ValueError(f"{where}: {problem}") from None
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: {e}") from None
            for example in made:
                label = example.label
                if not any(label == known and type(label) is type(known) for known in labels):
                    raise ValueError(f"{where}: label {label!r} is not one of {labels}")
                examples.append(Example(where, example))
    return examples


def split_validation(task: Task, examples: list[Example], multirc_split: str = "option") -> tuple[list, list]:
    """The paper's protocol: (the first N validation examples, the rest) = (selection, test)."""
    cut = task.selection_size
    if task.name == "multirc" and check_choice("multirc_split", multirc_split, MULTIRC_SPLITS) == "question":
        starts = [i for i, e in enumerate(examples) if i == 0 or e.question != examples[i - 1].question]
        cut = starts[cut] if cut < len(starts) else len(examples)
    if len(examples) <= cut:
        raise ValueError(
            f"{task.name}: the validation set has {len(examples)} examples, the protocol needs "
            f"more than the {task.selection_size} it uses for model selection"
        )
    return examples[:cut], examples[cut:]


class Encoded(Dataset):
    """Model inputs of a list of examples; `groups[i]` is what input i is scored with for EM (MultiRC's
    question id) or, for the other tasks, the number of its example."""

    def __init__(self, examples: list[Example], featurizer: Featurizer, desc: str = "") -> None:
        self.features: list[dict] = []
        self.groups: list[int] = []
        progress = tqdm(examples, desc=f"encoding {desc}", leave=False, disable=len(examples) < 1000)
        for number, example in enumerate(progress):
            try:
                self.features.append(featurizer(example.jiant))
            except ValueError as e:
                raise ValueError(f"{example.where}: {e}") from None
            self.groups.append(number if example.question is None else example.question)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]
