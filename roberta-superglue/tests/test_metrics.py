"""Metrics against hand-computed values."""

import numpy as np
import pytest

from superglue.metrics import accuracy, exact_match, f1_binary, task_metrics

# Three MultiRC questions: q0 all right; q1 a false positive; q2 a false negative.
LABELS = [1, 0, 1, 0, 1, 0, 0, 1, 1]
PREDS = [1, 0, 1, 1, 1, 0, 0, 0, 1]
GROUPS = [0, 0, 0, 1, 1, 2, 2, 2, 2]


def test_multirc_f1a_and_em_by_hand():
    # TP = 2 (q0) + 1 (q1) + 1 (q2) = 4, FP = 1, FN = 1: F1a = 2*4 / (2*4 + 1 + 1) = 0.8. EM: 1 of 3.
    assert f1_binary(PREDS, LABELS) == pytest.approx(0.8)
    assert exact_match(PREDS, LABELS, GROUPS) == pytest.approx(1 / 3)
    logits = np.array([[0.0, 1.0] if p else [1.0, 0.0] for p in PREDS])
    metrics = task_metrics("multirc", logits, LABELS, GROUPS)
    assert metrics == pytest.approx({"f1a": 0.8, "em": 1 / 3, "score": (0.8 + 1 / 3) / 2})


def test_em_groups_need_not_be_contiguous():
    assert exact_match([1, 0, 1], [1, 1, 1], [5, 7, 5]) == pytest.approx(0.5)


def test_f1_edge_cases():
    assert f1_binary([0, 0], [0, 0]) == 0.0  # nothing positive anywhere: 0, as scikit-learn
    assert f1_binary([1, 1], [0, 0]) == 0.0
    assert f1_binary([1, 0, 0, 0], [1, 1, 1, 1]) == pytest.approx(2 / 5)


def test_accuracy_tasks_score_accuracy():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.2, 0.1]])
    assert accuracy([0, 1, 0, 0], [0, 1, 1, 0]) == 0.75
    assert task_metrics("rte", logits, [0, 1, 1, 0], [0, 1, 2, 3]) == {"accuracy": 0.75, "score": 0.75}
    copa = np.array([[0.3, 0.9], [0.8, -1.0]])  # one score per choice
    assert task_metrics("copa", copa, [1, 1], [0, 1]) == {"accuracy": 0.5, "score": 0.5}
