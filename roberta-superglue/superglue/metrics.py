"""Task metrics, as jiant computes them; every task's `score` is the one number the table reports.

- BoolQ, COPA, RTE, WiC, WSC: accuracy.
- MultiRC: F1a, the binary F1 of the positive class over all answer options; EM, the share of
  questions whose every answer option is predicted right; score = (F1a + EM) / 2, jiant's headline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(preds: Sequence[int], labels: Sequence[int]) -> float:
    preds, labels = np.asarray(preds), np.asarray(labels)
    return float((preds == labels).mean())


def f1_binary(preds: Sequence[int], labels: Sequence[int]) -> float:
    """F1 of class 1; 0 when there is no positive prediction nor label (as scikit-learn)."""
    preds, labels = np.asarray(preds) == 1, np.asarray(labels) == 1
    true_pos = int((preds & labels).sum())
    denominator = int(preds.sum() + labels.sum())
    return 2 * true_pos / denominator if denominator else 0.0


def exact_match(preds: Sequence[int], labels: Sequence[int], groups: Sequence[int]) -> float:
    """Share of groups (MultiRC questions) whose predictions are all right."""
    right: dict[int, bool] = {}
    for pred, label, group in zip(preds, labels, groups, strict=True):
        right[group] = right.get(group, True) and bool(pred == label)
    return float(sum(right.values()) / len(right))


def task_metrics(task_name: str, logits: np.ndarray, labels: Sequence[int], groups: Sequence[int]) -> dict[str, float]:
    """Metrics of one split from the model's logits (one row per input, in dataset order)."""
    preds = np.asarray(logits).argmax(-1)
    if task_name == "multirc":
        f1a, em = f1_binary(preds, labels), exact_match(preds, labels, groups)
        return {"f1a": f1a, "em": em, "score": (f1a + em) / 2}
    acc = accuracy(preds, labels)
    return {"accuracy": acc, "score": acc}
