"""Published numbers of other papers beside a study's own cells.

A study may ship ``mixsweep/paper_data/published_<study>.csv`` with one row per (task, cell, source):
``study, task, cell, source, metric, protocol, optimizer, n_seeds, mean, std, median, max, note``.
``cell`` is the study file's cell name (``<cell>@<value>`` for a crossed cell) of a cell run with the
source's config; empty fields are numbers the source does not give (never guessed). ``protocol`` is
the source's selection protocol, one of :data:`mixsweep.analysis.selection.PROTOCOLS` (``final``,
``best``, ``zhang2021``), and ``metric`` the source's metric as our runs record it (a key of
:data:`mixsweep.data.metrics.METRIC_NAMES`: ``accuracy``, ``acc_and_f1``, ``mcc``, ...). The number printed
beside a row is ours under the same protocol **and on the same metric**, whatever the report's
``--selection`` and the task's headline (:func:`score_column`): Mosbach et al.'s MRPC rows are
``acc_and_f1`` = (accuracy + F1) / 2, and their early stopping chooses the checkpoint on that mean, so
ours is the mean too, at the point the mean chose (not F1 at the point F1 chose). The report joins
these rows to the runs of that study's cells, whatever their labels.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from io import StringIO

import numpy as np
import pandas as pd

from mixsweep.analysis.naming import sort_tasks
from mixsweep.analysis.selection import PROTOCOLS
from mixsweep.data.metrics import METRIC_NAMES

COLUMNS = ["study", "task", "cell", "source", "metric", "protocol", "optimizer", "n_seeds", "mean", "std",
           "median", "max", "note"]


@cache
def published_numbers(study: str) -> pd.DataFrame | None:
    """The shipped published numbers of ``study``, or None when it ships none."""
    path = resources.files("mixsweep").joinpath("paper_data", f"published_{study}.csv")
    if not path.is_file():
        return None
    df = pd.read_csv(StringIO(path.read_text(encoding="utf-8")), keep_default_na=False, na_values=[""])
    missing = sorted(set(COLUMNS) - set(df.columns))
    if missing:
        raise ValueError(f"{path.name} lacks the columns {missing}")
    unknown = sorted(set(df["protocol"]) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"{path.name} names the protocols {unknown}: use one of {sorted(PROTOCOLS)}")
    unknown = sorted(set(df["metric"]) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(f"{path.name} names the metrics {unknown}: use one of {sorted(METRIC_NAMES)}")
    return df


def score_column(protocol: str, metric: str) -> str:
    """The run-table column that scores a run as a source with ``protocol`` and ``metric`` does:
    ``best_on_<metric>`` for ``best`` (the eval point with the highest ``metric``, scored on it: early
    stopping on the row's own metric), else ``<protocol>_<metric>`` (``final``: the end of training;
    ``zhang2021``: the test half at the point the reference's val-half rule chose)."""
    return f"best_on_{metric}" if protocol == "best" else f"{protocol}_{metric}"


def _fmt(mean: float, std: float | None = None, top: float | None = None) -> str:
    if mean is None or not np.isfinite(mean):
        return ""
    s = f"{mean:.1f}"
    if std is not None and np.isfinite(std):
        s += f" ± {std:.1f}"
    if top is not None and np.isfinite(top):
        s += f" ({top:.1f})"
    return s


def beside_ours(runs: pd.DataFrame) -> pd.DataFrame | None:
    """One row per published number whose (study, task, cell) has runs here: ours as mean ± std (max)
    over the finite scores under the row's protocol and metric (:func:`score_column`; population std,
    as the per-cell table), theirs likewise, and Δmean."""
    if runs.empty or "sweep" not in runs:
        return None
    data = runs
    rows = []
    for study in sorted(set(data["sweep"].dropna())):
        pub = published_numbers(str(study))
        if pub is None:
            continue
        mine = data[data["sweep"] == study]
        for task in sort_tasks(set(pub["task"]) & set(mine["task"])):
            for _, p in pub[pub["task"] == task].iterrows():
                column = score_column(p["protocol"], p["metric"])
                if column not in mine:
                    continue
                x = mine.loc[(mine["task"] == task) & (mine["cell"].astype(str) == str(p["cell"])), column]
                x = x.astype(float)
                x = x[np.isfinite(x)].to_numpy()
                if x.size == 0:
                    continue
                theirs = float(p["mean"]) if pd.notna(p["mean"]) else np.nan
                rows.append({
                    "task": task, "cell": p["cell"], "protocol (both)": p["protocol"],
                    "metric (both)": p["metric"], "n": x.size,
                    "ours mean ± std (max)": _fmt(x.mean(), x.std(ddof=0), x.max()),
                    "published mean ± std (max)": _fmt(theirs, p["std"] if pd.notna(p["std"]) else None,
                                                       p["max"] if pd.notna(p["max"]) else None),
                    "Δmean": f"{x.mean() - theirs:+.1f}" if np.isfinite(theirs) else "",
                    "their n": "" if pd.isna(p["n_seeds"]) else int(p["n_seeds"]),
                    "their optimizer": p["optimizer"],
                    "source": p["source"] + (f"; {p['note']}" if pd.notna(p["note"]) and p["note"] else ""),
                })
    return pd.DataFrame(rows) if rows else None
