"""Representation-level instability: distances between two runs' representations X (n × d₁) and
Y (n × d₂) of the same n examples (rows), one layer at a time (Du & Nguyen 2023, §3).

The definitions are those of the authors' ``representation_measure.py`` (adapted there from anatome
and Kornblith et al.'s notebook); each is a distance in [0, 1], 0 for identical representations:

- SVCCA (Raghu et al. 2017), PWCCA (Morcos et al. 2018), linear CKA with the unbiased HSIC estimator
  (Kornblith et al. 2019; Nguyen et al. 2021), orthogonal Procrustes (Ding et al. 2021).

A cell compares 20 restarts over 190 pairs, so what depends on one run only (Gram matrices, SVDs)
is computed once per run by :func:`prepare` and every pair reuses it; the ``*_distance`` functions
are the same computation for one pair. Arithmetic is float64 (representations are stored fp16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SVCCA_KEEP = 0.99  # the authors' accept_rate: keep the leading directions holding 99% of Σσ
_RANK_TOL = 1e-10  # singular values below this × the largest are rank deficiency (1/σ would overflow)


@dataclass
class Prepared:
    """What the four distances need from one run's representation matrix."""

    gram_u: np.ndarray  # unbiased-centred Gram matrix (CKA), divided by its Frobenius norm
    op_factor: np.ndarray  # A with AᵀB having the singular values of X̂ᵀŶ (X̂ centred, ‖X̂‖_F = 1)
    cca_basis: np.ndarray  # orthonormal basis of the centred column space of X (CCA / PWCCA)
    cca_offset: np.ndarray  # (1, k) row: the mean's coordinates, μᵀ V Σ⁻¹ (PWCCA weights on uncentred X)
    svcca_basis: np.ndarray  # orthonormal basis of the centred, SVD-reduced X (SVCCA)


def prepare(x: np.ndarray) -> Prepared:
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    # Procrustes on the Frobenius-normalised centred matrix
    norm = np.linalg.norm(xc)
    # CCA basis: thin SVD of the centred matrix, keeping its numerical rank
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    keep = s > _RANK_TOL * (s[0] if len(s) else 0)
    u, s, vt = u[:, keep], s[keep], vt[keep]
    op_factor = (u * s) / norm if norm > 0 else u * s  # X̂ = (UΣ/‖X‖)Vᵀ, so X̂ᵀŶ ~ (UΣ)ᵀ(U'Σ') up to orthogonal factors
    offset = (x.mean(axis=0, keepdims=True) @ vt.T) / s
    return Prepared(gram_u=_unbiased_gram(x), op_factor=op_factor, cca_basis=u, cca_offset=offset,
                    svcca_basis=_svcca_basis(x))


def _unbiased_gram(x: np.ndarray) -> np.ndarray:
    """K = XXᵀ centred by the unbiased HSIC estimator (Song et al. 2012), as Kornblith et al.'s
    ``center_gram(unbiased=True)`` and the authors' ``center_gram``: zero the diagonal, subtract
    the row means computed with 1/(n − 2) corrected by their total over 2(n − 1), zero the diagonal
    again; then scale to unit Frobenius norm, so ⟨K̃, L̃⟩ is the CKA."""
    k = x @ x.T
    n = len(k)
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None] + means[None, :]
    np.fill_diagonal(k, 0.0)
    norm = np.linalg.norm(k)
    return k / norm if norm > 0 else k


def _svcca_basis(x: np.ndarray) -> np.ndarray:
    """The authors' ``_svd_reduction``: SVD of the *uncentred* X = UΣVᵀ, keep the first r directions
    where r = #{i : Σ_{j≤i} σ_j / Σ_j σ_j ≤ 0.99} (at least 1), project X V_r = U_r Σ_r; then the CCA
    step centres that projection. Returned: an orthonormal basis of the centred projection."""
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    total = np.abs(s).sum()
    r = max(1, int((np.cumsum(np.abs(s)) / total <= SVCCA_KEEP).sum())) if total > 0 else 1
    reduced = u[:, :r] * s[:r]
    reduced -= reduced.mean(axis=0, keepdims=True)
    ub, sb, _ = np.linalg.svd(reduced, full_matrices=False)
    return ub[:, sb > _RANK_TOL * (sb[0] if len(sb) else 0)]


def _svals(m: np.ndarray) -> np.ndarray:
    """Singular values of a small matrix, via the eigenvalues of its Gram on the smaller side
    (cheaper than an SVD; clipped at 0 against rounding)."""
    g = m.T @ m if m.shape[1] <= m.shape[0] else m @ m.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(g), 0.0, None))


def _span_everything(qa: np.ndarray, qb: np.ndarray) -> bool:
    """Both bases span the whole (n − 1)-dimensional space of centred n-vectors: then Q_AᵀQ_B is
    orthogonal and every canonical correlation is exactly 1, so (PW/SV)CCA distance is 0 with no
    decomposition. This is CCA's known degeneracy with at least as many dimensions as examples − 1."""
    n = len(qa)
    return qa.shape[1] >= n - 1 and qb.shape[1] >= n - 1


def cka_pair(a: Prepared, b: Prepared) -> float:
    """d_CKA = 1 − ⟨K̃, L̃⟩_F / (‖K̃‖_F ‖L̃‖_F), K̃, L̃ the unbiased-centred linear Gram matrices of X
    and Y (see :func:`_unbiased_gram`): the authors' ``unbiased_linear_cka_dist``."""
    return float(1.0 - (a.gram_u * b.gram_u).sum())


def procrustes_pair(a: Prepared, b: Prepared) -> float:
    """d_OP = 1 − ‖X̂ᵀŶ‖_*, X̂ = (X − 1μ_Xᵀ)/‖X − 1μ_Xᵀ‖_F (same for Y), ‖·‖_* the nuclear norm (sum of
    singular values): the authors' ``op_dist``. Ding et al. (2021) write the squared Procrustes distance
    min_Q ‖X̂ − ŶQ‖²_F = 2 − 2‖X̂ᵀŶ‖_*; the authors use half of it, in [0, 1]; so does this."""
    return float(1.0 - _svals(a.op_factor.T @ b.op_factor).sum())


def svcca_pair(a: Prepared, b: Prepared) -> float:
    """d_SVCCA = 1 − (1/min(r_X, r_Y)) Σ_i ρ_i, ρ_i the canonical correlations of the SVD-reduced X and Y
    (:func:`_svcca_basis`): the singular values of Q_XᵀQ_Y for orthonormal bases Q of the centred,
    reduced matrices (the authors' ``svcca_dist`` / ``cca_by_svd``)."""
    if _span_everything(a.svcca_basis, b.svcca_basis):
        return 0.0
    rho = _svals(a.svcca_basis.T @ b.svcca_basis)
    return float(1.0 - rho.sum() / min(a.svcca_basis.shape[1], b.svcca_basis.shape[1]))


def pwcca_pair(a: Prepared, b: Prepared) -> float:
    """d_PWCCA = 1 − Σ_i α_i ρ_i (the authors' ``pwcca_dist``, after Morcos et al. 2018).

    CCA by SVD: X − 1μᵀ = U_XΣ_XV_Xᵀ, U_XᵀU_Y = P diag(ρ) Qᵀ; X's canonical weights a = V_XΣ_X⁻¹P, and
    α_i ∝ Σ_k |(X a)_{ki}| (the canonical variates of the *uncentred* X, summed in absolute value over
    examples), normalised to Σα = 1. Morcos et al. weight by Σ_j |⟨h_i, x_j⟩| over neurons instead;
    the authors' code (followed here) sums over examples. Directions with σ < 1e-10 σ_max are dropped.
    Invariant to invertible linear maps of X or Y (the ρ_i are, and so are X's variates); because the
    weights use the uncentred X, not to a translation of X.
    """
    if _span_everything(a.cca_basis, b.cca_basis):
        return 0.0
    m = a.cca_basis.T @ b.cca_basis
    # P and ρ² from the symmetric eigenproblem of MMᵀ (half the time of an SVD of M); top min(k_X, k_Y)
    ev, vec = np.linalg.eigh(m @ m.T)
    top = np.argsort(ev)[::-1][: min(m.shape)]
    p, rho = vec[:, top], np.sqrt(np.clip(ev[top], 0.0, 1.0))
    variates = a.cca_basis @ p + a.cca_offset @ p  # X a = U_X P + 1 μᵀV_XΣ_X⁻¹P
    alpha = np.abs(variates).sum(axis=0)
    alpha = alpha / alpha.sum()
    return float(1.0 - (alpha * rho).sum())


PAIR_FUNCTIONS = {"svcca": svcca_pair, "pwcca": pwcca_pair, "cka": cka_pair, "procrustes": procrustes_pair}


def svcca_distance(x: np.ndarray, y: np.ndarray) -> float:
    return svcca_pair(prepare(x), prepare(y))


def pwcca_distance(x: np.ndarray, y: np.ndarray) -> float:
    return pwcca_pair(prepare(x), prepare(y))


def cka_distance(x: np.ndarray, y: np.ndarray) -> float:
    return cka_pair(prepare(x), prepare(y))


def procrustes_distance(x: np.ndarray, y: np.ndarray) -> float:
    return procrustes_pair(prepare(x), prepare(y))
