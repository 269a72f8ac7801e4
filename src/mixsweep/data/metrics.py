"""Dev-set metrics, computed locally (scikit-learn / scipy) and reported x100 like the paper."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from mixsweep.data.tasks import TaskSpec

SCALE = 100.0


def compute_metrics(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Score ``predictions`` against ``labels`` on every metric of ``task``, x100.

    Classification predictions are class ids, or logits of shape (n, num_labels) that are
    argmax-ed. Regression predictions are floats (shape (n,) or (n, 1)).

    - accuracy = mean(pred == label)
    - f1 = F1 of class 1 (the positive class: paraphrase, duplicate)
    - acc_and_f1 = (accuracy + f1) / 2
    - mcc = Matthews correlation; 0 for a constant predictor (scikit-learn's convention)
    - pearson, spearman = correlation of prediction and score; NaN for a constant predictor,
      whose correlation is undefined
    """
    labels = np.asarray(labels)
    preds = _as_predictions(task, np.asarray(predictions))
    if preds.shape != labels.shape:
        raise ValueError(f"{task.name}: {preds.shape[0]} predictions for {labels.shape[0]} labels")
    if labels.size == 0:
        raise ValueError(f"{task.name}: cannot score an empty set")
    return {name: _METRICS[name](preds, labels) * SCALE for name in task.metrics}


def majority_baseline(task: TaskSpec, dev_labels: np.ndarray) -> dict[str, float]:
    """Scores of the constant predictor that always says the most frequent dev class (x100).

    Ties go to the lowest class id. For regression the constant is the mean score, whose
    correlations are undefined (NaN): a regression task has no majority baseline.
    """
    labels = np.asarray(dev_labels)
    if labels.size == 0:
        raise ValueError(f"{task.name}: no dev labels to compute a majority baseline from")
    if task.is_regression:
        constant = np.full(labels.shape, labels.mean(), dtype=float)
    else:
        counts = np.bincount(labels.astype(int), minlength=task.num_labels)
        constant = np.full(labels.shape, int(np.argmax(counts)))
    return compute_metrics(task, constant, labels)


def _as_predictions(task: TaskSpec, predictions: np.ndarray) -> np.ndarray:
    if task.is_regression:
        if predictions.ndim == 2 and predictions.shape[1] == 1:
            predictions = predictions[:, 0]
        return predictions.astype(float)
    if predictions.ndim == 2:
        return predictions.argmax(axis=1)
    return predictions.astype(int)


def _accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(preds == labels))


def _f1(preds: np.ndarray, labels: np.ndarray) -> float:
    return float(f1_score(labels, preds, pos_label=1, average="binary", zero_division=0.0))


def _acc_and_f1(preds: np.ndarray, labels: np.ndarray) -> float:
    return (_accuracy(preds, labels) + _f1(preds, labels)) / 2


def _mcc(preds: np.ndarray, labels: np.ndarray) -> float:
    return float(matthews_corrcoef(labels, preds))


def _correlation(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(preds: np.ndarray, labels: np.ndarray) -> float:
        if np.ptp(preds) == 0 or np.ptp(labels) == 0:
            return float("nan")
        return float(fn(preds, labels)[0])

    return metric


_METRICS = {
    "accuracy": _accuracy,
    "f1": _f1,
    "acc_and_f1": _acc_and_f1,
    "mcc": _mcc,
    "pearson": _correlation(stats.pearsonr),
    "spearman": _correlation(stats.spearmanr),
}
METRIC_NAMES = tuple(_METRICS)  # every metric a run can record, under the name its record uses
