"""Statistics over the dev scores of a cell: bootstrap CIs, cell-vs-baseline tests, expected max.

Pure functions of numpy arrays; scipy is imported only by the tests that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOT = 2000
DEFAULT_PERM = 5000


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _finite(x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[np.isfinite(a)]


def bootstrap_ci(
    x,
    stat: Callable[[np.ndarray], np.ndarray],
    n_boot: int = DEFAULT_BOOT,
    level: float = 0.95,
    seed: int | np.random.Generator | None = 0,
    size: int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat``: resample ``size`` (default len(x)) values with
    replacement ``n_boot`` times; ``stat`` maps an (n_boot, size) array to n_boot values."""
    a = _finite(x)
    if a.size == 0:
        return (np.nan, np.nan)
    draws = a[_rng(seed).integers(0, a.size, size=(n_boot, size or a.size))]
    lo, hi = np.quantile(stat(draws), [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def mean_ci(x, **kw) -> tuple[float, float]:
    """Bootstrap CI of the mean."""
    return bootstrap_ci(x, lambda d: d.mean(axis=1), **kw)


def max_ci(x, n: int | None = None, **kw) -> tuple[float, float]:
    """Bootstrap CI of the max of ``n`` restarts (default: as many as were run)."""
    return bootstrap_ci(x, lambda d: d.max(axis=1), size=n, **kw)


@dataclass(frozen=True)
class Comparison:
    """A cell against a baseline cell: difference in means (cell - baseline) and two tests."""

    diff: float
    ci_low: float
    ci_high: float
    p_permutation: float
    p_mannwhitney: float
    n: int
    n_baseline: int


def diff_means_ci(x, y, n_boot: int = DEFAULT_BOOT, level: float = 0.95, seed=0) -> tuple[float, float]:
    """Bootstrap CI of mean(x) - mean(y), resampling each group independently."""
    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return (np.nan, np.nan)
    rng = _rng(seed)
    da = a[rng.integers(0, a.size, (n_boot, a.size))].mean(axis=1)
    db = b[rng.integers(0, b.size, (n_boot, b.size))].mean(axis=1)
    lo, hi = np.quantile(da - db, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def permutation_test(x, y, n_perm: int = DEFAULT_PERM, seed=0) -> float:
    """Two-sided Monte Carlo permutation test of the difference in means.

    p = (1 + #{perm : |mean_a - mean_b| >= |observed|}) / (1 + n_perm), so p is never 0.
    """
    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return np.nan
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    perms = _rng(seed).permuted(np.tile(pooled, (n_perm, 1)), axis=1)
    diffs = np.abs(perms[:, : a.size].mean(axis=1) - perms[:, a.size :].mean(axis=1))
    # A tolerance keeps ties (identical samples, discrete scores) counted as ties.
    hits = np.count_nonzero(diffs >= observed - 1e-12 * max(1.0, abs(observed)))
    return float((1 + hits) / (1 + n_perm))


def mannwhitney_p(x, y) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value is tied."""
    from scipy.stats import mannwhitneyu

    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return np.nan
    if np.unique(np.concatenate([a, b])).size == 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def compare(x, baseline, n_boot: int = DEFAULT_BOOT, n_perm: int = DEFAULT_PERM, seed=0) -> Comparison:
    """A cell against a baseline cell: difference in means with a bootstrap CI, and p-values."""
    a, b = _finite(x), _finite(baseline)
    diff = float(a.mean() - b.mean()) if a.size and b.size else np.nan
    lo, hi = diff_means_ci(a, b, n_boot=n_boot, seed=seed)
    return Comparison(diff, lo, hi, permutation_test(a, b, n_perm, seed), mannwhitney_p(a, b), a.size, b.size)


def fisher_failures(failed: int, n: int, failed_baseline: int, n_baseline: int) -> tuple[float, float]:
    """Fisher's exact test on the 2x2 table of failed / usable runs: (odds ratio, two-sided p)."""
    from scipy.stats import fisher_exact

    table = [[failed, n - failed], [failed_baseline, n_baseline - failed_baseline]]
    res = fisher_exact(table, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def expected_max(x, ns) -> tuple[np.ndarray, np.ndarray]:
    """Expected best dev score of n restarts and its std (Dodge et al. 2019, "Show your work").

    With the N observed scores sorted, v_1 <= ... <= v_N, and n draws with replacement from
    their empirical distribution, P(max <= v_i) = (i/N)^n, so

        E[max_n] = sum_i v_i [(i/N)^n - ((i-1)/N)^n],   Var[max_n] = sum_i v_i^2 [...] - E[max_n]^2.

    n = 1 gives the sample mean; n -> inf gives v_N.
    """
    v = np.sort(_finite(x))
    ns = np.atleast_1d(np.asarray(ns, dtype=float))
    if v.size == 0:
        return np.full(ns.shape, np.nan), np.full(ns.shape, np.nan)
    cdf = np.arange(1, v.size + 1) / v.size
    weights = cdf[None, :] ** ns[:, None] - np.concatenate([[0.0], cdf[:-1]])[None, :] ** ns[:, None]
    mean = weights @ v
    var = np.clip(weights @ v**2 - mean**2, 0.0, None)
    return mean, np.sqrt(var)
