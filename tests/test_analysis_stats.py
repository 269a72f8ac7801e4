"""Statistics on cases with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mixsweep.analysis.stats import (
    compare,
    diff_means_ci,
    expected_max,
    fisher_failures,
    max_ci,
    mean_ci,
    permutation_test,
)


def test_identical_samples_give_a_ci_around_zero_and_p_near_one():
    x = np.array([47.3, 52.7, 60.1, 65.0, 70.2, 71.5, 52.7, 68.8])
    c = compare(x, x.copy())
    assert c.diff == 0.0
    assert c.ci_low <= 0.0 <= c.ci_high
    assert c.p_permutation > 0.95
    assert c.p_mannwhitney == pytest.approx(1.0)


def test_clearly_separated_samples_are_significant():
    rng = np.random.default_rng(0)
    a, b = rng.normal(70, 1, 20), rng.normal(50, 1, 20)
    c = compare(a, b)
    assert c.p_permutation < 0.01 and c.p_mannwhitney < 0.01
    assert 18 < c.ci_low < c.diff < c.ci_high < 22


def test_permutation_p_is_never_zero():
    assert permutation_test([1.0, 2.0], [10.0, 11.0], n_perm=100) >= 1 / 101


def test_bootstrap_cis_bracket_the_estimates():
    x = np.random.default_rng(1).normal(60, 5, 30)
    lo, hi = mean_ci(x)
    assert lo < x.mean() < hi and hi - lo < 5
    mlo, mhi = max_ci(x)
    assert mlo <= x.max() and mhi == pytest.approx(x.max())
    assert max_ci(x, n=1)[0] < mlo  # the best of 1 restart is lower than the best of 30


def test_fisher_exact_on_failure_counts():
    _, p_same = fisher_failures(7, 20, 7, 20)
    _, p_diff = fisher_failures(1, 20, 15, 20)
    assert p_same == pytest.approx(1.0) and p_diff < 0.001


def test_expected_max_limits():
    x = np.array([47.3, 52.7, 52.7, 61.0, 65.7, 70.4, 74.0])
    mean, std = expected_max(x, [1, 2, 10_000])
    assert mean[0] == pytest.approx(x.mean())
    assert std[0] == pytest.approx(x.std())
    assert mean[2] == pytest.approx(x.max()) and std[2] == pytest.approx(0.0, abs=1e-6)
    assert mean[0] < mean[1] < mean[2]


def test_expected_max_of_two_matches_enumeration():
    x = np.array([1.0, 4.0, 9.0])
    pairs = [max(a, b) for a in x for b in x]
    mean, std = expected_max(x, [2])
    assert mean[0] == pytest.approx(np.mean(pairs)) and std[0] == pytest.approx(np.std(pairs))


def test_nan_scores_are_ignored():
    mean, _ = expected_max([50.0, float("nan"), 70.0], [1])
    assert mean[0] == pytest.approx(60.0)


# --- scipy's resampling against an independent computation ------------------------------------
# The bootstrap of a tiny sample is enumerated whole (every resample equally likely): its exact
# quantiles are the numbers a Monte Carlo bootstrap estimates. An estimate with B resamples must
# sit within 4 standard errors, sqrt(q(1 - q)/B), of the level q in the exact distribution.


def _rank_within_mc_error(exact: np.ndarray, value: float, q: float, n: int) -> None:
    se = np.sqrt(q * (1 - q) / n)
    tol = 1e-9 * max(1.0, abs(value))
    below, at_or_below = np.mean(exact < value - tol), np.mean(exact <= value + tol)
    assert at_or_below >= q - 4 * se and below <= q + 4 * se, (value, q, below, at_or_below)


def _all_resample_means(x: np.ndarray) -> np.ndarray:
    return np.array([np.mean(r) for r in itertools.product(x, repeat=len(x))])


def test_mean_ci_agrees_with_the_enumerated_bootstrap_within_monte_carlo_error():
    x = np.array([47.3, 52.7, 60.1, 65.0, 71.5, 70.2])  # 6^6 = 46656 resamples
    exact = _all_resample_means(x)
    for seed in (0, 1):
        lo, hi = mean_ci(x, n_boot=2000, seed=seed)
        _rank_within_mc_error(exact, lo, 0.025, 2000)
        _rank_within_mc_error(exact, hi, 0.975, 2000)


def test_diff_means_ci_agrees_with_the_enumerated_bootstrap_within_monte_carlo_error():
    a, b = np.array([70.1, 68.0, 72.4, 61.3]), np.array([52.2, 66.0, 48.7, 59.9, 55.0])
    exact = np.subtract.outer(_all_resample_means(a), _all_resample_means(b)).ravel()  # 256 x 3125
    lo, hi = diff_means_ci(a, b, n_boot=2000, seed=0)
    _rank_within_mc_error(exact, lo, 0.025, 2000)
    _rank_within_mc_error(exact, hi, 0.975, 2000)
    # a group of one value is a constant under resampling
    lo1, hi1 = diff_means_ci(a, [50.0], seed=0)
    assert (lo1, hi1) == pytest.approx(tuple(np.array(mean_ci(a, seed=0)) - 50.0))


def test_max_ci_is_the_enumerated_bootstrap_quantile():
    x = np.array([1.0, 4.0, 4.0, 9.0, 6.5])
    for n in (1, 2, 3, 5):
        maxima = np.sort([max(r) for r in itertools.product(x, repeat=n)])
        # the smallest value whose share of resamples at or below it reaches q
        expected = [maxima[int(np.ceil(q * maxima.size)) - 1] for q in (0.025, 0.975)]
        assert max_ci(x, n=n) == pytest.approx(tuple(expected)), n
    # by hand: the best of 2 of {1, 4, 4, 9, 6.5} is 1 with probability 1/25 >= 0.025
    assert max_ci(x, n=2) == (1.0, 9.0)


def _exact_permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    hits = total = 0
    for idx in itertools.combinations(range(pooled.size), a.size):
        mask = np.zeros(pooled.size, bool)
        mask[list(idx)] = True
        hits += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-9
        total += 1
    return hits / total


def test_permutation_p_is_exact_when_the_splits_are_few():
    a = np.array([70.1, 68.0, 72.4, 61.3, 66.6, 59.0])
    b = np.array([52.2, 66.0, 48.7, 59.9, 55.0, 69.4])  # 924 splits < 5000 resamples
    assert permutation_test(a, b, n_perm=5000) == pytest.approx(_exact_permutation_p(a, b), abs=1e-12)
    # by hand: 10 against 1..5; of the 6 ways to set one value apart only 10 is 7 from the rest's mean
    assert permutation_test([10.0], [1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(1 / 6)


def test_permutation_p_agrees_with_the_exact_test_within_monte_carlo_error():
    a = np.array([70.1, 68.0, 72.4, 61.3, 66.6, 59.0, 63.2, 57.5])
    b = np.array([52.2, 66.0, 48.7, 59.9, 55.0, 69.4, 61.1, 64.0])  # 12870 splits > 2000 resamples
    exact = _exact_permutation_p(a, b)
    assert 0.01 < exact < 0.5  # a p where Monte Carlo error matters
    for seed in (0, 1, 2):
        p = permutation_test(a, b, n_perm=2000, seed=seed)
        assert abs(p - exact) <= 4 * np.sqrt(exact * (1 - exact) / 2000) + 1 / 2001, (seed, p, exact)


def test_a_seed_reproduces_every_monte_carlo_number():
    a, b = np.random.default_rng(3).normal(70, 3, 12), np.random.default_rng(4).normal(68, 3, 12)
    assert compare(a, b, seed=5) == compare(a, b, seed=5)
    assert mean_ci(a, seed=5) == mean_ci(a, seed=5) and mean_ci(a, seed=5) != mean_ci(a, seed=6)
