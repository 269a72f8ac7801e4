"""The standard split frame every source produces: ``text_a``, optional ``text_b``, ``label``.

Labels are class ids (int64) for classification and scores (float64) for regression. Sources
hand over raw label values plus a way to name each row's location, so every error points at a
file:line or row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError

TEXT_COLUMNS = ("text_a", "text_b")
Locate = Callable[[int], str]  # row index -> "file:line" or "file row N"


def make_frame(
    task: TaskSpec,
    texts: Sequence[Sequence[Any]],
    raw_labels: Sequence[Any],
    label_ids: Mapping[str, int] | None,
    locate: Locate,
    origin: str,
) -> pd.DataFrame:
    """Build the standard frame; ``label_ids`` maps raw label strings to ids (``None``: a score).

    ``origin`` (the file path or hub id read) is kept in ``frame.attrs["origin"]``.
    """
    if len(texts) != len(task.text_keys):
        raise ValueError(f"{task.name} needs {len(task.text_keys)} text columns, got {len(texts)}")
    columns: dict[str, Any] = {}
    for name, values in zip(TEXT_COLUMNS, texts, strict=False):
        columns[name] = [_text(v, name, i, locate) for i, v in enumerate(values)]
    if label_ids is None:
        columns["label"] = np.array(
            [_score(v, i, locate) for i, v in enumerate(raw_labels)], dtype=np.float64
        )
    else:
        columns["label"] = np.array(
            [_class_id(v, label_ids, i, locate) for i, v in enumerate(raw_labels)], dtype=np.int64
        )
    frame = pd.DataFrame(columns)
    frame.attrs["origin"] = origin
    return frame


def label_ids_by_name_or_id(task: TaskSpec) -> dict[str, int] | None:
    """Accept a class name (``entailment``) or its id (``0``) as a label value; ``None`` for a score."""
    if task.label_names is None:
        return None
    return {
        **{name: i for i, name in enumerate(task.label_names)},
        **{str(i): i for i in range(task.num_labels)},
    }


def label_key(value: Any) -> str:
    """The string form a raw label is looked up by; integral numbers (1, 1.0, "1") all give "1"."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _class_id(value: Any, label_ids: Mapping[str, int], i: int, locate: Locate) -> int:
    key = label_key(value)
    if key not in label_ids:
        choices = ", ".join(sorted(label_ids))
        raise UserError(
            f"{locate(i)}: unknown label {key!r}; expected one of {choices} (fix or drop that row)"
        )
    return label_ids[key]


def _score(value: Any, i: int, locate: Locate) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise UserError(f"{locate(i)}: score {value!r} is not a finite number (fix or drop that row)")
    return score


def _text(value: Any, column: str, i: int, locate: Locate) -> str:
    if not isinstance(value, str):
        raise UserError(
            f"{locate(i)}: {column} is missing or not text ({value!r}); fill it in or drop that row"
        )
    return value
