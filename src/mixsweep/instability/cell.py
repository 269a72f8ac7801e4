"""A cell's instability over its m restarts: every measure, with a bootstrap CI over restarts.

Pairwise measures (disagreement, JSD, the four representation distances) are averaged over all
m(m−1)/2 pairs of restarts. The CI follows the authors' bootstrap (``analyze_measures.ipynb``): draw m
restarts with replacement, recompute the measure on the draw (a pair of two copies of one restart
counts, with distance 0), B times; the 95% interval is the 2.5th and 97.5th percentiles of the B values.
The pairwise matrix is computed once, so a bootstrap draw costs a lookup, not new decompositions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mixsweep.instability.prediction import disagreement_matrix, fleiss_kappa, jsd_matrix, score_sd
from mixsweep.instability.representation import PAIR_FUNCTIONS, prepare

# name → (level, description); the order of the report's columns
MEASURES = {
    "sd": ("score", "SD of the runs' headline scores (population std, ddof 0)"),
    "pwd": ("prediction", "pairwise disagreement: share of examples two restarts label differently, mean over pairs"),
    "kappa": ("prediction", "1 − Fleiss' κ of the restarts' labels"),
    "jsd": ("prediction", "Jensen–Shannon divergence of two restarts' class probabilities, mean over examples and pairs"),
    "svcca": ("representation", "SVCCA distance (99% of Σσ kept), mean over pairs"),
    "pwcca": ("representation", "PWCCA distance, mean over pairs"),
    "cka": ("representation", "linear CKA distance (unbiased HSIC), mean over pairs"),
    "procrustes": ("representation", "orthogonal Procrustes distance 1 − ‖X̂ᵀŶ‖_*, mean over pairs"),
}
BOOTSTRAP = 1000  # the authors' bs_times
CI = 0.95


@dataclass
class Estimate:
    value: float
    low: float = float("nan")
    high: float = float("nan")


@dataclass
class CellMeasures:
    """Values of one cell: ``values[name]`` for score/prediction measures, ``layers[name][layer]`` for
    the representation measures; ``n_runs`` restarts compared on ``n_examples`` examples."""

    n_runs: int
    n_examples: int
    values: dict[str, Estimate] = field(default_factory=dict)
    layers: dict[str, dict[str, Estimate]] = field(default_factory=dict)


def pair_matrix(items: Sequence, pair: Callable) -> np.ndarray:
    """M[i, j] = pair(items[i], items[j]) for i < j, mirrored, 0 on the diagonal.

    The pairs run in threads, one per available core: the work is LAPACK/BLAS calls, which release the GIL
    (with one BLAS thread each, as the harness sets OMP_NUM_THREADS=1 for runs)."""
    m = len(items)
    out = np.zeros((m, m))
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    values = parallel_map(lambda ij: pair(items[ij[0]], items[ij[1]]), pairs)
    for (i, j), v in zip(pairs, values, strict=True):
        out[i, j] = out[j, i] = v
    return out


def parallel_map(fn: Callable, items: Sequence) -> list:
    """[fn(x) for x in items], in threads, one per available core (the work is LAPACK/BLAS calls, which
    release the GIL), in order."""
    workers = min(len(items), _cores())
    if workers <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def mean_over_pairs(d: np.ndarray, idx: np.ndarray | None = None) -> float:
    """(2 / (m(m−1))) Σ_{i<j} d[idx_i, idx_j]: the mean of a pairwise matrix over the pairs of a draw."""
    idx = np.arange(len(d)) if idx is None else idx
    iu = np.triu_indices(len(idx), k=1)
    return float(d[np.ix_(idx, idx)][iu].mean()) if len(iu[0]) else float("nan")


def _draws(m: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    # sorted like the authors' draws; the mean over pairs does not depend on the order
    return np.sort(rng.integers(0, m, size=(n_boot, m)), axis=1)


def _estimate(value: float, boot: np.ndarray) -> Estimate:
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return Estimate(value)
    lo, hi = np.percentile(boot, [100 * (1 - CI) / 2, 100 * (1 + CI) / 2])
    return Estimate(value, float(lo), float(hi))


def cell_measures(
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    representations: dict[str, Sequence[np.ndarray]] | None = None,
    *,
    num_classes: int | None = None,
    n_boot: int = BOOTSTRAP,
    seed: int = 0,
) -> CellMeasures:
    """Every measure of a cell. ``scores``: (m,) headline scores; ``labels``: (m, n) predicted classes
    (None for regression or runs without stored outputs); ``probs``: (m, n, K); ``representations``:
    layer name → m arrays (n × d). A measure whose input is missing is left out."""
    scores = np.asarray(scores, dtype=float)
    m = len(scores)
    rng = np.random.default_rng(seed)
    draws = _draws(m, rng, n_boot) if m >= 2 and n_boot else np.zeros((0, m), dtype=int)
    n_examples = labels.shape[1] if labels is not None else 0
    out = CellMeasures(n_runs=m, n_examples=n_examples)
    out.values["sd"] = _estimate(score_sd(scores), np.array([score_sd(scores[d]) for d in draws]))
    if labels is not None and m >= 2:
        d = disagreement_matrix(labels)
        out.values["pwd"] = _estimate(mean_over_pairs(d), np.array([mean_over_pairs(d, s) for s in draws]))
        k = num_classes or int(labels.max()) + 1
        out.values["kappa"] = _estimate(1 - fleiss_kappa(labels, k),
                                        np.array([1 - fleiss_kappa(labels[s], k) for s in draws]))
    if probs is not None and m >= 2:
        j = jsd_matrix(probs)
        out.values["jsd"] = _estimate(mean_over_pairs(j), np.array([mean_over_pairs(j, s) for s in draws]))
    for layer, reps in (representations or {}).items():
        if len(reps) < 2:
            continue
        prepared = parallel_map(prepare, reps)  # each run's decomposition once, for every pair and measure
        for name, fn in PAIR_FUNCTIONS.items():
            d = pair_matrix(prepared, fn)
            out.layers.setdefault(name, {})[layer] = _estimate(
                mean_over_pairs(d), np.array([mean_over_pairs(d, s) for s in draws]))
    return out
