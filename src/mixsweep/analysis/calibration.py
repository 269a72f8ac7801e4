"""Calibrating a testbed: per regime, how often the baseline fails, and the rule that picks one.

A *regime* is one cell of a calibration study (``sweeps/testbed_calibration.yaml``): the baseline
recipe at one train size, batch, number of epochs and learning rate. The testbed regime is chosen
from this table alone, by a rule fixed before the calibration ran, never by how other methods do
on it (:func:`choose_regime`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixsweep.analysis.failures import DEFAULT, failure_mask
from mixsweep.records import RunRecord

# The failure-rate band a testbed regime must fall in: the phenomenon (restarts of one recipe that
# end far apart, some at the majority answer) shows, and neither outcome is so rare that 20
# restarts would miss it.
LOW, HIGH = 0.2, 0.8


@dataclass(frozen=True)
class Choice:
    regime: str
    reason: str


def regime_table(runs: pd.DataFrame, records: list[RunRecord]) -> pd.DataFrame:
    """One row per regime (the study's cells) from the tidy run table and the run records.

    Columns: regime, train_size, batch_size, epochs, lr, steps (= ceil(train_size / batch_size) ·
    epochs, the optimizer updates of one run), restarts (runs with a record), failed (under the
    report's default definition, on the final score), failure_rate (= failed / restarts), mean and
    std (population, ddof 0, as in the report) of the final dev score, min, max, and wall_s (mean
    wall time of one run, ``times.total_s``: training plus dev evaluations, without process start).
    """
    by_id = {r.run_id: r for r in records}
    failed = failure_mask(runs, DEFAULT)
    rows = []
    for cell, group in runs.groupby("cell", sort=False):
        first = by_id[group["run_id"].iloc[0]].config
        n, b = first["data"]["train_size"], first["train"]["batch_size"]
        epochs = first["train"]["epochs"]
        scores = group["final_score"].to_numpy(dtype=float)
        flags = failed.loc[group.index]
        walls = [by_id[i].times.get("total_s", math.nan) for i in group["run_id"]]
        rows.append({
            "regime": cell,
            "train_size": n,
            "batch_size": b,
            "epochs": epochs,
            "lr": first["optimizer"]["lr"],
            "steps": math.ceil(n / b) * epochs,
            "restarts": len(group),
            "failed": int(flags.fillna(True).sum()),
            "failure_rate": float(flags.fillna(True).mean()),
            "mean": float(np.nanmean(scores)),
            "std": float(np.nanstd(scores)),
            "min": float(np.nanmin(scores)),
            "max": float(np.nanmax(scores)),
            "wall_s": float(np.nanmean(walls)),
        })
    return pd.DataFrame(rows)


def choose_regime(table: pd.DataFrame, low: float = LOW, high: float = HIGH) -> Choice:
    """The rule, stated before the calibration ran (``sweeps/testbed_calibration.yaml``):

    among the regimes whose baseline fails in ``[low, high]`` of its restarts, the one with the
    smallest mean wall time per run, a tie going to the larger std of the dev score; if no regime
    is in the band, the regime with the largest std.
    """
    if table.empty:
        raise ValueError("no regime has a run yet: run the calibration study first")
    band = table[(table["failure_rate"] >= low) & (table["failure_rate"] <= high)]
    if not band.empty:
        pick = band.sort_values(["wall_s", "std"], ascending=[True, False], kind="stable").iloc[0]
        return Choice(str(pick["regime"]), (
            f"cheapest of the {len(band)} regime(s) whose baseline fails in "
            f"{low:.0%}–{high:.0%} of restarts ({pick['failed']}/{pick['restarts']}, "
            f"{pick['wall_s']:.1f} s per run)"))
    pick = table.sort_values("std", ascending=False, kind="stable").iloc[0]
    return Choice(str(pick["regime"]), (
        f"no regime fails in {low:.0%}–{high:.0%} of restarts: the largest restart spread "
        f"(std {pick['std']:.2f})"))
