"""What kind of failure a failed run is, read from its own curves (issue 31, item 1).

A run counted as failed under the majority rule at threshold t = majority + d (its final headline
score <= t, or no finite score; :func:`mixsweep.analysis.failures.failure_mask`) is

- ``never_learned``: its training task loss stayed within a band δ of ln C (C classes) throughout:
  the mean ``task_loss`` of every quarter of training lies in [ln C − δ, ln C + δ] (Mosbach et al.
  2021's diagnostic: the loss of a classifier that predicts the class prior never leaves ln C on a
  balanced task). Quarter q (q = 0..3) holds the logged steps s with q·T/4 < s <= (q+1)·T/4, T the
  last logged step; an empty quarter (T < 4) is skipped, a step without a finite task loss (the
  step that diverged) is not read;
- ``collapsed``: not never learned, and some evaluation's headline score was above t (the run
  learned, then fell back to t or below);
- ``other``: failed, neither;
- ``unknown``: the record holds no training task loss (records written before it was logged), so
  whether it never learned cannot be told.

Never learned is read first: a run whose loss never left ln C has learned nothing, whatever one
evaluation scored by chance above t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixsweep.analysis.failures import failure_mask
from mixsweep.config.stored import stored
from mixsweep.records import RunRecord, metric_value

KINDS = ("never_learned", "collapsed", "other", "unknown")
DEFAULT_BAND = 0.05


def quarter_means(train_loss: Sequence[dict[str, Any]]) -> list[float]:
    """Mean task loss of each non-empty quarter of training (see the module docstring), in order."""
    points = [(int(e["step"]), metric_value(e.get("task_loss"))) for e in train_loss
              if isinstance(e, dict) and e.get("step") is not None]
    points = [(s, v) for s, v in points if math.isfinite(v)]
    if not points:
        return []
    last = max(s for s, _ in points)
    quarters: list[list[float]] = [[], [], [], []]
    for step, value in points:
        # q·T/4 < s <= (q+1)·T/4, in integers: q = ceil(4s/T) - 1
        quarters[min(3, max(0, -(-4 * step // last) - 1))].append(value)
    return [float(np.mean(q)) for q in quarters if q]


def failure_kind(eval_curve: Sequence[dict[str, Any]], train_loss: Sequence[dict[str, Any]], headline: str,
                 threshold: float, n_classes: int, band: float = DEFAULT_BAND) -> str:
    """The kind of one failed run (one of :data:`KINDS`) from its eval curve and training loss."""
    means = quarter_means(train_loss)
    if not means:
        return "unknown"
    chance = math.log(n_classes)
    if all(abs(m - chance) <= band for m in means):
        return "never_learned"
    scores = [metric_value((p.get("metrics") or {}).get(headline)) for p in eval_curve]
    if any(s > threshold for s in scores if math.isfinite(s)):
        return "collapsed"
    return "other"


def failed_at(runs: pd.DataFrame, offset: float = 0.0, selection: str = "final") -> pd.Series:
    """The majority rule at threshold majority + ``offset`` points (nullable boolean per run, NA where
    it does not apply): the rule of :mod:`failures` on the run table with its majority scores raised."""
    shifted = runs.assign(majority_score=runs["majority_score"].astype(float) + offset)
    return failure_mask(shifted, "majority", selection)


def run_kinds(runs: pd.DataFrame, records: Sequence[RunRecord], offset: float = 0.0,
              band: float = DEFAULT_BAND) -> pd.Series:
    """Per run of ``runs``: its failure kind if it failed at majority + ``offset``, else None."""
    by_id = {r.run_id: r for r in records}
    failed = failed_at(runs, offset)
    out = pd.Series(None, index=runs.index, dtype=object)
    for i in runs.index[failed.fillna(False).to_numpy(dtype=bool)]:
        record = by_id.get(str(runs.at[i, "run_id"]))
        classes = n_classes(record, str(runs.at[i, "task"]))
        if record is None or classes is None:
            out[i] = "unknown"
            continue
        threshold = float(runs.at[i, "majority_score"]) + offset
        out[i] = failure_kind(record.eval_curve, record.train_loss, record.headline, threshold, classes, band)
    return out


def n_classes(record: RunRecord | None, task: str) -> int | None:
    """C of the run's task: its config's ``task.num_labels``, else the task's; None for a regression or
    an unknown task."""
    labels = stored(record.config if record else None).num_labels
    if labels is None:
        from mixsweep.data.tasks import get_task
        from mixsweep.errors import UserError

        try:
            labels = get_task(task).num_labels
        except UserError:
            return None
    return int(labels) if labels and int(labels) >= 2 else None


def kind_counts(runs: pd.DataFrame, records: Sequence[RunRecord], offset: float = 0.0,
                band: float = DEFAULT_BAND) -> pd.DataFrame:
    """Per (task, cell): n (runs the rule applies to), failed, and the failed runs of each kind."""
    failed = failed_at(runs, offset)
    kinds = run_kinds(runs, records, offset, band)
    work = pd.DataFrame({"task": runs["task"], "cell": runs["cell"].astype(str),
                         "applies": failed.notna().to_numpy(), "failed": failed.fillna(False).to_numpy(dtype=bool)})
    for kind in KINDS:
        work[kind] = (kinds == kind).to_numpy()
    grouped = work.groupby(["task", "cell"], sort=False)
    out = grouped[["failed", *KINDS]].sum().astype(int)
    out.insert(0, "n", grouped["applies"].sum().astype(int))
    return out
