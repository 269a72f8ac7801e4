"""A cell's instability over its m restarts: every measure, with a jackknife interval over restarts.

Pairwise measures (disagreement, JSD, the four representation distances) are averaged over all
m(m−1)/2 pairs of distinct restarts; the pairwise matrices are kept (:class:`CellMeasures`) so that
subsets of runs (leave-one-out, successful/failed runs, bootstrap draws) cost lookups, not new
decompositions.

The interval is **ours** (the authors compute none): a delete-one jackknife over restarts. With θ̂ the
measure on all m runs and θ̂₍ᵢ₎ on the m − 1 runs without run i::

    SE² = ((m − 1)/m) Σ_i (θ̂₍ᵢ₎ − θ̄₍·₎)²,    95% interval: θ̂ ± t₀.₉₇₅,ₘ₋₁ · SE   (low clipped at 0)

No run is ever paired with itself (unlike the authors' bootstrap draws, where a repeated run forms a
pair at distance 0 and pulls every resampled value, hence a percentile interval, below the estimate).
For a mean over pairs (a U-statistic) the jackknife is the standard variance estimate; the coverage
measured on synthetic cells with a known population value is stated in ``tests/test_instability_ci.py``.
The authors' own bootstrap (draws with replacement, sorted, a self-pair counting 0) is kept for what
they used it for, the correlations between measures over draws (:func:`bootstrap_values`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mixsweep.instability.prediction import (
    disagreement_matrix,
    fleiss_kappa,
    fleiss_kappa_authors,
    jsd_matrix,
    score_sd,
)
from mixsweep.instability.representation import PAIR_FUNCTIONS, prepare

# name → (level, description); the order of the report's columns
MEASURES = {
    "sd": ("score", "SD of the runs' headline scores (population std, ddof 0)"),
    "pwd": ("prediction", "pairwise disagreement: share of examples two restarts label differently, mean over pairs"),
    "kappa": ("prediction", "1 − Fleiss' κ, textbook (chance agreement Σ_c p_c²)"),
    "kappa_authors": ("prediction", "1 − κ as the authors' notebook computes it (chance agreement 1/n, n "
                                    "examples) = n/(n − 1) · I_pwd"),
    "jsd": ("prediction", "Jensen–Shannon divergence of two restarts' class probabilities, mean over examples and pairs"),
    "svcca": ("representation", "SVCCA distance with anatome's reduction (keep the directions holding 99% of Σσ of "
                                "the uncentred matrix), mean over pairs"),
    "pwcca": ("representation", "PWCCA distance, mean over pairs (our addition: not in the authors' pipeline)"),
    "cka": ("representation", "linear CKA distance (unbiased HSIC), mean over pairs"),
    "procrustes": ("representation", "orthogonal Procrustes distance 1 − ‖X̂ᵀŶ‖_*, mean over pairs"),
}
PAIRWISE_PREDICTION = {"pwd", "jsd"}
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
    the representation measures; ``n_runs`` restarts compared on ``n_examples`` examples. ``pairs`` and
    ``layer_pairs`` hold the pairwise matrices (m × m, 0 on the diagonal), ``scores`` and ``labels``
    the inputs of SD and κ, for measures on subsets of the runs (:func:`subset_values`)."""

    n_runs: int
    n_examples: int
    values: dict[str, Estimate] = field(default_factory=dict)
    layers: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    pairs: dict[str, np.ndarray] = field(default_factory=dict)
    layer_pairs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    num_classes: int | None = None


def pair_matrix(items: Sequence, pair: Callable) -> np.ndarray:
    """M[i, j] = pair(items[i], items[j]) for i < j, mirrored, 0 on the diagonal.

    The pairs run in threads, one per available core: the work is LAPACK/BLAS calls, which release the
    GIL. Nothing here limits BLAS's own threads (no OMP_NUM_THREADS is set by the harness); on a host
    where BLAS is multi-threaded the two kinds of threads share the cores."""
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
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def mean_over_pairs(d: np.ndarray, idx: np.ndarray | None = None) -> float:
    """(2 / (k(k−1))) Σ_{a<b} d[idx_a, idx_b]: the mean of a pairwise matrix over the pairs of positions
    of ``idx`` (all runs by default). A repeated index forms a pair at d[i, i] = 0 (the authors' draws)."""
    idx = np.arange(len(d)) if idx is None else np.asarray(idx)
    iu = np.triu_indices(len(idx), k=1)
    return float(d[np.ix_(idx, idx)][iu].mean()) if len(iu[0]) else float("nan")


def leave_one_out_pair_means(d: np.ndarray) -> np.ndarray:
    """θ̂₍ᵢ₎ = mean over the pairs of the runs other than i = (S − r_i) / C(m − 1, 2), with S the sum over
    pairs and r_i = Σ_j d[i, j] (d symmetric, zero diagonal). NaN for m < 3 (no pair is left)."""
    m = len(d)
    if m < 3:
        return np.full(m, np.nan)
    total = np.triu(d, k=1).sum()
    return (total - d.sum(axis=1)) / ((m - 1) * (m - 2) / 2)


def jackknife(value: float, loo: np.ndarray) -> Estimate:
    """θ̂ with its delete-one jackknife interval θ̂ ± t₀.₉₇₅,ₘ₋₁ · SE, SE² = ((m − 1)/m) Σ (θ̂₍ᵢ₎ − θ̄)²,
    the low end clipped at 0 (every measure here is ≥ 0). No interval (NaN) with fewer than 3 runs or a
    non-finite leave-one-out value."""
    from scipy.stats import t

    loo = np.asarray(loo, dtype=float)
    m = len(loo)
    if m < 3 or not np.isfinite(value) or not np.isfinite(loo).all():
        return Estimate(value)
    se = float(np.sqrt((m - 1) / m * ((loo - loo.mean()) ** 2).sum()))
    half = float(t.ppf((1 + CI) / 2, m - 1)) * se
    return Estimate(value, max(0.0, value - half), value + half)


def _loo(m: int, fn: Callable[[np.ndarray], float]) -> np.ndarray:
    return np.array([fn(np.delete(np.arange(m), i)) for i in range(m)])


def _pair_estimate(d: np.ndarray) -> Estimate:
    return jackknife(mean_over_pairs(d), leave_one_out_pair_means(d))


def cell_measures(
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    representations: dict[str, Sequence[np.ndarray]] | None = None,
    *,
    num_classes: int | None = None,
    measures: Iterable[str] | None = None,
    known_pairs: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> CellMeasures:
    """Every measure of a cell (or those named in ``measures``). ``scores``: (m,) headline scores;
    ``labels``: (m, n) predicted classes (None for regression or runs without stored outputs);
    ``probs``: (m, n, K); ``representations``: layer name → m arrays (n × d). A measure whose input is
    missing is left out. ``known_pairs[name][layer]``: a representation measure's pairwise matrix
    computed before (a cache), used instead of decomposing the runs again."""
    wanted = set(MEASURES if measures is None else measures)
    scores = np.asarray(scores, dtype=float)
    m = len(scores)
    n_examples = labels.shape[1] if labels is not None else 0
    out = CellMeasures(n_runs=m, n_examples=n_examples, scores=scores, labels=labels, num_classes=num_classes)
    if "sd" in wanted:
        out.values["sd"] = jackknife(score_sd(scores), _loo(m, lambda s: score_sd(scores[s])))
    if labels is not None and m >= 2:
        k = num_classes or int(labels.max()) + 1
        out.num_classes = k
        if wanted & {"pwd", "kappa", "kappa_authors"}:
            out.pairs["pwd"] = disagreement_matrix(labels)
        if "pwd" in wanted:
            out.values["pwd"] = _pair_estimate(out.pairs["pwd"])
        if "kappa" in wanted:
            out.values["kappa"] = jackknife(1 - fleiss_kappa(labels, k),
                                            _loo(m, lambda s: 1 - fleiss_kappa(labels[s], k)))
        if "kappa_authors" in wanted:
            out.values["kappa_authors"] = jackknife(1 - fleiss_kappa_authors(labels, k),
                                                    _loo(m, lambda s: 1 - fleiss_kappa_authors(labels[s], k)))
    if probs is not None and m >= 2 and "jsd" in wanted:
        out.pairs["jsd"] = jsd_matrix(probs)
        out.values["jsd"] = _pair_estimate(out.pairs["jsd"])
    functions = {name: fn for name, fn in PAIR_FUNCTIONS.items() if name in wanted}
    known = known_pairs or {}
    for layer, reps in (representations or {}).items():
        if len(reps) < 2 or not functions:
            continue
        missing = {name: fn for name, fn in functions.items() if layer not in known.get(name, {})}
        # each run's decomposition once, for every pair and measure; none when every matrix is known
        prepared = parallel_map(prepare, reps) if missing else []
        for name, fn in functions.items():
            d = pair_matrix(prepared, fn) if name in missing else np.asarray(known[name][layer], dtype=float)
            out.layer_pairs.setdefault(name, {})[layer] = d
            out.layers.setdefault(name, {})[layer] = _pair_estimate(d)
    return out


def subset_values(cm: CellMeasures, idx: np.ndarray, layer: str | None) -> dict[str, float]:
    """Every measure of ``cm`` on the runs ``idx`` alone (positions, distinct for a subset, repeats
    allowed for a bootstrap draw): SD and κ recomputed on those runs, the pairwise measures the mean of
    their matrix over the pairs of ``idx`` (the representation measures at ``layer``)."""
    idx = np.asarray(idx, dtype=int)
    out: dict[str, float] = {}
    if cm.scores is not None and "sd" in cm.values:
        out["sd"] = score_sd(cm.scores[idx])
    if cm.labels is not None:
        if "pwd" in cm.values:
            out["pwd"] = mean_over_pairs(cm.pairs["pwd"], idx)
        if "kappa" in cm.values:
            out["kappa"] = 1 - fleiss_kappa(cm.labels[idx], cm.num_classes) if len(idx) >= 2 else float("nan")
        if "kappa_authors" in cm.values:
            out["kappa_authors"] = (1 - fleiss_kappa_authors(cm.labels[idx], cm.num_classes)
                                    if len(idx) >= 2 else float("nan"))
    if "jsd" in cm.pairs:
        out["jsd"] = mean_over_pairs(cm.pairs["jsd"], idx)
    for name, per_layer in cm.layer_pairs.items():
        if layer in per_layer:
            out[name] = mean_over_pairs(per_layer[layer], idx)
    return out


def bootstrap_draws(m: int, n_boot: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """The authors' bootstrap (``analyze_measures.ipynb``, "Bootstrapping"): B draws of m restarts with
    replacement, each sorted (``sorted(random.choices(seeds, k=len(seeds)))``); (B, m) positions."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, m, size=(n_boot, m)), axis=1)


def bootstrap_values(cm: CellMeasures, layer: str | None, n_boot: int = BOOTSTRAP, seed: int = 0):
    """Every measure of the cell on each of the authors' bootstrap draws (a repeated run is paired with
    itself at distance 0, as in their notebook): a (B × measures) DataFrame, whose ``.corr()`` (Pearson)
    is their "bootstrapping correlations between each pair of measures"."""
    import pandas as pd

    rows = [subset_values(cm, d, layer) for d in bootstrap_draws(cm.n_runs, n_boot, seed)] if cm.n_runs >= 2 else []
    return pd.DataFrame(rows)
