"""The instability measures against hand-worked examples, stated invariances and independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from mixsweep.instability import (
    cell_measures,
    cka_distance,
    ensemble_predictions,
    fleiss_kappa,
    jsd_matrix,
    pairwise_disagreement,
    procrustes_distance,
    pwcca_distance,
    score_sd,
    svcca_distance,
)
from mixsweep.instability.cell import mean_over_pairs

# three restarts (rows) labelling four examples (columns)
LABELS = np.array([[0, 1, 1, 0],
                   [0, 1, 0, 0],
                   [1, 1, 0, 0]])


def test_pairwise_disagreement_by_hand():
    # rows 0/1 differ at example 2 → 1/4; rows 0/2 at examples 0 and 2 → 2/4; rows 1/2 at example 0 → 1/4
    # mean over the 3 pairs: (1/4 + 2/4 + 1/4) / 3 = 1/3
    assert pairwise_disagreement(LABELS) == pytest.approx(1 / 3)
    assert pairwise_disagreement(np.array([[1, 0, 1], [1, 0, 1]])) == 0.0


def test_fleiss_kappa_by_hand():
    # m = 3 raters, n = 4 subjects. Counts (n_0, n_1) per example: (2,1), (0,3), (2,1), (3,0)
    # P_k = (n_0² + n_1² − 3) / (3·2): (4+1−3)/6 = 1/3, (9−3)/6 = 1, 1/3, 1 → P̄ = (8/3)/4 = 2/3
    # p_0 = (2+0+2+3)/12 = 7/12, p_1 = 5/12 → P_e = 49/144 + 25/144 = 37/72
    # κ = (2/3 − 37/72) / (1 − 37/72) = (11/72) / (35/72) = 11/35
    assert fleiss_kappa(LABELS) == pytest.approx(11 / 35)
    # perfect agreement on varied labels: P̄ = 1 → κ = 1
    assert fleiss_kappa(np.array([[0, 1, 2], [0, 1, 2]])) == pytest.approx(1.0)
    # two raters who always disagree on two balanced classes: P̄ = 0, P_e = 1/2 → κ = −1
    assert fleiss_kappa(np.array([[0, 1, 0, 1], [1, 0, 1, 0]])) == pytest.approx(-1.0)


def test_fleiss_kappa_three_classes_by_hand():
    # m = 2, n = 3, K = 3: labels (0,0), (1,2), (2,2). Counts per example over classes 0..2:
    # (2,0,0) → P = (4−2)/2 = 1; (0,1,1) → (1+1−2)/2 = 0; (0,0,2) → 1. P̄ = 2/3
    # p = (2, 1, 3)/6 → P_e = (4 + 1 + 9)/36 = 14/36 = 7/18; κ = (2/3 − 7/18)/(1 − 7/18) = (5/18)/(11/18) = 5/11
    assert fleiss_kappa(np.array([[0, 1, 2], [0, 2, 2]])) == pytest.approx(5 / 11)


def test_sd_jsd_and_ensemble_by_hand():
    # population std of 70, 72, 74: sqrt((4 + 0 + 4)/3) = sqrt(8/3)
    assert score_sd(np.array([70.0, 72.0, 74.0, np.nan])) == pytest.approx(math.sqrt(8 / 3))
    # JSD((1,0), (0,1)) = ½ KL(p‖m) + ½ KL(q‖m) with m = (½, ½): ½ log 2 + ½ log 2 = log 2
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])
    j = jsd_matrix(probs)
    assert j[0, 1] == pytest.approx(math.log(2), abs=1e-9) and j[0, 2] == pytest.approx(0.0, abs=1e-9)
    # majority vote per column of LABELS: (0,0,1)→0, (1,1,1)→1, (1,0,0)→0, (0,0,0)→0
    assert ensemble_predictions(LABELS, regression=False).tolist() == [0, 1, 0, 0]
    assert ensemble_predictions(np.array([[1.0, 2.0], [3.0, 6.0]]), regression=True).tolist() == [2.0, 4.0]


def _rng():
    return np.random.default_rng(7)


def test_cka_and_procrustes_invariant_to_orthogonal_maps_and_scale():
    r = _rng()
    x = r.standard_normal((120, 20))
    q, _ = np.linalg.qr(r.standard_normal((20, 20)))
    assert cka_distance(x, x @ q) == pytest.approx(0.0, abs=1e-12)       # CKA(X, XQ) = 1
    assert procrustes_distance(x, x @ q) == pytest.approx(0.0, abs=1e-12)
    assert cka_distance(x, 3.0 * x @ q + 5.0) == pytest.approx(0.0, abs=1e-12)
    assert procrustes_distance(x, 3.0 * x @ q + 5.0) == pytest.approx(0.0, abs=1e-12)


def test_cka_of_independent_gaussians_is_near_zero():
    r = _rng()
    x, y = r.standard_normal((500, 64)), r.standard_normal((500, 64))
    assert 1.0 - cka_distance(x, y) == pytest.approx(0.0, abs=0.01)
    # also with more dimensions than examples (the unbiased estimator's point: the biased one is ≫ 0 here)
    x, y = r.standard_normal((100, 300)), r.standard_normal((100, 300))
    assert abs(1.0 - cka_distance(x, y)) < 0.03


def _hsic1(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012)'s unbiased HSIC, written from the formula (not from the code under test):
    HSIC₁ = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)), K̃ = K with a zero diagonal."""
    n = len(k)
    k, l_ = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
    one = np.ones(n)
    return float((np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
                  - 2 / (n - 2) * (one @ k @ l_ @ one)) / (n * (n - 3)))


def test_cka_matches_the_unbiased_hsic_formula():
    r = _rng()
    x = r.standard_normal((60, 10))
    y = x @ r.standard_normal((10, 7)) + 0.5 * r.standard_normal((60, 7))
    k, l_ = x @ x.T, y @ y.T
    cka = _hsic1(k, l_) / math.sqrt(_hsic1(k, k) * _hsic1(l_, l_))
    assert cka_distance(x, y) == pytest.approx(1 - cka, abs=1e-10)


def test_procrustes_matches_scipy_orthogonal_procrustes():
    # Ding et al.: min_Q ‖X̂Q − Ŷ‖²_F = 2 − 2‖X̂ᵀŶ‖_*; the authors' d_OP is half of it
    r = _rng()
    x, y = r.standard_normal((80, 12)), r.standard_normal((80, 12))
    xh = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    yh = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    q, _ = orthogonal_procrustes(xh, yh)
    assert procrustes_distance(x, y) == pytest.approx(np.linalg.norm(xh @ q - yh) ** 2 / 2, abs=1e-10)


def _canonical_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ρ² = eigenvalues of Σ_aa⁻¹ Σ_ab Σ_bb⁻¹ Σ_ba (textbook CCA; independent of the SVD route)."""
    a, b = a - a.mean(0), b - b.mean(0)
    saa, sbb, sab = a.T @ a, b.T @ b, a.T @ b
    m = np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.T)
    ev = np.sort(np.linalg.eigvals(m).real)[::-1][: min(a.shape[1], b.shape[1])]
    return np.sqrt(np.clip(ev, 0, 1))


def test_svcca_matches_reduction_then_textbook_cca():
    r = _rng()
    x = r.standard_normal((300, 6)) * np.array([5, 4, 3, 2, 1, 0.01])
    y = x @ r.standard_normal((6, 5)) + 0.3 * r.standard_normal((300, 5))

    def reduce(z):  # the authors' rule: keep r directions with cumulative Σσ share ≤ 0.99 (uncentred SVD)
        u, s, vt = np.linalg.svd(z, full_matrices=False)
        keep = max(1, int((np.cumsum(s) / s.sum() <= 0.99).sum()))
        return z @ vt[:keep].T

    rx, ry = reduce(x), reduce(y)
    rho = _canonical_correlations(rx, ry)
    assert svcca_distance(x, y) == pytest.approx(1 - rho.sum() / min(rx.shape[1], ry.shape[1]), abs=1e-8)


def test_svcca_and_pwcca_invariances():
    # CCA is invariant to invertible linear maps of either side (Raghu et al. 2017); SVCCA's SVD step is
    # invariant to orthogonal maps and isotropic scale, so SVCCA is invariant to those
    r = _rng()
    x = r.standard_normal((200, 8))
    y = x[:, :6] @ r.standard_normal((6, 6)) + 0.5 * r.standard_normal((200, 6))
    a = r.standard_normal((6, 6)) + 3 * np.eye(6)  # invertible
    q, _ = np.linalg.qr(r.standard_normal((8, 8)))
    assert pwcca_distance(x, y @ a) == pytest.approx(pwcca_distance(x, y), abs=1e-8)
    b = r.standard_normal((8, 8)) + 3 * np.eye(8)  # invertible
    # (not to a translation of X: the authors weight by the variates of the uncentred X)
    assert pwcca_distance(x @ b, y) == pytest.approx(pwcca_distance(x, y), abs=1e-8)
    assert pwcca_distance(x, x @ b) == pytest.approx(0.0, abs=1e-8)
    assert svcca_distance(2.5 * x @ q, y) == pytest.approx(svcca_distance(x, y), abs=1e-8)
    assert svcca_distance(x, x @ q) == pytest.approx(0.0, abs=1e-8)
    d = pwcca_distance(x, y)
    assert 0 < d < 1


def test_cell_measures_pairs_and_interval():
    r = _rng()
    base = r.standard_normal((50, 6))
    reps = [base + 0.1 * r.standard_normal((50, 6)) for _ in range(4)]
    out = cell_measures(np.array([70.0, 71.0, 69.0, 72.0]), labels=np.vstack([LABELS, LABELS[:1]]),
                        probs=None, representations={"layer_1": reps})
    # mean over the 6 pairs of the 4 rows (LABELS + a copy of row 0):
    # pairs with row 3 (= row 0): (0,3) 0, (1,3) 1/4, (2,3) 2/4; plus the three pairs above (1/4, 2/4, 1/4)
    assert out.values["pwd"].value == pytest.approx((0 + 0.25 + 0.5 + 0.25 + 0.5 + 0.25) / 6)
    assert out.values["pwd"].low <= out.values["pwd"].value <= out.values["pwd"].high
    assert set(out.layers) == {"svcca", "pwcca", "cka", "procrustes"}
    expected = np.mean([cka_distance(reps[i], reps[j]) for i in range(4) for j in range(i + 1, 4)])
    assert out.layers["cka"]["layer_1"].value == pytest.approx(expected)
    # a bootstrap draw with repeats counts the repeated pair at distance 0
    d = np.array([[0, 1.0], [1.0, 0]])
    assert mean_over_pairs(d, np.array([0, 0])) == 0.0 and mean_over_pairs(d, np.array([0, 1])) == 1.0


def test_cca_distances_are_zero_when_dimensions_reach_the_examples():
    # n = 30 examples in 40 dims: the centred columns span all 29 centred directions for both runs, so every
    # canonical correlation is 1 (CCA's degeneracy): PWCCA = 0 even for independent noise
    r = _rng()
    x, y = r.standard_normal((30, 40)), r.standard_normal((30, 40))
    assert pwcca_distance(x, y) == pytest.approx(0.0, abs=1e-9)
    assert _canonical_correlations(x[:, :20], y[:, :20]).min() < 0.99  # fewer dims than examples: not degenerate
