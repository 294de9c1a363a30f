"""The six SuperGLUE tasks of the paper, formulated as jiant formulates them, and the split protocol.

A task turns the records of an official SuperGLUE jsonl file into model inputs:

| task    | jiant formulation                 | input                                                  | head          |
|---------|-----------------------------------|--------------------------------------------------------|---------------|
| boolq   | pair classification               | question / passage                                     | pooled        |
| rte     | pair classification               | premise / hypothesis                                   | pooled        |
| copa    | multiple choice, 2 choices        | premise + "What was the cause of this?" or             | pooled, one   |
|         |                                   | "What happened as a result?" / choice                  | score/choice  |
| multirc | binary classification per answer, | passage + question / answer; one example per question, | pooled        |
|         | grouped by question               | one input per answer option                            |               |
| wic     | span comparison                   | word / sentence1 / sentence2, spans of the word        | 2 word spans  |
| wsc     | span comparison                   | text, spans of the entity (span1) and pronoun (span2)  | 2 entity spans|

The paper's protocol splits the official validation set: its first `selection_size` examples select
the model and the rest is the reported test. An example is a line of the file for every task but
MultiRC, whose lines are passages: there an example is a question (with all its answer options), so
that no question is cut between the two parts and EM stays defined; see README.md for why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch.utils.data import Dataset
from tqdm import tqdm

from superglue.encoding import Encoder

# jiant's COPA prompt: the premise followed by a question naming the relation asked for.
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}
BOOL_LABELS = (False, True)
RTE_LABELS = ("entailment", "not_entailment")


def get_field(record: dict, *keys: str):
    """record[k1][k2]..., or an error naming where the record came from and the missing field."""
    value = record
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{record['_where']}: missing field {'.'.join(keys[: depth + 1])!r}")
        value = value[key]
    return value


def label_id(record: dict, labels: Sequence, *keys: str) -> int:
    value = get_field(record, *(keys or ("label",)))
    for index, label in enumerate(labels):
        if value == label and type(value) is type(label):  # True must not pass for 1, nor 1 for True
            return index
    raise ValueError(f"{record['_where']}: label {value!r} is not one of {list(labels)}")


def encode_boolq(record: dict, encoder: Encoder) -> list[dict]:
    ids, _ = encoder.join([[get_field(record, "question")], [get_field(record, "passage")]])
    return [{"input_ids": ids, "labels": label_id(record, BOOL_LABELS)}]


def encode_rte(record: dict, encoder: Encoder) -> list[dict]:
    ids, _ = encoder.join([[get_field(record, "premise")], [get_field(record, "hypothesis")]])
    return [{"input_ids": ids, "labels": label_id(record, RTE_LABELS)}]


def encode_copa(record: dict, encoder: Encoder) -> list[dict]:
    relation = get_field(record, "question")
    if relation not in COPA_QUESTIONS:
        raise ValueError(f"{record['_where']}: question {relation!r} is not one of {list(COPA_QUESTIONS)}")
    prompt = get_field(record, "premise") + " " + COPA_QUESTIONS[relation]
    choices = [encoder.join([[prompt], [get_field(record, key)]])[0] for key in ("choice1", "choice2")]
    return [{"input_ids": choices, "labels": label_id(record, (0, 1))}]


def encode_multirc(record: dict, encoder: Encoder) -> list[dict]:
    # A leading space so the question's first word is tokenized as a word, not a word-piece.
    context = [get_field(record, "passage"), " " + get_field(record, "question")]
    features = []
    for number, answer in enumerate(get_field(record, "answers")):
        option = {**answer, "_where": f"{record['_where']} answer {number}"}
        ids, _ = encoder.join([context, [get_field(option, "text")]])
        features.append({"input_ids": ids, "labels": label_id(option, (0, 1))})
    if not features:
        raise ValueError(f"{record['_where']}: a question without answers")
    return features


def encode_wic(record: dict, encoder: Encoder) -> list[dict]:
    segments = [[get_field(record, "word")], [get_field(record, "sentence1")], [get_field(record, "sentence2")]]
    spans = [(i, get_field(record, f"start{i}"), get_field(record, f"end{i}")) for i in (1, 2)]
    ids, token_spans = encoder.join(segments, spans)
    return [{"input_ids": ids, "spans": token_spans, "labels": label_id(record, BOOL_LABELS)}]


def word_span(text: str, index: int, span_text: str) -> tuple[int, int]:
    """Characters of `len(span_text.split())` whitespace-separated words of `text` from word `index`
    (WSC's span indices count words of text.split(), as in jiant)."""
    words = list(re.finditer(r"\S+", text))
    count = len(span_text.split())
    if not (isinstance(index, int) and 0 <= index and index + count <= len(words) and count):
        raise ValueError(f"span {span_text!r} at word {index!r} is outside the text's {len(words)} words")
    return words[index].start(), words[index + count - 1].end()


def encode_wsc(record: dict, encoder: Encoder) -> list[dict]:
    text = get_field(record, "text")
    spans = []
    for i in (1, 2):
        index, words = get_field(record, "target", f"span{i}_index"), get_field(record, "target", f"span{i}_text")
        spans.append((0, *word_span(text, index, words)))
    ids, token_spans = encoder.join([[text]], spans)
    return [{"input_ids": ids, "spans": token_spans, "labels": label_id(record, BOOL_LABELS)}]


def multirc_questions(passages: list[dict]) -> list[dict]:
    """One record per question (passage text, question, answers), in file order."""
    questions = []
    for passage in passages:
        for number, question in enumerate(get_field(passage, "passage", "questions")):
            where = f"{passage['_where']} question {number}"
            questions.append({**question, "passage": get_field(passage, "passage", "text"), "_where": where})
    return questions


@dataclass(frozen=True)
class Task:
    name: str  # jiant's task name
    official_name: str  # the directory in the official SuperGLUE release
    hub_config: str  # the config of the hub's super_glue dataset
    formulation: str  # jiant's, in words
    head: str  # classification | multiple_choice | span_comparison
    selection_size: int  # the paper's N: the first N validation examples select the model
    metric: str  # what `score` is: accuracy, or mean of F1a and EM
    encode: Callable[[dict, Encoder], list[dict]]
    examples: Callable[[list[dict]], list[dict]] = list  # the file's records -> the task's examples


TASKS = {
    t.name: t
    for t in [
        Task(
            "boolq",
            "BoolQ",
            "boolq",
            "pair classification (question, passage)",
            "classification",
            1270,
            "accuracy",
            encode_boolq,
        ),
        Task(
            "copa", "COPA", "copa", "multiple choice between 2 choices", "multiple_choice", 30, "accuracy", encode_copa
        ),
        Task(
            "multirc",
            "MultiRC",
            "multirc",
            "binary classification of each answer option, grouped by question",
            "classification",
            453,
            "(F1a + EM) / 2",
            encode_multirc,
            multirc_questions,
        ),
        Task(
            "rte",
            "RTE",
            "rte",
            "pair classification (premise, hypothesis)",
            "classification",
            128,
            "accuracy",
            encode_rte,
        ),
        Task(
            "wic",
            "WiC",
            "wic",
            "span comparison of the word in its two sentences",
            "span_comparison",
            238,
            "accuracy",
            encode_wic,
        ),
        Task(
            "wsc",
            "WSC",
            "wsc.fixed",
            "span comparison of an entity and a pronoun",
            "span_comparison",
            44,
            "accuracy",
            encode_wsc,
        ),
    ]
}


def get_task(name: str) -> Task:
    task = TASKS.get(name.lower())
    if task is None:
        known = "; ".join(f"{t.name} ({t.formulation}; {t.metric})" for t in TASKS.values())
        raise ValueError(f"unknown task {name!r}. The paper's SuperGLUE tasks are: {known}")
    return task


def split_validation(task: Task, examples: list) -> tuple[list, list]:
    """The paper's protocol: (the first N validation examples, the rest) = (selection, test)."""
    if len(examples) <= task.selection_size:
        raise ValueError(
            f"{task.name}: the validation set has {len(examples)} examples, the protocol needs "
            f"more than the {task.selection_size} it uses for model selection"
        )
    return examples[: task.selection_size], examples[task.selection_size :]


class Encoded(Dataset):
    """Model inputs of a list of examples; `groups[i]` is the example that input i came from."""

    def __init__(self, task: Task, examples: list[dict], encoder: Encoder, desc: str = "") -> None:
        self.features: list[dict] = []
        self.groups: list[int] = []
        progress = tqdm(examples, desc=f"encoding {desc}", leave=False, disable=len(examples) < 1000)
        for number, example in enumerate(progress):
            try:
                features = task.encode(example, encoder)
            except ValueError as e:
                where = example["_where"]
                raise ValueError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
            self.features += features
            self.groups += [number] * len(features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]
