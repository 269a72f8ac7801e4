"""Representation-level instability: distances between two runs' representations X (n × d₁) and
Y (n × d₂) of the same n examples (rows), one layer at a time (Du & Nguyen 2023, §3).

The definitions are those of the authors' ``representation_measure.py`` (adapted there from anatome
and Kornblith et al.'s notebook); each is a distance in [0, 1], 0 for identical representations:

- SVCCA after Raghu et al. (2017), but with **anatome's** reduction rule, which the authors copied: keep
  the leading directions of the *uncentred* matrix holding 99% of the *sum* of singular values (Raghu et
  al. keep 99% of the variance of the centred activations); then CCA of the reduced matrices;
- PWCCA (Morcos et al. 2018): **our addition**. The authors' file defines ``pwcca_dist`` but their
  pipeline (``compute_representation_measure.py``) computes CKA, Procrustes and SVCCA only, so the paper
  reports no PWCCA number;
- linear CKA with the unbiased HSIC estimator (Kornblith et al. 2019; Nguyen et al. 2021), orthogonal
  Procrustes (Ding et al. 2021).

A cell compares 20 restarts over 190 pairs, so what depends on one run only is computed once per run
by :func:`prepare` (one decomposition of X) and every pair reuses it; a pair then costs one product of
two prepared factors and the singular values of the result (no inverse square roots, no vectors
except PWCCA's weights). The ``*_distance`` functions are the same computation for one pair.
Arithmetic is float64 (representations are stored fp16).

One decomposition per run: with d ≥ n (BERT-large's 1,024 dims on ≤ 1,000 examples) the eigenvectors
of the n × n Gram matrix XXᵀ = UΣ²Uᵀ (which CKA needs anyway) give everything; they resolve every
singular value when σ_min ≥ 10⁻⁶ σ_max (then λ = σ² ≥ 10⁻¹² λ_max, far above eigh's error ε λ_max).
Otherwise (d < n, or a spectrum eigh cannot resolve) thin SVDs of X and of the centred X, as the
authors' code does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SVCCA_KEEP = 0.99  # anatome's (and the authors') accept_rate: keep the leading directions holding 99% of Σσ
_RANK_TOL = 1e-10  # singular values below this × the largest are rank deficiency (1/σ would overflow)
_RESOLVED = 1e-6  # σ/σ_max from eigh(XXᵀ) is trusted above this (see the module docstring)


@dataclass
class Prepared:
    """What the four distances need from one run's representation matrix."""

    gram_u: np.ndarray  # unbiased-centred Gram matrix (CKA), divided by its Frobenius norm
    op_factor: np.ndarray  # A with AᵀB having the singular values of X̂ᵀŶ (X̂ centred, ‖X̂‖_F = 1)
    svcca_basis: np.ndarray  # Q: orthonormal basis of the centred, SVD-reduced X (SVCCA)
    svcca_complement: np.ndarray | None  # W ⊥ Q, orthonormal, [Q W] spans every centred n-vector; None: not kept
    spans_everything: bool  # the centred X has rank n − 1: every canonical correlation with any Y is 1
    cca_basis: np.ndarray | None = None  # orthonormal basis of the centred column space (PWCCA); None if spans
    cca_offset: np.ndarray | None = None  # (1, k) row: the mean's coordinates μᵀVΣ⁻¹ (PWCCA on uncentred X)


def prepare(x: np.ndarray) -> Prepared:
    """Everything the four distances need from one run's X (n × d), from one decomposition of X when
    d ≥ n and the Gram resolves its spectrum, else from thin SVDs (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    gram = x @ x.T
    gram_u = _unbiased_gram(gram)
    if d >= n:
        u, s = _svd_by_gram(gram)
        if len(s) and s[0] > 0 and s[-1] >= _RESOLVED * s[0]:
            q, w = _svcca_bases(u, s)
            # every σ is resolved and nonzero: X has rank n, so its centred version rank n − 1 (the
            # centring removes one dimension; the n − 1 others interlace with σ_2..σ_n ≥ 10⁻⁶ σ_max)
            return Prepared(gram_u, _op_factor_full_rank(u, s), q, w, spans_everything=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    q, w = _svcca_bases(u, s)
    uc, sc, vtc = _centred_svd(x)
    norm = np.sqrt((sc**2).sum())
    op_factor = (uc * sc) / norm if norm > 0 else uc * sc  # X̂ = (UΣ/‖X‖)Vᵀ: X̂ᵀŶ ~ (UΣ)ᵀ(U'Σ') up to orthogonal factors
    offset = (x.mean(axis=0, keepdims=True) @ vtc.T) / sc
    return Prepared(gram_u, op_factor, q, w, spans_everything=uc.shape[1] >= n - 1, cca_basis=uc,
                    cca_offset=offset)


def _svd_by_gram(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """XXᵀ = UΛUᵀ (eigh, about 2.5× faster than an SVD of X): U (n × n, all of Rⁿ, descending) and
    σ = √λ, the singular values of X (n of them: call only with d ≥ n)."""
    lam, u = np.linalg.eigh(gram)
    return np.ascontiguousarray(u[:, ::-1]), np.sqrt(np.clip(lam[::-1], 0.0, None))


def _centred_svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of X − 1μᵀ = UΣVᵀ, keeping its numerical rank (σ > 10⁻¹⁰ σ_max)."""
    xc = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    keep = s > _RANK_TOL * (s[0] if len(s) else 0)
    return u[:, keep], s[keep], vt[keep]


def _unbiased_gram(gram: np.ndarray) -> np.ndarray:
    """K = XXᵀ centred by the unbiased HSIC estimator (Song et al. 2012), as Kornblith et al.'s
    ``center_gram(unbiased=True)`` and the authors' ``center_gram``: zero the diagonal, subtract
    the row means computed with 1/(n − 2) corrected by their total over 2(n − 1), zero the diagonal
    again; then scale to unit Frobenius norm, so ⟨K̃, L̃⟩ is the CKA. ``gram`` is left unchanged."""
    k = gram.copy()
    n = len(k)
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None] + means[None, :]
    np.fill_diagonal(k, 0.0)
    norm = np.linalg.norm(k)
    return k / norm if norm > 0 else k


def _op_factor_full_rank(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Procrustes factor from XXᵀ = UΣ²Uᵀ with U square (d ≥ n): A = H UΣ / ‖H UΣ‖_F, H = I − 11ᵀ/n, so
    AAᵀ = X̂X̂ᵀ and AᵀB has the singular values of X̂ᵀŶ. A has the null vector z = Σ⁻¹Uᵀ1 (HUΣz = H1 = 0);
    it is rotated out, leaving n × (n − 1), because an exact zero would come back from the pair's
    eigvalsh as √(ε‖·‖) ≈ 10⁻⁸, not 0 (the SVD route drops it by its rank tolerance instead)."""
    a = u * s
    a -= a.mean(axis=0, keepdims=True)  # H UΣ: centre each column
    a = _drop_direction(a, (u.sum(axis=0)) / s)
    norm = np.linalg.norm(a)
    return a / norm if norm > 0 else a


def _drop_direction(b: np.ndarray, v: np.ndarray) -> np.ndarray:
    """B restricted to the complement of the direction v (coordinates of B's columns): the last p − 1
    columns of BR, R = I − 2hhᵀ the Householder reflection with Rv̂ = ∓e₁. With B orthonormal this is an
    orthonormal basis of {Bz : z ⊥ v}; in general BR = B·(orthogonal), so (BR)ᵀ(·) keeps singular values."""
    vhat = v / np.linalg.norm(v)
    h = vhat.copy()
    h[0] += 1.0 if vhat[0] >= 0 else -1.0  # the sign that avoids cancellation
    h /= np.linalg.norm(h)
    return (b - 2.0 * np.outer(b @ h, h))[:, 1:]


def _svcca_rank(s: np.ndarray) -> int:
    """The authors' ``_svd_reduction`` rule on the uncentred singular values:
    r = #{i : Σ_{j≤i} σ_j / Σ_j σ_j ≤ 0.99}, at least 1."""
    total = np.abs(s).sum()
    return max(1, int((np.cumsum(np.abs(s)) / total <= SVCCA_KEEP).sum())) if total > 0 else 1


def _svcca_bases(u: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """SVCCA's reduction (the authors' ``_svd_reduction``): X = UΣVᵀ uncentred, keep r directions
    (:func:`_svcca_rank`), project X V_r = U_rΣ_r; the CCA step centres that projection. Returned: Q, an
    orthonormal basis of the centred projection H U_rΣ_r, and W (or None), of the centred directions ⊥ Q.

    No second SVD: span(H U_rΣ_r) = span(H U_r) and (H U_r)ᵀ(H U_r) = I − ccᵀ with c = U_rᵀ1/√n, so
    Q = H U_r (I − ccᵀ)^(−1/2) = H U_r + (1/√(1 − ‖c‖²) − 1)(H U_r ĉ)ĉᵀ. With U square (from the Gram),
    W is U_⊥ = U[:, r:] less its component along 1 (:func:`_drop_direction`). When 1 nearly lies in
    span(U_r) (‖(I − U_rU_rᵀ)1/√n‖ σ_r < 10⁻⁶ σ_max: the centred projection is near rank-deficient),
    the authors' SVD with its 10⁻¹⁰ rank tolerance decides instead."""
    n = len(u)
    r = _svcca_rank(s)
    e = np.full(n, 1.0 / np.sqrt(n))
    ur = u[:, :r]
    c = ur.T @ e
    square = u.shape[1] == n
    rest = u[:, r:].T @ e if square else e - ur @ c  # 1/√n outside span(U_r), without 1 − ‖c‖² cancelling
    d2 = float(rest @ rest)
    if np.sqrt(d2) * s[r - 1] < _RESOLVED * s[0]:
        return _svcca_bases_by_svd(ur * s[:r])
    hu = ur - np.outer(e, c)
    cn = np.linalg.norm(c)
    q = hu + (1.0 / np.sqrt(d2) - 1.0) * np.outer(hu @ (c / cn), c / cn) if cn > 0 else hu
    # the complement pays off only when it is the smaller side (:func:`svcca_pair`)
    w = _drop_direction(u[:, r:], rest) if square and n - 1 - r < r else None
    return q, w


def _svcca_bases_by_svd(reduced: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Q from the SVD of the centred reduced matrix, dropping σ < 10⁻¹⁰ σ_max (the authors' route);
    W: the rest of its full U (it also holds 1/√n, harmless: Q_xᵀ1 = 0 for every run)."""
    reduced = reduced - reduced.mean(axis=0, keepdims=True)
    n, r = reduced.shape
    full = n - r < r  # the complement is only kept when smaller than the basis
    ub, sb, _ = np.linalg.svd(reduced, full_matrices=full)
    k = int((sb > _RANK_TOL * (sb[0] if len(sb) else 0)).sum())
    return ub[:, :k], (ub[:, k:] if full else None)


def _svals(m: np.ndarray) -> np.ndarray:
    """Singular values of a small matrix, via the eigenvalues of its Gram on the smaller side
    (cheaper than an SVD; clipped at 0 against rounding)."""
    return np.sqrt(_sq_svals(m))


def _sq_svals(m: np.ndarray) -> np.ndarray:
    """Squared singular values: eigvalsh of MᵀM or MMᵀ, whichever is smaller, clipped at 0."""
    g = m.T @ m if m.shape[1] <= m.shape[0] else m @ m.T
    return np.clip(np.linalg.eigvalsh(g), 0.0, None)


def _span_everything(qa: np.ndarray, qb: np.ndarray) -> bool:
    """Both bases span the whole (n − 1)-dimensional space of centred n-vectors: then Q_AᵀQ_B is
    orthogonal and every canonical correlation is exactly 1, so (PW/SV)CCA distance is 0 with no
    decomposition. This is CCA's known degeneracy with at least as many dimensions as examples − 1."""
    n = len(qa)
    return qa.shape[1] >= n - 1 and qb.shape[1] >= n - 1


def cka_pair(a: Prepared, b: Prepared) -> float:
    """d_CKA = 1 − ⟨K̃, L̃⟩_F / (‖K̃‖_F ‖L̃‖_F), K̃, L̃ the unbiased-centred linear Gram matrices of X
    and Y (see :func:`_unbiased_gram`): the authors' ``unbiased_linear_cka_dist``."""
    return float(1.0 - np.vdot(a.gram_u, b.gram_u))


def procrustes_pair(a: Prepared, b: Prepared) -> float:
    """d_OP = 1 − ‖X̂ᵀŶ‖_*, X̂ = (X − 1μ_Xᵀ)/‖X − 1μ_Xᵀ‖_F (same for Y), ‖·‖_* the nuclear norm (sum of
    singular values): the authors' ``op_dist``. Ding et al. (2021) write the squared Procrustes distance
    min_Q ‖X̂ − ŶQ‖²_F = 2 − 2‖X̂ᵀŶ‖_*; the authors use half of it, in [0, 1]; so does this.
    With AAᵀ = X̂X̂ᵀ and BBᵀ = ŶŶᵀ (:class:`Prepared`), ‖X̂ᵀŶ‖_* = ‖AᵀB‖_*, a k × k product (k ≤ n − 1)."""
    return float(1.0 - _svals(a.op_factor.T @ b.op_factor).sum())


def svcca_pair(a: Prepared, b: Prepared) -> float:
    """d_SVCCA = 1 − (1/min(r_X, r_Y)) Σ_i ρ_i, ρ_i the canonical correlations of the SVD-reduced X and Y
    (:func:`_svcca_bases`): the singular values of Q_XᵀQ_Y for orthonormal bases Q of the centred,
    reduced matrices (the authors' ``svcca_dist`` / ``cca_by_svd``).

    With r_X ≤ r_Y (swap otherwise) and W_Y the centred directions ⊥ Q_Y, Q_Y Q_Yᵀ + W_Y W_Yᵀ is the
    identity on centred vectors, so Q_XᵀQ_YQ_YᵀQ_X = I − CᵀC with C = W_YᵀQ_X: ρ_i² = 1 − s_i² for the
    singular values s_i of C and ρ = 1 for the other r_X − #s. C has n − 1 − r_Y rows instead of
    r_Y, so when SVCCA keeps most directions (r ≈ 0.9 n) a pair costs a tenth."""
    if a.svcca_basis.shape[1] > b.svcca_basis.shape[1]:
        a, b = b, a
    qa, qb = a.svcca_basis, b.svcca_basis
    r = qa.shape[1]
    if _span_everything(qa, qb):
        return 0.0
    wb = b.svcca_complement
    if wb is not None and wb.shape[1] < qb.shape[1]:
        s2 = _sq_svals(wb.T @ qa)
        total = np.sqrt(np.clip(1.0 - s2, 0.0, None)).sum() + (r - len(s2))
    else:
        total = _svals(qa.T @ qb).sum()
    return float(1.0 - total / r)


def pwcca_pair(a: Prepared, b: Prepared) -> float:
    """d_PWCCA = 1 − Σ_i α_i ρ_i (the authors' ``pwcca_dist``, after Morcos et al. 2018).

    CCA by SVD: X − 1μᵀ = U_XΣ_XV_Xᵀ, U_XᵀU_Y = P diag(ρ) Qᵀ; X's canonical weights a = V_XΣ_X⁻¹P, and
    α_i ∝ Σ_k |(X a)_{ki}| (the canonical variates of the *uncentred* X, summed in absolute value over
    examples), normalised to Σα = 1. Morcos et al. weight by Σ_j |⟨h_i, x_j⟩| over neurons instead;
    the authors' code (followed here) sums over examples. Directions with σ < 1e-10 σ_max are dropped.
    Invariant to invertible linear maps of X or Y (the ρ_i are, and so are X's variates); because the
    weights use the uncentred X, not to a translation of X.

    When either centred matrix has rank n − 1 its span holds the other's, every ρ_i = 1 and the distance
    is 0 whatever the weights (Σα = 1). Where k_X + k_Y > n − 1 some ρ_i = 1 have multiplicity and
    their weights depend on the basis the eigensolver picks within that eigenspace (as in the authors'
    code); only their sum of ρ_i is determined.
    """
    if a.spans_everything or b.spans_everything:
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
