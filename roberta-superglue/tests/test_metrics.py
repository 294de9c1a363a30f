"""Metrics (jiant's evaluation schemes, through superglue.metrics) against hand-computed values."""

import numpy as np
import pytest

from superglue.metrics import task_metrics

# Three MultiRC questions: q0 all right; q1 a false positive; q2 a false negative.
LABELS = [1, 0, 1, 0, 1, 0, 0, 1, 1]
PREDS = [1, 0, 1, 1, 1, 0, 0, 0, 1]
GROUPS = [0, 0, 0, 1, 1, 2, 2, 2, 2]


def logits_of(preds):
    return np.array([[0.0, 1.0] if p else [1.0, 0.0] for p in preds])


def test_multirc_f1a_and_em_by_hand():
    # TP = 2 (q0) + 1 (q1) + 1 (q2) = 4, FP = 1, FN = 1: F1a = 2*4 / (2*4 + 1 + 1) = 0.8. EM: 1 of 3.
    metrics = task_metrics("multirc", logits_of(PREDS), LABELS, GROUPS)
    assert metrics == pytest.approx({"f1a": 0.8, "em": 1 / 3, "score": (0.8 + 1 / 3) / 2})


def test_em_groups_by_question_id_not_position():
    assert task_metrics("multirc", logits_of([1, 0, 1]), [1, 1, 1], [5, 7, 5])["em"] == pytest.approx(0.5)


def test_f1_edge_cases():
    assert task_metrics("multirc", logits_of([0, 0]), [0, 0], [0, 0])["f1a"] == 0.0  # nothing positive: 0
    assert task_metrics("multirc", logits_of([1, 1]), [0, 0], [0, 1])["f1a"] == 0.0
    assert task_metrics("multirc", logits_of([1, 0, 0, 0]), [1, 1, 1, 1], [0] * 4)["f1a"] == pytest.approx(2 / 5)


def test_accuracy_tasks_score_accuracy():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.2, 0.1]])
    for task in ("boolq", "rte", "wic", "wsc"):
        assert task_metrics(task, logits, [0, 1, 1, 0], [0, 1, 2, 3]) == {"accuracy": 0.75, "score": 0.75}
    copa = np.array([[0.3, 0.9], [0.8, -1.0]])  # one score per choice
    assert task_metrics("copa", copa, [1, 1], [0, 1]) == {"accuracy": 0.5, "score": 0.5}
