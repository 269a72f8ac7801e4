"""Calibrating a testbed: per regime, how the baseline fails, and the rule that picks one (issue 31).

A *regime* is one cell of the calibration study (``sweeps/testbed_calibration.yaml``): the baseline
recipe at one train size, batch, number of epochs, learning rate and warmup. Its failed restarts are
rerun with the same seed at twice the updates (``sweeps/testbed_calibration_x2.yaml``). The testbed
regime is chosen from these tables alone, by :func:`qualification` and :func:`choose_regime`, which were
committed before any calibration run (``docs/testbed/calibration.md`` names that commit, and
``tests/test_calibration.py`` checks that no calibration record predates it and that the rule has not
changed since); never by how other methods do on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixsweep.analysis.failures import MAJORITY, failure_mask
from mixsweep.records import RunRecord

# The rule's constants. A regime qualifies when its baseline fails in [LOW, HIGH] of its restarts
# (the phenomenon shows, and 20 restarts see both outcomes); the median final score of the restarts that
# did not fail is at least MIN_GAP points above the majority answer (failure is a separate cluster, not
# the bottom of one spread); the good restarts have plateaued (PLATEAU: the median change between their
# last two evaluations is within the spread of their final scores, so the budget is not cutting them
# short); and at least MIN_STAY of the failed restarts, rerun at twice the updates, fail again (failure is
# not slow learning).
LOW, HIGH = 0.2, 0.8
MIN_GAP = 10.0
MIN_STAY = 0.75
CRITERIA = ("band", "gap", "plateau", "stays_failed")


@dataclass(frozen=True)
class Choice:
    regime: str | None  # None: no regime has a run
    qualified: bool  # False: the closest regime, a negative result
    reason: str


def regime_table(runs: pd.DataFrame, records: list[RunRecord],
                 reruns: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per regime (the study's cells) from the tidy run table and the run records.

    Columns: regime, train_size, batch_size, epochs, lr, warmup, steps (= ceil(train_size / batch_size) ·
    epochs, the optimizer updates of one run), restarts (runs with a record), failed (final dev score <=
    the majority-class score; a diverged run or a NaN score counts as failed), failure_rate (= failed /
    restarts), failed_seeds (space-separated), mean and std (population, ddof 0) of the final dev score,
    min, max, majority (the dev set's majority-class score), median_ok (median final score of the restarts
    that did not fail; NaN if none), gap (= median_ok − majority), last_change (median over those restarts
    of |s_last − s_second_last|, their last two evaluations), spread_ok (population std of their final
    scores), wall_s (mean ``times.total_s`` of one run), and, from ``reruns`` (the x2 study's runs, cell
    ``<regime>_x2``): rerun (failed restarts rerun at twice the updates) and rerun_failed (of those, failed
    again), both NaN where nothing was rerun.
    """
    by_id = {r.run_id: r for r in records}
    failed = failure_mask(runs, MAJORITY.name)
    again = _rerun_counts(reruns)
    rows = []
    for cell, group in runs.groupby("cell", sort=False):
        first = by_id[group["run_id"].iloc[0]].config
        n, b = first["data"]["train_size"], first["train"]["batch_size"]
        epochs = first["train"]["epochs"]
        scores = group["final_score"].to_numpy(dtype=float)
        flags = failed.loc[group.index].fillna(True).to_numpy(dtype=bool)
        ok_ids = group["run_id"][~flags]
        ok_scores = scores[~flags]
        changes = [_last_change(by_id[i]) for i in ok_ids]
        majority = float(group["majority_score"].iloc[0])
        median_ok = float(np.median(ok_scores)) if len(ok_scores) else math.nan
        walls = [by_id[i].times.get("total_s", math.nan) for i in group["run_id"]]
        rerun, rerun_failed = again.get(str(cell), (math.nan, math.nan))
        rows.append({
            "regime": cell,
            "train_size": n,
            "batch_size": b,
            "epochs": epochs,
            "lr": first["optimizer"]["lr"],
            "warmup": first["train"].get("warmup_ratio", math.nan),
            "steps": math.ceil(n / b) * epochs,
            "restarts": len(group),
            "failed": int(flags.sum()),
            "failure_rate": float(flags.mean()),
            "failed_seeds": " ".join(str(int(s)) for s in sorted(group["seed"][flags])),
            "mean": float(np.nanmean(scores)),
            "std": float(np.nanstd(scores)),
            "min": float(np.nanmin(scores)),
            "max": float(np.nanmax(scores)),
            "majority": majority,
            "median_ok": median_ok,
            "gap": median_ok - majority,
            "last_change": float(np.nanmedian(changes)) if changes else math.nan,
            "spread_ok": float(np.std(ok_scores)) if len(ok_scores) else math.nan,
            "wall_s": float(np.nanmean(walls)),
            "rerun": rerun,
            "rerun_failed": rerun_failed,
        })
    return pd.DataFrame(rows)


def _rerun_counts(reruns: pd.DataFrame | None) -> dict[str, tuple[int, int]]:
    """``{regime: (rerun, failed again)}`` from the x2 study's runs (cells ``<regime>_x2``)."""
    if reruns is None or reruns.empty:
        return {}
    failed = failure_mask(reruns, MAJORITY.name).fillna(True)
    out = {}
    for cell, group in reruns.groupby("cell", sort=False):
        regime = str(cell).removesuffix("_x2")
        out[regime] = (len(group), int(failed.loc[group.index].sum()))
    return out


def _last_change(record: RunRecord) -> float:
    """|s_last − s_second_last| of the headline dev score over the run's last two evaluations."""
    points = [p.get("metrics", {}).get(record.headline) for p in record.eval_curve]
    points = [float(p) for p in points if p is not None]
    if len(points) < 2:
        return math.nan
    return abs(points[-1] - points[-2])


def qualification(row: Mapping[str, float]) -> dict[str, bool | None]:
    """Which of the rule's criteria one regime meets (None: not evaluated yet), with t = failure_rate::

        band:         LOW <= failed / restarts <= HIGH                      (0.2 ... 0.8)
        gap:          median_ok − majority >= MIN_GAP                       (10 points)
        plateau:      last_change <= spread_ok                              (good restarts have plateaued)
        stays_failed: rerun_failed / rerun >= MIN_STAY, rerun > 0           (0.75; the failed restarts at
                                                                              twice the updates)

    ``stays_failed`` is None until the reruns exist; the calibration reruns only regimes that meet the
    other three. A regime without non-failed restarts meets neither gap nor plateau.
    """
    rate = float(row["failure_rate"])
    gap, change, spread = float(row["gap"]), float(row["last_change"]), float(row["spread_ok"])
    rerun, again = float(row.get("rerun", math.nan)), float(row.get("rerun_failed", math.nan))
    return {
        "band": LOW <= rate <= HIGH,
        "gap": bool(gap >= MIN_GAP) if math.isfinite(gap) else False,
        "plateau": bool(change <= spread) if math.isfinite(change) and math.isfinite(spread) else False,
        "stays_failed": (again / rerun >= MIN_STAY) if math.isfinite(rerun) and rerun > 0 else None,
    }


def needs_rerun(row: Mapping[str, float]) -> bool:
    """Whether the calibration reruns this regime's failed restarts at twice the updates: it meets
    band, gap and plateau (the rerun is the last, and the most expensive, criterion)."""
    q = qualification(row)
    return bool(q["band"] and q["gap"] and q["plateau"])


def choose_regime(table: pd.DataFrame) -> Choice:
    """The rule, committed before the calibration ran:

    a regime *qualifies* when it meets all four criteria of :func:`qualification`. Among the qualifying
    regimes the one whose failure rate is closest to 50% (a two-arm comparison of failure counts has the
    most power there), a tie going to fewer updates, then to the larger gap, then to the first listed.
    If none qualifies, that is the result (a negative one): the *closest* regime is named, the one that
    meets the most criteria, a tie going to the failure rate closest to 50%, then the first listed; the
    testbed then stays a pipeline check.
    """
    if table.empty:
        return Choice(None, False, "no regime has a run yet: run the calibration study first (make calibrate)")
    rows = table.reset_index(drop=True)
    marks = [qualification(r) for _, r in rows.iterrows()]
    met = pd.Series([sum(bool(v) for v in m.values()) for m in marks])
    qualified = pd.Series([all(v is True for v in m.values()) for m in marks])
    distance = (rows["failure_rate"] - 0.5).abs()
    order = pd.DataFrame({"q": qualified, "met": met, "d": distance, "steps": rows["steps"],
                          "gap": rows["gap"].fillna(-math.inf), "i": range(len(rows))})
    if qualified.any():
        pick = order[order["q"]].sort_values(["d", "steps", "gap", "i"], ascending=[True, True, False, True]).iloc[0]
        r = rows.iloc[int(pick["i"])]
        return Choice(str(r["regime"]), True, (
            f"{int(qualified.sum())} regime(s) qualify; this one's failure rate ({r['failed']}/{r['restarts']}) "
            f"is closest to 50%"))
    pick = order.sort_values(["met", "d", "i"], ascending=[False, True, True]).iloc[0]
    r, m = rows.iloc[int(pick["i"])], marks[int(pick["i"])]
    missing = ", ".join(k for k in CRITERIA if m[k] is not True)
    return Choice(str(r["regime"]), False, (
        f"no regime qualifies; the closest meets {int(pick['met'])} of {len(CRITERIA)} criteria "
        f"(not met or not evaluated: {missing})"))


def rule_fingerprint(module_text: str) -> str:
    """The rule as code: this module's syntax tree with docstrings dropped (``ast.dump``), so that two
    versions of the module state the same rule exactly when their fingerprints are equal (comments and
    docstrings may change; nothing that computes may)."""
    import ast

    tree = ast.parse(module_text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)
