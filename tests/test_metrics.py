"""Metrics against hand-computed values; majority baselines from label counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixsweep.data.metrics import compute_metrics, majority_baseline
from mixsweep.data.tasks import get_task

# labels 1 1 0 0 1 vs predictions 1 0 0 1 1: TP=2 TN=1 FP=1 FN=1
LABELS = np.array([1, 1, 0, 0, 1])
PREDS = np.array([1, 0, 0, 1, 1])


def test_accuracy_f1_and_their_mean():
    scores = compute_metrics(get_task("mrpc"), PREDS, LABELS)
    # accuracy 3/5; precision = recall = 2/3, so F1 = 2/3
    assert scores["accuracy"] == pytest.approx(60.0)
    assert scores["f1"] == pytest.approx(200 / 3)
    assert scores["acc_and_f1"] == pytest.approx((60.0 + 200 / 3) / 2)
    assert set(scores) == {"accuracy", "f1", "acc_and_f1"}


def test_matthews_correlation():
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3*3*2*2) = 1/6
    scores = compute_metrics(get_task("cola"), PREDS, LABELS)
    assert scores["mcc"] == pytest.approx(100 / 6)
    assert scores["accuracy"] == pytest.approx(60.0)


def test_mcc_is_zero_for_a_constant_predictor():
    assert compute_metrics(get_task("cola"), np.ones(5, dtype=int), LABELS)["mcc"] == 0.0
    assert compute_metrics(get_task("cola"), np.zeros(5, dtype=int), LABELS)["mcc"] == 0.0


def test_logits_are_argmaxed():
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.5, 0.4], [-2.0, 1.0], [0.0, 0.3]])
    assert compute_metrics(get_task("rte"), logits, LABELS)["accuracy"] == pytest.approx(60.0)


def test_three_class_accuracy():
    scores = compute_metrics(get_task("mnli"), np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))
    assert scores == {"accuracy": pytest.approx(75.0)}


def test_pearson_and_spearman():
    # x = 1 2 3, y = 1 2 4: sum dx*dy = 3, sum dx^2 = 2, sum dy^2 = 42/9 -> r = 9 / sqrt(84)
    scores = compute_metrics(get_task("stsb"), np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert scores["pearson"] == pytest.approx(100 * 9 / math.sqrt(84))
    assert scores["spearman"] == pytest.approx(100.0)
    # rank differences 0 -1 1 0: rho = 1 - 6*2 / (4*(16-1)) = 0.8
    scores = compute_metrics(get_task("stsb"), np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert scores["spearman"] == pytest.approx(80.0)


def test_regression_accepts_a_column_of_predictions():
    column = np.array([[1.0], [2.0], [3.0]])
    assert compute_metrics(get_task("stsb"), column, np.array([1.0, 2.0, 4.0]))["spearman"] == pytest.approx(
        100.0
    )


def test_constant_regression_predictor_gives_nan_not_an_error(recwarn):
    scores = compute_metrics(get_task("stsb"), np.full(4, 2.5), np.array([0.0, 1.0, 3.0, 5.0]))
    assert math.isnan(scores["pearson"]) and math.isnan(scores["spearman"])
    assert not recwarn.list


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="4 predictions for 5 labels"):
        compute_metrics(get_task("rte"), PREDS[:4], LABELS)


def test_mrpc_majority_baseline_from_counts():
    # standard MRPC dev: 279 paraphrases, 129 not; the majority predictor says "paraphrase"
    labels = np.array([1] * 279 + [0] * 129)
    baseline = majority_baseline(get_task("mrpc"), labels)
    accuracy = 279 / 408
    f1 = 2 * accuracy / (accuracy + 1)  # precision = accuracy, recall = 1
    assert baseline["accuracy"] == pytest.approx(100 * accuracy)
    assert baseline["f1"] == pytest.approx(100 * f1)
    assert baseline["acc_and_f1"] == pytest.approx(50 * (accuracy + f1))


def test_cola_majority_baseline_has_zero_mcc():
    labels = np.array([1] * 721 + [0] * 322)
    assert majority_baseline(get_task("cola"), labels) == {
        "mcc": 0.0,
        "accuracy": pytest.approx(100 * 721 / 1043),
    }


def test_majority_can_be_class_zero_and_ties_go_to_the_lowest_id():
    assert majority_baseline(get_task("rte"), np.array([0, 0, 1]))["accuracy"] == pytest.approx(200 / 3)
    f1_if_class_1 = majority_baseline(get_task("mrpc"), np.array([0, 1]))["f1"]
    assert f1_if_class_1 == 0.0  # tie -> class 0 predicted -> no true positives


def test_regression_majority_baseline_is_undefined():
    baseline = majority_baseline(get_task("stsb"), np.array([0.0, 2.0, 5.0]))
    assert set(baseline) == {"pearson", "spearman"}
    assert all(math.isnan(v) for v in baseline.values())
