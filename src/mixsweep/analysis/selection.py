"""Selection protocols: which point of a run's eval curve gives its score.

- ``final`` (Lee et al. 2020, Mosbach et al. 2021): the whole dev set at the end of training.
- ``best`` (Dodge et al. 2020's best-found score): the whole dev set at the eval point with the best
  headline score. Optimistic: the same examples choose the point and score it.
- ``zhang2021`` (Zhang et al. 2021): dev is split once into fixed val and test halves
  (:mod:`mixsweep.data.dev_split`); the score is the **test-half** headline metric at the eval point whose
  **val-half** selection metric is highest (the first such point on ties; NaN never wins). The
  selection metric is the reference's (revisit-bert-finetuning ``run_glue.py``, the ``best_val_acc``
  update): accuracy whenever the task records it (RTE, MRPC, ...; MRPC is chosen on accuracy, scored
  on F1), else MCC (CoLA), else Spearman (STS-B) -- see :func:`zhang2021_metric`.

All three read the same stored curves, so they compare on the same runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mixsweep.records import zhang2021_index

PROTOCOLS = {
    "final": "end of training, whole dev set (Lee et al. 2020; Mosbach et al. 2021)",
    "best": "best point of the eval curve, whole dev set (Dodge et al. 2020's best-found score)",
    "zhang2021": "test half of dev at the best val-half point (Zhang et al. 2021)",
}


def zhang2021_point(curve: list[dict[str, Any]], headline: str) -> dict[str, float] | None:
    """Test-half metrics at the point :func:`mixsweep.records.zhang2021_index` selects (on the val-half
    :func:`mixsweep.records.zhang2021_metric`); None if no point has halves.

    The point follows :func:`mixsweep.records.best_point`'s rule, the one rule for a run's "best": NaN or
    missing never wins, the first of equal maxima does. When no point has a finite val-half score, no
    point is selected and every test-half metric is NaN (the run has halves, but no zhang2021 score).
    """
    halves = [p for p in curve if p.get("val_half") is not None and p.get("test_half") is not None]
    if not halves:
        return None
    i = zhang2021_index(curve, headline)
    if i is None:
        return {name: math.nan for name in halves[0]["test_half"]}
    return dict(curve[i]["test_half"])


def protocol_table(runs: pd.DataFrame, failure: str | None = "lee2020") -> pd.DataFrame:
    """Per (task, label): mean headline score [#failed under ``failure``] under each protocol, same runs.

    Only runs that recorded the dev halves (``has_halves``) are counted, so every column covers the
    same runs; ``n`` is their number.
    """
    from mixsweep.analysis.failures import failure_mask
    from mixsweep.analysis.naming import display_name, sort_labels, sort_tasks

    runs = runs[runs["has_halves"].astype(bool) & runs["status"].ne("failed")]
    fails = {p: failure_mask(runs, failure, p) for p in PROTOCOLS} if failure else {}
    rows = []
    for task in sort_tasks(set(runs["task"])):
        for label in sort_labels(set(runs.loc[runs["task"] == task, "label"])):
            idx = runs.index[(runs["task"] == task) & (runs["label"] == label)]
            row = {"task": task, "regularizer": display_name(label), "n": len(idx)}
            for p in PROTOCOLS:
                x = runs.loc[idx, f"{p}_score"].to_numpy(dtype=float)
                mean = f"{x[np.isfinite(x)].mean():.1f}" if np.isfinite(x).any() else "–"
                count = fails[p].loc[idx].sum(min_count=1) if failure else pd.NA
                row[p] = mean + ("" if count is pd.NA else f" [{int(count)}]")
            rows.append(row)
    return pd.DataFrame(rows)
