"""The representation distances against reference implementations written here from the formulas, the
plain way (an SVD per matrix and per pair, scipy where it has the quantity), on random data of every
shape the fast routes distinguish (d ≥ n through the Gram's eigenvectors, d < n, unresolved spectra,
a dominant mean, fp16): agreement to 1e-6 relative (1e-12 absolute where the value is 0)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import subspace_angles, svdvals

from mixsweep.instability import (
    cell_measures,
    cka_distance,
    procrustes_distance,
    pwcca_distance,
    svcca_distance,
)
from mixsweep.instability.representation import prepare

REL, ABS = 1e-6, 1e-12


def ref_svcca(x: np.ndarray, y: np.ndarray) -> float:
    """The authors' reduction (uncentred SVD, keep r with cumulative Σσ share ≤ 0.99, project), then the
    canonical correlations of the centred projections as cosines of their principal angles (scipy)."""

    def reduce(z):
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        r = max(1, int((np.cumsum(s) / s.sum() <= 0.99).sum()))
        red = z @ vt[:r].T
        return red - red.mean(axis=0)

    rx, ry = reduce(x), reduce(y)
    rho = np.cos(subspace_angles(rx, ry))
    return float(1 - rho.sum() / min(rx.shape[1], ry.shape[1]))


def ref_pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """CCA by SVD of the centred matrices (σ > 1e-10 σ_max kept): U_xᵀU_y = P diag(ρ) Qᵀ, weights
    a = V_xΣ_x⁻¹P, α ∝ Σ_k |(X a)_k| over examples of the uncentred X; 1 − Σ α ρ."""

    def centred_svd(z):
        u, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        keep = s > 1e-10 * s[0]
        return u[:, keep], s[keep], vt[keep]

    ux, sx, vtx = centred_svd(x)
    uy, _, _ = centred_svd(y)
    p, rho, _ = np.linalg.svd(ux.T @ uy, full_matrices=False)
    alpha = np.abs(x @ (vtx.T @ (p / sx[:, None]))).sum(axis=0)
    return float(1 - (alpha / alpha.sum() * np.clip(rho, 0, 1)).sum())


def ref_cka(x: np.ndarray, y: np.ndarray) -> float:
    """1 − HSIC₁(K, L)/√(HSIC₁(K, K) HSIC₁(L, L)), Song et al.'s unbiased HSIC of the linear Grams."""

    def hsic1(k, l_):
        n = len(k)
        k, l_ = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
        one = np.ones(n)
        return ((np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
                 - 2 / (n - 2) * (one @ k @ l_ @ one)) / (n * (n - 3)))

    k, l_ = x @ x.T, y @ y.T
    return float(1 - hsic1(k, l_) / np.sqrt(hsic1(k, k) * hsic1(l_, l_)))


def ref_procrustes(x: np.ndarray, y: np.ndarray) -> float:
    """1 − ‖X̂ᵀŶ‖_*, the d_x × d_y product's singular values from scipy's SVD."""
    xh = (x - x.mean(axis=0)) / np.linalg.norm(x - x.mean(axis=0))
    yh = (y - y.mean(axis=0)) / np.linalg.norm(y - y.mean(axis=0))
    return float(1 - svdvals(xh.T @ yh).sum())


REFERENCES = {"svcca": (svcca_distance, ref_svcca), "pwcca": (pwcca_distance, ref_pwcca),
              "cka": (cka_distance, ref_cka), "procrustes": (procrustes_distance, ref_procrustes)}


def pair(kind: str, n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two restarts' representations: a shared signal plus run noise, shaped by ``kind``."""
    r = np.random.default_rng(seed)
    base = r.standard_normal((n, d))
    x = base + 0.6 * r.standard_normal((n, d))
    y = base @ np.linalg.qr(r.standard_normal((d, d)))[0] * 0.3 + r.standard_normal((n, d))  # other spectrum
    if kind == "mean":  # a dominant mean, as BERT's hidden states: the top singular vector ≈ 1/√n
        x, y = x + 40.0 * r.standard_normal(d), y + 25.0 * r.standard_normal(d)
    elif kind == "decay":  # power-law spectrum, still resolved by the Gram (σ_min/σ_max ≈ 1e-4)
        x, y = x * np.arange(1, d + 1) ** -1.5, y * np.arange(1, d + 1) ** -1.2
    elif kind == "unresolved":  # σ_min/σ_max ≈ 1e-9: below what eigh(XXᵀ) resolves, the SVD route
        x, y = x * np.logspace(0, -9, d), y * np.logspace(0, -8, d)
    elif kind == "fp16":
        x, y = x.astype(np.float16).astype(np.float64), y.astype(np.float16).astype(np.float64)
    elif kind == "lowrank":  # rank 10 < min(n, d), plus a constant column
        x = base[:, :10] @ r.standard_normal((10, d))
        x[:, 0] = 3.0
    return x, y


CASES = [("plain", 80, 120), ("plain", 60, 60), ("plain", 60, 59), ("plain", 150, 40), ("mean", 80, 120),
         ("mean", 150, 40), ("decay", 90, 150), ("decay", 150, 60), ("unresolved", 70, 100), ("fp16", 100, 128),
         ("lowrank", 100, 60), ("lowrank", 60, 100)]


@pytest.mark.parametrize(("kind", "n", "d"), CASES)
@pytest.mark.parametrize("measure", list(REFERENCES))
def test_distances_agree_with_the_references(kind, n, d, measure):
    x, y = pair(kind, n, d)
    fast, ref = REFERENCES[measure]
    expected = ref(x, y)
    assert fast(x, y) == pytest.approx(expected, rel=REL, abs=ABS)
    assert fast(y, x) == pytest.approx(ref(y, x), rel=REL, abs=ABS)  # both orders (SVCCA swaps sides)
    if measure != "pwcca":  # the symmetric ones (PWCCA weights by X's variates)
        assert ref(y, x) == pytest.approx(expected, rel=REL, abs=ABS)


@pytest.mark.parametrize("measure", list(REFERENCES))
def test_pairs_across_routes_agree(measure):
    # one run through the Gram (resolved), the other through SVDs (unresolved, or d < n; d_X ≠ d_Y is
    # allowed): factors and bases from different routes meet in one product
    fast, ref = REFERENCES[measure]
    x = pair("plain", 70, 100, seed=1)[0]
    for y in (pair("unresolved", 70, 100, seed=2)[1], pair("plain", 70, 40, seed=3)[0]):
        assert fast(x, y) == pytest.approx(ref(x, y), rel=REL, abs=ABS)
        assert fast(y, x) == pytest.approx(ref(y, x), rel=REL, abs=ABS)


def test_the_cases_reach_every_route():
    # d ≥ n and resolved: the Gram route, SVCCA through the complement, PWCCA degenerate without an SVD
    p = prepare(pair("plain", 80, 120)[0])
    assert p.cca_basis is None and p.spans_everything and p.svcca_complement is not None
    assert p.op_factor.shape == (80, 79)
    # d < n: thin SVDs, SVCCA directly
    p = prepare(pair("plain", 150, 40)[0])
    assert p.cca_basis is not None and not p.spans_everything and p.svcca_complement is None
    # d ≥ n but unresolved: the SVD route
    assert prepare(pair("unresolved", 70, 100)[0]).cca_basis is not None


def test_prepared_bases_are_orthonormal_and_complementary():
    x = pair("mean", 80, 120)[0]
    p = prepare(x)
    q, w = p.svcca_basis, p.svcca_complement
    both = np.hstack([q, w])
    assert np.allclose(both.T @ both, np.eye(both.shape[1]), atol=1e-10)
    assert np.allclose(both.T @ np.ones(80), 0, atol=1e-10) and both.shape[1] == 79  # every centred direction


def test_cell_pairs_agree_with_the_references():
    r = np.random.default_rng(3)
    base = r.standard_normal((70, 90))
    reps = [(base + 0.7 * r.standard_normal((70, 90))).astype(np.float16) for _ in range(5)]
    out = cell_measures(np.zeros(5), representations={"layer_1": reps})
    xs = [x.astype(np.float64) for x in reps]
    for measure, (_, ref) in REFERENCES.items():
        expected = np.mean([ref(xs[i], xs[j]) for i in range(5) for j in range(i + 1, 5)])
        assert out.layers[measure]["layer_1"].value == pytest.approx(expected, rel=REL, abs=ABS)
