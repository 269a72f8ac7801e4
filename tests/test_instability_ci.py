"""The interval over restarts (ours, #32 item 12): a delete-one jackknife, no run paired with itself.

Coverage on synthetic cells whose population value is known: m restarts label n fixed examples, run i
predicting class 1 on example k with probability σ(logit p_k + u_i), u_i ~ N(0, s²) a per-run shift,
and with probability q the run fails (predicts 0 everywhere). Two independent runs disagree on
example k with probability 2μ_k(1 − μ_k), μ_k = (1 − q) E_u[σ(logit p_k + u)], so the population
I_pwd is (1/n) Σ_k 2μ_k(1 − μ_k), computed here by Gauss–Hermite quadrature (80 nodes), independently
of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from mixsweep.instability import cell_measures
from mixsweep.instability.cell import jackknife, leave_one_out_pair_means

N_EXAMPLES = 100
REPLICATIONS = 200
# 95% nominal; 200 replications give a binomial SD of √(0.95·0.05/200) ≈ 0.015: accept 0.95 ± 0.05
# on the low side (3 SD) and at most 0.99 (an interval too wide to be useful would cover ~always)
LOW, HIGH = 0.90, 0.99


def _difficulties() -> np.ndarray:
    return np.random.default_rng(1).beta(0.7, 0.7, N_EXAMPLES).clip(0.02, 0.98)


def population_pwd(p: np.ndarray, spread: float, fail: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(u) φ(u) du ≈ Σ w f(x) / Σ w
    mu = (1 - fail) * (expit(logit(p)[:, None] + spread * x[None, :]) * (w / w.sum())).sum(axis=1)
    return float((2 * mu * (1 - mu)).mean())


def synthetic_labels(rng, p: np.ndarray, m: int, spread: float, fail: float) -> np.ndarray:
    u = rng.normal(0.0, spread, m)
    y = (rng.random((m, len(p))) < expit(logit(p)[None, :] + u[:, None])).astype(int)
    y[rng.random(m) < fail] = 0
    return y


@pytest.mark.parametrize(("m", "spread", "fail"), [(10, 1.0, 0.0), (10, 1.0, 0.2), (20, 0.3, 0.0)])
def test_interval_covers_the_population_pwd(m, spread, fail):
    p = _difficulties()
    truth = population_pwd(p, spread, fail)
    rng = np.random.default_rng(2024)
    covered, below = 0, 0
    for _ in range(REPLICATIONS):
        y = synthetic_labels(rng, p, m, spread, fail)
        est = cell_measures(np.zeros(m), labels=y, num_classes=2, measures=["pwd"]).values["pwd"]
        covered += est.low <= truth <= est.high
        below += est.high < truth
    assert LOW <= covered / REPLICATIONS <= HIGH, (covered, below, truth)


def test_interval_is_centred_on_the_estimate():
    # the old percentile bootstrap with self-pairs at 0 put the whole interval below the estimate
    y = synthetic_labels(np.random.default_rng(5), _difficulties(), 10, 1.0, 0.0)
    est = cell_measures(np.zeros(10), labels=y, num_classes=2).values
    for name in ("pwd", "kappa", "kappa_authors"):
        e = est[name]
        assert e.low < e.value < e.high
        assert e.high - e.value == pytest.approx(e.value - e.low)  # symmetric (no clipping here)


def test_jackknife_by_hand():
    # three runs, pair distances d01 = 1, d02 = 2, d12 = 3: mean 2; leaving out run 0, 1, 2 leaves the
    # pair (1,2) = 3, (0,2) = 2, (0,1) = 1. SE² = (2/3)((3−2)² + 0 + (1−2)²) = 4/3; t(0.975, 2) = 4.302653
    d = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]], dtype=float)
    assert leave_one_out_pair_means(d).tolist() == [3.0, 2.0, 1.0]
    e = jackknife(2.0, leave_one_out_pair_means(d))
    half = 4.302653 * np.sqrt(4 / 3)
    assert e.high == pytest.approx(2 + half, rel=1e-6) and e.low == 0.0  # 2 − 4.97 clipped at 0
    # with two runs there is no leave-one-out pair: no interval
    assert np.isnan(jackknife(1.0, leave_one_out_pair_means(np.array([[0, 1.0], [1.0, 0]]))).low)
