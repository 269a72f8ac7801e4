"""Early discarding of restarts (Dodge et al. 2020, arXiv 2002.06305), from the stored eval curves.

Two questions per cell, at each fraction f of training:

(a) **Does the dev score early on predict a final failure?** The early score of a run is its headline
    score at the last evaluation at or before f·T (T: the last evaluation step of the cell's runs, its
    training length; NaN if no evaluation is that early). The ROC AUC of "lower early score → failed" is

        AUC = P(e_failed < e_ok) + ½ P(e_failed = e_ok)

    over all (failed, not failed) pairs of restarts (the Mann–Whitney form; 1 = the early score
    separates them perfectly, ½ = no better than chance), with a percentile bootstrap CI over
    restarts (resamples holding one class only are left out).

(b) **Is it worth starting N and continuing only the best k?** Start N restarts, evaluate them at f,
    continue the k with the best early score (ties broken uniformly at random) and keep the best
    final score among them. That costs N·f + k·(1 − f) run lengths; the same compute buys
    m = floor(N·f + k·(1 − f)) full restarts, whose expected best is :func:`stats.expected_max`.

    Both expectations use the same model: N (or m) restarts drawn with replacement from the cell's
    observed ones (Dodge et al. 2019's, as in ``expected_max``), and both are **exact**, no Monte
    Carlo. With the restarts grouped by early score into tie groups, the cut between kept and
    discarded falls in one group g; with c < k draws above g (fraction A of the restarts), d >= k − c
    in g (fraction B) and the rest below (fraction L), the kept draws are the c above and k − c drawn
    uniformly from g, so

        P(best kept final <= v) = sum_g sum_{c<k} sum_{d=k-c}^{N-c} N!/(c! d! (N-c-d)!) A^c B^d L^(N-c-d)
                                  · F_above(v)^c · F_g(v)^(k-c),

    F_above(v), F_g(v): the fractions of the restarts above g / in g whose final score is <= v; and
    E = sum_j v_j [P(<= v_j) − P(<= v_(j-1))] over the distinct final scores. With k = N this is
    ``expected_max`` of N; with k = 1 and no ties, E = sum_i y_i [(i/R)^N − ((i−1)/R)^N] over the R
    restarts sorted by early score.

Runs without a finite final score (diverged) or early score are left out of (b); (a) keeps every run
the failure rule applies to that has an early score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixsweep.analysis.stats import _finite, _rng, expected_max
from mixsweep.records import RunRecord, metric_value


def early_score(eval_curve: Sequence[dict[str, Any]], headline: str, fraction: float,
                total: int | None = None) -> float:
    """The headline score at the last evaluation at or before ``fraction`` × ``total`` steps (default: the
    step of the run's last evaluation); NaN if no evaluation is that early."""
    steps = [int(p["step"]) for p in eval_curve]
    if not steps:
        return math.nan
    limit = fraction * (total if total is not None else max(steps))
    early = [p for p in eval_curve if int(p["step"]) <= limit + 1e-9]
    if not early:
        return math.nan
    point = max(early, key=lambda p: int(p["step"]))
    return metric_value((point.get("metrics") or {}).get(headline))


def auc(failed, early) -> float:
    """ROC AUC of a low early score for a failure: P(e_failed < e_ok) + ½ P(tie); NaN with one class."""
    f = np.asarray(failed, dtype=bool)
    e = np.asarray(early, dtype=float)
    bad, good = e[f], e[~f]
    if bad.size == 0 or good.size == 0:
        return math.nan
    below = (bad[:, None] < good[None, :]).mean()
    tied = (bad[:, None] == good[None, :]).mean()
    return float(below + 0.5 * tied)


def auc_ci(failed, early, n_boot: int = 1000, level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`auc` over restarts (``n_boot`` resamples with replacement, seeded)."""
    f = np.asarray(failed, dtype=bool)
    e = np.asarray(early, dtype=float)
    if f.size == 0 or f.all() or not f.any():
        return (math.nan, math.nan)
    idx = _rng(seed).integers(0, f.size, size=(n_boot, f.size))
    values = np.array([auc(f[i], e[i]) for i in idx])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    return float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))


def equal_compute_restarts(n_start: int, keep: int, fraction: float) -> int:
    """m = floor(N·f + k·(1 − f)): the full restarts that the compute of start-N-keep-k buys."""
    return int(math.floor(n_start * fraction + keep * (1 - fraction) + 1e-9))


def expected_best_discarding(early, final, n_start: int, keep: int) -> float:
    """Expected best final score of start ``n_start``, continue the ``keep`` best early (module docstring)."""
    e = np.asarray(early, dtype=float)
    y = np.asarray(final, dtype=float)
    ok = np.isfinite(e) & np.isfinite(y)
    e, y = e[ok], y[ok]
    if e.size == 0 or keep < 1 or keep > n_start:
        return math.nan
    size = e.size
    values = np.unique(y)  # the distinct final scores v_1 < ... < v_J
    cdf = np.zeros(values.size)
    for g in np.unique(e):
        in_g, above = e == g, e > g
        a, b = above.sum() / size, in_g.sum() / size
        below = 1.0 - a - b
        f_above = (y[above][:, None] <= values[None, :]).mean(axis=0) if above.any() else np.ones(values.size)
        f_g = (y[in_g][:, None] <= values[None, :]).mean(axis=0)
        for c in range(keep):
            for d in range(keep - c, n_start - c + 1):
                weight = math.comb(n_start, c) * math.comb(n_start - c, d) * a**c * b**d * below ** (n_start - c - d)
                cdf += weight * f_above**c * f_g ** (keep - c)
    return float(values @ np.diff(np.concatenate([[0.0], cdf])))


def expected_best_full(final, m: int) -> float:
    """Expected best final score of m full restarts (:func:`stats.expected_max`)."""
    y = _finite(final)
    return float(expected_max(y, [m])[0][0]) if y.size else math.nan


def early_frame(runs: pd.DataFrame, records: Sequence[RunRecord], fractions: Sequence[float]) -> pd.DataFrame:
    """Per run: task, cell, run_id, final_score and ``early_<f>`` for each fraction. T is the cell's: the
    last evaluation step of any of its runs, so a run that diverged early is read on its cell's clock."""
    by_id = {r.run_id: r for r in records}
    out = runs[["task", "cell", "run_id", "final_score"]].copy()
    out["cell"] = out["cell"].astype(str)
    ids = out["run_id"].astype(str)
    last = pd.Series([max((int(p["step"]) for p in by_id[i].eval_curve), default=0) if i in by_id else 0
                      for i in ids], index=out.index)
    total = last.groupby([out["task"], out["cell"]]).transform("max")
    for f in fractions:
        out[f"early_{f:g}"] = [early_score(by_id[i].eval_curve, by_id[i].headline, f, int(t)) if i in by_id
                               else math.nan for i, t in zip(ids, total, strict=True)]
    return out


def auc_table(frame: pd.DataFrame, failed: pd.Series, fractions: Sequence[float], n_boot: int = 1000,
              seed: int = 0) -> pd.DataFrame:
    """Per task, cell (and ``all cells`` pooled) and fraction: restarts, failed, AUC and its bootstrap CI."""
    work = frame.assign(failed=failed.to_numpy())
    rows = []
    for task, by_task in work.groupby("task", sort=False):
        groups = [(str(c), g) for c, g in by_task.groupby("cell", sort=False)]
        if len(groups) > 1:
            groups.append(("all cells", by_task))
        for cell, group in groups:
            for f in fractions:
                usable = group[group["failed"].notna() & np.isfinite(group[f"early_{f:g}"].astype(float))]
                flags = usable["failed"].astype(bool).to_numpy()
                early = usable[f"early_{f:g}"].to_numpy(dtype=float)
                lo, hi = auc_ci(flags, early, n_boot=n_boot, seed=seed)
                rows.append({"task": task, "cell": cell, "fraction": f, "n": len(usable),
                             "failed": int(flags.sum()), "auc": auc(flags, early), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def best_table(frame: pd.DataFrame, fractions: Sequence[float], n_start: Sequence[int],
               keep: Sequence[int]) -> pd.DataFrame:
    """Per task, cell, fraction, N and k (k < N): the expected best final score with early discarding, the
    compute in run lengths, m, the expected best of m full restarts, and their difference."""
    rows = []
    for (task, cell), group in frame.groupby(["task", "cell"], sort=False):
        final = group["final_score"].to_numpy(dtype=float)
        for f in fractions:
            early = group[f"early_{f:g}"].to_numpy(dtype=float)
            n = int((np.isfinite(early) & np.isfinite(final)).sum())
            for big_n in n_start:
                for k in keep:
                    if k >= big_n:
                        continue
                    m = equal_compute_restarts(big_n, k, f)
                    discard = expected_best_discarding(early, final, big_n, k)
                    full = expected_best_full(final[np.isfinite(early)], m)
                    rows.append({"task": task, "cell": cell, "fraction": f, "N": big_n, "k": k, "n": n,
                                 "compute": big_n * f + k * (1 - f), "m": m, "discarding": discard,
                                 "full": full, "difference": discard - full})
    return pd.DataFrame(rows)


def _num(x: float, digits: int) -> str:
    return "–" if not np.isfinite(x) else f"{x:.{digits}f}"


def early_discarding_tables(runs: pd.DataFrame, records: Sequence[RunRecord], fractions: Sequence[float],
                            n_start: Sequence[int], keep: Sequence[int], n_boot: int = 1000, offset: float = 0.0,
                            seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a) and (b) for every cell of ``runs``, as plain values: failure at majority + ``offset`` points."""
    from mixsweep.analysis.failure_kinds import failed_at

    frame = early_frame(runs, records, fractions)
    return (auc_table(frame, failed_at(runs, offset), fractions, n_boot, seed),
            best_table(frame, fractions, n_start, keep))


def display_auc(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`auc_table` as the report prints it."""
    out = pd.DataFrame({
        "cell": table["cell"], "at f": table["fraction"].map(lambda f: f"{f:g}"),
        "restarts (failed)": [f"{n} ({k})" for n, k in zip(table["n"], table["failed"], strict=True)],
        "AUC [95% CI]": [f"{_num(a, 2)} [{_num(lo, 2)}, {_num(hi, 2)}]" if np.isfinite(a)
                         else "– (no evaluation this early)" if n == 0 else "– (one class)"
                         for a, lo, hi, n in zip(table["auc"], table["ci_low"], table["ci_high"], table["n"],
                                                 strict=True)]})
    if table["task"].nunique() > 1:
        out.insert(0, "task", table["task"])
    return out


def display_best(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`best_table` as the report prints it."""
    values = np.abs(table[["discarding", "full"]].to_numpy(float)) if len(table) else np.zeros(0)
    digits = 3 if np.isfinite(values).any() and values[np.isfinite(values)].max() <= 1.5 else 1
    out = pd.DataFrame({
        "cell": table["cell"], "at f": table["fraction"].map(lambda f: f"{f:g}"),
        "start N, keep k": [f"{a}, {b}" for a, b in zip(table["N"], table["k"], strict=True)],
        "compute (runs)": table["compute"].map(lambda c: f"{c:.2f}"),
        "E[best], discarding": table["discarding"].map(lambda x: _num(x, digits)),
        "E[best], m full": [f"{_num(x, digits)} (m={m})" for x, m in zip(table["full"], table["m"], strict=True)],
        "Δ": table["difference"].map(lambda x: "–" if not np.isfinite(x) else f"{x:+.{digits}f}")})
    if table["task"].nunique() > 1:
        out.insert(0, "task", table["task"])
    return out
