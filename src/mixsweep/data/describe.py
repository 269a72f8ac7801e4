"""A JSON-ready summary of a task's loaded splits (``mixsweep data describe``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mixsweep.data.metrics import majority_baseline
from mixsweep.data.tasks import TaskSpec


def describe_splits(task: TaskSpec, splits: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Sizes, label counts (or score range), the dev majority baseline and where the data came from.

    NaN (an undefined correlation of the constant predictor) becomes ``None`` so the result is
    strict JSON.
    """
    dev_labels = splits["dev"]["label"].to_numpy()
    return {
        "task": task.name,
        "headline": task.headline,
        "splits": {name: _describe_split(task, frame) for name, frame in splits.items()},
        "majority_baseline": {k: _json_number(v) for k, v in majority_baseline(task, dev_labels).items()},
    }


def _describe_split(task: TaskSpec, frame: pd.DataFrame) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "size": len(frame),
        "full_size": frame.attrs.get("full_size", len(frame)),
        "source": frame.attrs.get("source"),
        "origin": frame.attrs.get("origin"),
    }
    labels = frame["label"]
    if task.label_names is None:
        summary["scores"] = {
            "min": float(labels.min()),
            "max": float(labels.max()),
            "mean": float(labels.mean()),
        }
    else:
        counts = labels.value_counts()
        summary["label_counts"] = {name: int(counts.get(i, 0)) for i, name in enumerate(task.label_names)}
    return summary


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
