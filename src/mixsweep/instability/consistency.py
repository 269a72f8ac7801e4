"""Whether the measures agree with each other: Du & Nguyen's (2023) central analyses, on a study's cells.

- :func:`kendall_tau`: per task, Kendall's τ between two measures' rankings of the cells (the authors'
  "tau" cell in ``analyze_measures.ipynb``: ``pingouin.corr(..., method='kendall')``, which is
  scipy's τ-b, over the mitigation methods of one model and task);
- :func:`bootstrap_correlations`: per cell, the Pearson correlation between two measures over the
  authors' bootstrap draws of restarts (their "Bootstrapping" cell; :func:`~.cell.bootstrap_values`);
- :func:`outcome_split`: each measure on the successful runs alone and on the failed runs alone (their
  "Successful vs. failed runs": the pairs whose two runs are both successful, or both failed).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mixsweep.instability.cell import BOOTSTRAP, CellMeasures, bootstrap_values, subset_values


def kendall_tau(values: pd.DataFrame) -> pd.DataFrame:
    """τ-b between every two columns (measures) of ``values`` (one row per cell), over the cells where
    both are finite: τ_b = (C − D) / √((C + D + T_x)(C + D + T_y)), C/D the concordant/discordant pairs of
    cells, T_x/T_y the pairs tied in one measure only. Long table: ``a``, ``b`` (column names in order),
    ``tau`` (NaN with fewer than 3 such cells or a constant measure), ``n`` (the cells)."""
    from scipy.stats import kendalltau

    rows = []
    cols = list(values.columns)
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            x, y = values[a].to_numpy(dtype=float), values[b].to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            n = int(ok.sum())
            tau = float("nan")
            if n >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                tau = float(kendalltau(x[ok], y[ok]).statistic)
            rows.append({"a": a, "b": b, "tau": tau, "n": n})
    return pd.DataFrame(rows, columns=["a", "b", "tau", "n"])


def bootstrap_correlations(cm: CellMeasures, layer: str | None, n_boot: int = BOOTSTRAP,
                           seed: int = 0) -> pd.DataFrame:
    """Pearson r between every two measures of one cell over the authors' B bootstrap draws of its
    restarts (measure × measure; a measure constant over the draws gives NaN). Their draw rule pairs a
    repeated run with itself at distance 0, so a draw with many repeats lowers every pairwise measure
    at once: part of these correlations comes from the draw rule itself."""
    draws = bootstrap_values(cm, layer, n_boot, seed)
    if draws.empty:
        return pd.DataFrame()
    keep = [c for c in draws.columns if draws[c].notna().all() and draws[c].std() > 0]
    return draws[keep].corr(method="pearson")


def outcome_split(cm: CellMeasures, failed: np.ndarray, layer: str | None) -> dict[str, dict[str, float]]:
    """Each measure of the cell on its successful runs alone and on its failed runs alone (``failed``:
    one flag per run, NaN/None = not applicable, left out of both): ``{"successful": {...}, "failed":
    {...}}``, with ``n`` the group's runs; a group with fewer than 2 runs has only ``n``."""
    flags = pd.array(failed, dtype="boolean")
    out: dict[str, dict[str, float]] = {}
    for group, want in (("successful", False), ("failed", True)):
        idx = np.flatnonzero((flags == want).fillna(False).to_numpy(dtype=bool))
        values: dict[str, float] = {"n": float(len(idx))}
        if len(idx) >= 2:
            values.update(subset_values(cm, idx, layer))
        out[group] = values
    return out


def mean_correlations(matrices: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The element-wise mean of several cells' correlation matrices (over the cells that have each
    entry), in the order the measures first appear."""
    frames = [m for m in matrices.values() if not m.empty]
    if not frames:
        return pd.DataFrame()
    order = list(dict.fromkeys(c for m in frames for c in m.columns))
    stacked = np.stack([m.reindex(index=order, columns=order).to_numpy(dtype=float) for m in frames])
    finite = np.isfinite(stacked)
    count = finite.sum(axis=0)
    mean = np.where(count > 0, np.where(finite, stacked, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    return pd.DataFrame(mean, index=order, columns=order)
