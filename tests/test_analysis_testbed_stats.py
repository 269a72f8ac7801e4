"""The testbed's statistics (issue 31, item 5): one-sided Fisher, Holm, one-sided Mann–Whitney, the exact
power of the Fisher test and the minimum detectable effect. Expected values are worked by hand in each
docstring, or come from an independent enumeration written here."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy.stats import binom, fisher_exact

from mixsweep.analysis.stats import (
    fisher_one_sided,
    fisher_power,
    holm,
    mannwhitney_p,
    minimum_detectable_rate,
)


def test_one_sided_fisher_is_the_hypergeometric_tail_on_the_claimed_side():
    """Cell 2/10 failed, baseline 7/10: F = 9 failures in N = 20 runs, the cell draws 10. With the margins
    fixed, P(A = a) = C(9, a) C(11, 10 - a) / C(20, 10), C(20, 10) = 184756:
    a = 0: 1·11 = 11; a = 1: 9·55 = 495; a = 2: 36·165 = 5940. So
    fewer: P(A <= 2) = (11 + 495 + 5940) / 184756 = 6446 / 184756 ≈ 0.0349;
    more:  P(A >= 2) = 1 - (11 + 495) / 184756 = 184250 / 184756."""
    assert comb(20, 10) == 184756
    assert fisher_one_sided(2, 10, 7, 10, "fewer") == pytest.approx(6446 / 184756, rel=1e-12)
    assert fisher_one_sided(2, 10, 7, 10, "more") == pytest.approx(184250 / 184756, rel=1e-12)


def test_one_sided_fisher_against_an_all_failed_baseline():
    """Cell 15/20, baseline 20/20 (the issue's "any cell with <= 15 failures agrees"): F = 35 of N = 40, the
    cell draws 20; P(A <= 15) = sum_{a=15}^{15} C(35, 15) C(5, 5) / C(40, 20) (a >= 15: the baseline holds at
    most 20 failures) = C(35, 15) / C(40, 20) = 3247943160 / 137846528820 ≈ 0.0236."""
    assert fisher_one_sided(15, 20, 20, 20, "fewer") == pytest.approx(comb(35, 15) / comb(40, 20), rel=1e-12)
    assert comb(35, 15) == 3247943160 and comb(40, 20) == 137846528820


def test_holm_by_hand_for_four_p_values():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06;
    0.04·1 = 0.04 -> running max 0.06. Back in order: (0.03, 0.06, 0.06, 0.02)."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_leaves_nan_out_of_m():
    """(0.5, NaN, 0.2): m = 2. 0.2·2 = 0.4; 0.5·1 = 0.5 -> (0.5, NaN, 0.4). And (0.6, 0.7): 1.2 -> 1, 0.7 -> 1."""
    out = holm([0.5, np.nan, 0.2])
    assert out[0] == pytest.approx(0.5) and np.isnan(out[1]) and out[2] == pytest.approx(0.4)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_holm_against_statsmodels_where_installed():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.array([0.001, 0.2, 0.03, 0.04, 0.011, 0.5])
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_one_sided_mann_whitney_exact_small_case():
    """x = (3, 4) above y = (1, 2): U_x = 4, the largest of the C(4, 2) = 6 equally likely splits, so the exact
    one-sided p that x is larger is 1/6; on the other side P(U <= 4) = 1."""
    assert mannwhitney_p([3, 4], [1, 2], "greater") == pytest.approx(1 / 6)
    assert mannwhitney_p([3, 4], [1, 2], "less") == pytest.approx(1.0)
    assert mannwhitney_p([5, 5], [5, 5], "greater") == 1.0  # all tied: no evidence


def _brute_power(p0: float, p1: float, n: int, alpha: float, side: str) -> float:
    """An independent enumeration: every (a, b) with its two binomial probabilities, scipy's test each time."""
    total = 0.0
    for a in range(n + 1):
        for b in range(n + 1):
            if fisher_exact([[a, n - a], [b, n - b]], alternative=side).pvalue < alpha:
                total += binom.pmf(a, n, p1) * binom.pmf(b, n, p0)
    return total


def test_power_at_20_seeds_matches_a_brute_force_enumeration():
    """n = 20, p0 = 0.5, p1 = 0.25. One-sided at alpha 0.05 the power is 0.375 (brute force below); the issue's
    "about 27%" is the power at alpha 0.025 (= a two-sided test at 0.05): 0.269."""
    one_sided = fisher_power(0.5, 0.25, 20, 0.05, "fewer")
    assert one_sided == pytest.approx(_brute_power(0.5, 0.25, 20, 0.05, "less"), abs=1e-12)
    assert one_sided == pytest.approx(0.375, abs=0.001)
    half_alpha = fisher_power(0.5, 0.25, 20, 0.025, "fewer")
    assert half_alpha == pytest.approx(_brute_power(0.5, 0.25, 20, 0.025, "less"), abs=1e-12)
    assert half_alpha == pytest.approx(0.27, abs=0.002)
    assert fisher_power(0.3, 0.6, 8, 0.05, "more") == pytest.approx(_brute_power(0.3, 0.6, 8, 0.05, "greater"),
                                                                  abs=1e-12)


def test_minimum_detectable_rate_is_where_the_brute_force_power_crosses_80_percent():
    p1 = minimum_detectable_rate(0.5, 20, 0.05, "fewer")
    assert p1 is not None and 0 < p1 < 0.25
    assert _brute_power(0.5, p1, 20, 0.05, "less") >= 0.8
    assert _brute_power(0.5, p1 + 0.002, 20, 0.05, "less") < 0.8
    up = minimum_detectable_rate(0.2, 20, 0.05, "more")
    assert up is not None and 0.5 < up < 1
    assert _brute_power(0.2, up, 20, 0.05, "greater") >= 0.8 > _brute_power(0.2, up - 0.002, 20, 0.05, "greater")


def test_minimum_detectable_rate_is_none_when_no_rate_reaches_the_power():
    """n = 5, p0 = 0.1, even p1 = 0 (a = 0 always): 0/5 against b/5 has p = P(A = 0) = C(10 - b, 5) / C(10, 5):
    b = 5: 1/252 = 0.004, b = 4: 6/252 = 0.024, b = 3: 21/252 = 0.083. It rejects for b >= 4 only, so the power
    is P(b >= 4) under Bin(5, 0.1) = 5·0.1^4·0.9 + 0.1^5 = 0.00046, far below 0.8."""
    assert fisher_power(0.1, 0.0, 5, 0.05, "fewer") == pytest.approx(5 * 0.1**4 * 0.9 + 0.1**5)
    assert minimum_detectable_rate(0.1, 5, 0.05, "fewer") is None
