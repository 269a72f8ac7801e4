"""Published numbers of other papers beside a study's own cells.

A study may ship ``mixsweep/paper_data/published_<study>.csv`` with one row per (task, cell, source):
``study, task, cell, source, metric, protocol, optimizer, n_seeds, mean, std, median, max, note``.
``cell`` is the study file's cell name; empty fields are numbers the source does not give (never
guessed). The report joins these rows to the runs of that study's cells, whatever their labels.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from io import StringIO

import numpy as np
import pandas as pd

from mixsweep.analysis.naming import sort_tasks

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
    return df


def _fmt(mean: float, std: float | None = None, top: float | None = None) -> str:
    if mean is None or not np.isfinite(mean):
        return ""
    s = f"{mean:.1f}"
    if std is not None and np.isfinite(std):
        s += f" ± {std:.1f}"
    if top is not None and np.isfinite(top):
        s += f" ({top:.1f})"
    return s


def beside_ours(runs: pd.DataFrame, scores: pd.Series) -> pd.DataFrame | None:
    """One row per published number whose (study, task, cell) has runs here: ours as mean ± std (max)
    over the finite scores (population std, as the per-cell table), theirs likewise, and Δmean."""
    if runs.empty or "sweep" not in runs:
        return None
    data = runs.assign(score=scores.astype(float))
    rows = []
    for study in sorted(set(data["sweep"].dropna())):
        pub = published_numbers(str(study))
        if pub is None:
            continue
        mine = data[data["sweep"] == study]
        for task in sort_tasks(set(pub["task"]) & set(mine["task"])):
            for _, p in pub[pub["task"] == task].iterrows():
                x = mine.loc[(mine["task"] == task) & (mine["cell"].astype(str) == str(p["cell"])), "score"]
                x = x[np.isfinite(x)].to_numpy()
                if x.size == 0:
                    continue
                theirs = float(p["mean"]) if pd.notna(p["mean"]) else np.nan
                rows.append({
                    "task": task, "cell": p["cell"], "n": x.size,
                    "ours mean ± std (max)": _fmt(x.mean(), x.std(ddof=0), x.max()),
                    "published mean ± std (max)": _fmt(theirs, p["std"] if pd.notna(p["std"]) else None,
                                                       p["max"] if pd.notna(p["max"]) else None),
                    "Δmean": f"{x.mean() - theirs:+.1f}" if np.isfinite(theirs) else "",
                    "their n": "" if pd.isna(p["n_seeds"]) else int(p["n_seeds"]),
                    "their metric / protocol / optimizer": f"{p['metric']} / {p['protocol']} / {p['optimizer']}",
                    "source": p["source"] + (f"; {p['note']}" if pd.notna(p["note"]) and p["note"] else ""),
                })
    return pd.DataFrame(rows) if rows else None
