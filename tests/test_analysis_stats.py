"""Statistics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mixsweep.analysis.stats import compare, expected_max, fisher_failures, max_ci, mean_ci, permutation_test


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
