"""Statistics over the dev scores of a cell: bootstrap CIs, cell-vs-baseline tests, expected max.

Functions of numpy arrays. The resampling is scipy's (``scipy.stats.bootstrap``, percentile
method; ``scipy.stats.permutation_test``, exact when the splits are fewer than the resamples),
imported when a statistic is computed so that importing this module stays cheap. The best of n
restarts has a known distribution under the bootstrap, so its CI and expectation are exact.
A seed (or a Generator) makes every Monte Carlo number reproducible.
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
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` (``scipy.stats.bootstrap``, ``n_boot`` resamples of
    len(x) values drawn with replacement); ``stat`` maps a (k, len(x)) array to k values."""
    from scipy.stats import bootstrap

    a = _finite(x)
    if a.size == 0:
        return (np.nan, np.nan)
    if a.size == 1:  # one value resamples to itself (and scipy asks for two)
        value = float(stat(a[None, :])[0])
        return value, value

    def statistic(sample: np.ndarray, axis: int) -> np.ndarray:
        s = np.moveaxis(sample, axis, -1)
        return np.asarray(stat(s.reshape(-1, s.shape[-1]))).reshape(s.shape[:-1])

    res = bootstrap((a,), statistic, n_resamples=n_boot, confidence_level=level, method="percentile",
                    vectorized=True, rng=_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_ci(x, **kw) -> tuple[float, float]:
    """Bootstrap CI of the mean."""
    return bootstrap_ci(x, lambda d: d.mean(axis=1), **kw)


def _max_cdf(size: int, ns) -> np.ndarray:
    """P(max <= v_i) = (i/N)^n: n draws with replacement from the sorted scores v_1 <= ... <= v_N,
    one row per n. At a tied value the last of its i gives its probability."""
    return (np.arange(1, size + 1) / size)[None, :] ** np.atleast_1d(np.asarray(ns, dtype=float))[:, None]


def max_ci(x, n: int | None = None, level: float = 0.95, seed: object = None) -> tuple[float, float]:
    """Percentile bootstrap CI of the best of ``n`` restarts (default: as many as were run), exact.

    The bootstrap distribution of the max is known (:func:`_max_cdf`), so nothing is resampled:
    the bounds are the smallest scores whose probability reaches (1 - level)/2 and (1 + level)/2,
    what the quantiles of ever more resamples converge to. ``seed`` is accepted, as by every CI here.
    """
    v = np.sort(_finite(x))
    if v.size == 0:
        return (np.nan, np.nan)
    cdf = _max_cdf(v.size, n or v.size)[0]
    lo, hi = (v[np.argmax(cdf >= q - 1e-12)] for q in ((1 - level) / 2, (1 + level) / 2))
    return float(lo), float(hi)


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
    """Percentile bootstrap CI of mean(x) - mean(y), each group resampled on its own
    (``scipy.stats.bootstrap`` with two unpaired samples)."""
    from scipy.stats import bootstrap

    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return (np.nan, np.nan)
    # A group of one value resamples to itself (and scipy asks for two): the CI is the other's, shifted.
    if b.size == 1:
        lo, hi = mean_ci(a, n_boot=n_boot, level=level, seed=seed)
        return lo - b[0], hi - b[0]
    if a.size == 1:
        lo, hi = mean_ci(b, n_boot=n_boot, level=level, seed=seed)
        return a[0] - hi, a[0] - lo
    res = bootstrap((a, b), lambda s, t, axis: s.mean(axis=axis) - t.mean(axis=axis), n_resamples=n_boot,
                    confidence_level=level, method="percentile", vectorized=True, rng=_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _abs_diff_means(s: np.ndarray, t: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.abs(s.mean(axis=axis) - t.mean(axis=axis))


def permutation_test(x, y, n_perm: int = DEFAULT_PERM, seed=0) -> float:
    """Two-sided permutation test of the difference in means (``scipy.stats.permutation_test``).

    p = P(|mean_a - mean_b| >= |observed|) over the splits of the pooled scores into groups of
    the two sizes: exact when there are at most ``n_perm`` splits, else estimated from ``n_perm``
    random ones as (1 + hits) / (1 + n_perm), so a Monte Carlo p is never 0. Ties count as hits.
    """
    from scipy.stats import permutation_test as scipy_permutation_test

    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return np.nan
    if min(a.size, b.size) == 1:  # scipy asks for two values a group: here every split sets one apart
        pooled = np.concatenate([a, b])
        rest = (pooled.sum() - pooled) / (pooled.size - 1)
        observed = _abs_diff_means(a, b)
        return float(np.mean(np.abs(pooled - rest) >= observed - 1e-12 * max(1.0, observed)))
    res = scipy_permutation_test((a, b), _abs_diff_means, permutation_type="independent", vectorized=True,
                                 n_resamples=n_perm, alternative="greater", rng=_rng(seed))
    return float(res.pvalue)


def mannwhitney_p(x, y, alternative: str = "two-sided") -> float:
    """Mann-Whitney U p-value of x against y (scipy's): ``two-sided``, ``greater`` (x tends to be larger)
    or ``less``; 1.0 when every value is tied (no evidence either way, whichever side)."""
    from scipy.stats import mannwhitneyu

    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return np.nan
    if np.unique(np.concatenate([a, b])).size == 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative=alternative).pvalue)


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


CLAIMS = ("fewer", "more")  # the side of a one-sided test on failure counts: the cell fails fewer / more


def fisher_one_sided(failed: int, n: int, failed_baseline: int, n_baseline: int, claim: str) -> float:
    """One-sided Fisher exact p that the cell fails ``claim`` (fewer | more) than its baseline.

    The table is [[failed, n - failed], [failed_baseline, n_baseline - failed_baseline]], so with
    all margins fixed the cell's failures a follow the hypergeometric law
    P(a) = C(F, a) C(N - F, n - a) / C(N, n) (F: failures of both arms, N = n + n_baseline), and

        fewer: p = P(A <= a)  (scipy ``alternative="less"``: odds ratio < 1)
        more:  p = P(A >= a)  (``alternative="greater"``).
    """
    from scipy.stats import fisher_exact

    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, not {claim!r}")
    table = [[failed, n - failed], [failed_baseline, n_baseline - failed_baseline]]
    return float(fisher_exact(table, alternative="less" if claim == "fewer" else "greater").pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of m p-values (NaN ones are left out of m and stay NaN).

    With the p-values sorted, p_(1) <= ... <= p_(m), the adjusted value of p_(i) is

        max_{j <= i} min(1, (m - j + 1) p_(j)),

    so that rejecting where the adjusted p < alpha controls the family-wise error at alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    keep = np.flatnonzero(~np.isnan(p))
    m = keep.size
    if m == 0:
        return out
    order = keep[np.argsort(p[keep], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    from scipy.stats import binom

    return binom.pmf(np.arange(n + 1), n, p)


def _fisher_rejects(n: int, n_baseline: int, alpha: float, claim: str) -> np.ndarray:
    """rejects[a, b]: whether the one-sided Fisher test at ``alpha`` (p < alpha) rejects for a failures
    of n in the cell and b of n_baseline in the baseline."""
    return np.array([[fisher_one_sided(a, n, b, n_baseline, claim) < alpha for b in range(n_baseline + 1)]
                     for a in range(n + 1)])


def fisher_power(p0: float, p1: float, n: int, alpha: float = 0.05, claim: str = "fewer",
                 n_baseline: int | None = None) -> float:
    """Exact power of the one-sided Fisher test (p < alpha) with cell failures a ~ Bin(n, p1) and baseline
    failures b ~ Bin(n_baseline, p0) (default n_baseline = n), by enumerating both binomials:

        power = sum_a sum_b Bin(a; n, p1) Bin(b; n_baseline, p0) [p_Fisher(a, b) < alpha].
    """
    nb = n if n_baseline is None else n_baseline
    rejects = _fisher_rejects(n, nb, alpha, claim)
    return float(_binomial_pmf(n, p1) @ rejects @ _binomial_pmf(nb, p0))


def minimum_detectable_rate(p0: float, n: int, alpha: float = 0.05, claim: str = "fewer", power: float = 0.8,
                            tol: float = 1e-4, n_baseline: int | None = None) -> float | None:
    """The failure rate p1 closest to ``p0`` on the claimed side that the one-sided Fisher test at ``alpha``
    detects with at least ``power``, with n restarts in the cell and ``n_baseline`` (default n) in the
    baseline (:func:`fisher_power`); None if even p1 = 0 (fewer) or 1 (more) is not detected that often.

    The rejection region is fixed by (n, alpha, claim) and, for ``fewer``, holds with (a, b) every
    (a', b) with a' < a, so the power falls as p1 rises towards p0: bisection on p1 to ``tol``.
    """
    nb = n if n_baseline is None else n_baseline
    rejects = _fisher_rejects(n, nb, alpha, claim)
    base = _binomial_pmf(nb, p0)

    def power_at(p1: float) -> float:
        return float(_binomial_pmf(n, p1) @ rejects @ base)

    far = 0.0 if claim == "fewer" else 1.0
    if power_at(far) < power:
        return None
    lo, hi = (far, p0) if claim == "fewer" else (p0, far)  # the answer lies between the far end and p0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        detected = power_at(mid) >= power
        if claim == "fewer":
            lo, hi = (mid, hi) if detected else (lo, mid)
        else:
            lo, hi = (lo, mid) if detected else (mid, hi)
    return lo if claim == "fewer" else hi


def expected_max(x, ns) -> tuple[np.ndarray, np.ndarray]:
    """Expected best dev score of n restarts and its std (Dodge et al. 2019, "Show your work").

    With the N observed scores sorted, v_1 <= ... <= v_N, and n draws with replacement from
    their empirical distribution, P(max <= v_i) = (i/N)^n (:func:`_max_cdf`), so

        E[max_n] = sum_i v_i [(i/N)^n - ((i-1)/N)^n],   Var[max_n] = sum_i v_i^2 [...] - E[max_n]^2.

    n = 1 gives the sample mean; n -> inf gives v_N.
    """
    v = np.sort(_finite(x))
    ns = np.atleast_1d(np.asarray(ns, dtype=float))
    if v.size == 0:
        return np.full(ns.shape, np.nan), np.full(ns.shape, np.nan)
    cdf = _max_cdf(v.size, ns)
    weights = cdf - np.concatenate([np.zeros((ns.size, 1)), cdf[:, :-1]], axis=1)
    mean = weights @ v
    var = np.clip(weights @ v**2 - mean**2, 0.0, None)
    return mean, np.sqrt(var)
