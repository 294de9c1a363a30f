"""Task metrics by jiant's own evaluation schemes; every task's `score` is the one number the table reports.

`jiant.tasks.evaluate.get_evaluation_scheme_for_task` picks the scheme, and the logits go through
its accumulator, its predictions and its metrics:
- BoolQ, COPA, RTE, WiC, WSC: SimpleAccuracyEvaluationScheme, accuracy of the argmax.
- MultiRC: MultiRCEvaluationScheme: F1a, scikit-learn's F1 of the positive class over all answer
  options; EM, the share of questions (jiant's question ids) whose every answer option is right;
  score = their mean, jiant's headline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from superglue.jiant_compat import evaluate
from superglue.tasks import get_task


def task_metrics(task_name: str, logits: np.ndarray, labels: Sequence[int], groups: Sequence[int]) -> dict[str, float]:
    """Metrics of one split from the model's logits (one row per input, in dataset order); `groups`
    are MultiRC's question ids (superglue.tasks.Encoded.groups), unused by the other tasks."""
    task = get_task(task_name).jiant
    scheme = evaluate.get_evaluation_scheme_for_task(task)
    accumulator = scheme.get_accumulator()
    accumulator.update(np.asarray(logits), None, None, {})
    preds = scheme.get_preds_from_accumulator(task, accumulator)
    labels = np.asarray(labels)
    if task_name == "multirc":  # the labels as jiant's get_labels_from_cache gives them
        labels = [{"label_values": v, "question_ids": q} for v, q in zip(labels, groups, strict=True)]
    metrics = scheme.compute_metrics_from_preds_and_labels(preds=preds, labels=labels)
    if task_name == "multirc":
        return {"f1a": float(metrics.minor["f1"]), "em": float(metrics.minor["em"]), "score": float(metrics.major)}
    return {"accuracy": float(metrics.minor["acc"]), "score": float(metrics.major)}
