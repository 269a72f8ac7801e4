"""Prediction-level instability of m restarts on the same n examples (Du & Nguyen 2023, §3).

``labels`` is an (m, n) integer matrix (run i's predicted class of example k), ``probs`` an (m, n, K)
array of class probabilities. Each formula follows the authors' ``analyze_measures.ipynb``.
"""

from __future__ import annotations

import numpy as np


def score_sd(scores: np.ndarray) -> float:
    """SD = sqrt((1/m) Σ_i (s_i − s̄)²): the population standard deviation (ddof 0) of the runs'
    scores, as the authors' ``np.std`` and the paper's tables. NaN scores are left out."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    return float(np.std(s)) if len(s) else float("nan")


def disagreement_matrix(labels: np.ndarray) -> np.ndarray:
    """D[i, j] = (1/n) Σ_k 1[ŷ_ik ≠ ŷ_jk]: the share of examples on which runs i and j disagree."""
    y = np.asarray(labels)
    m, n = y.shape
    d = np.zeros((m, m))
    for i in range(m):
        d[i] = (y != y[i]).mean(axis=1) if n else np.nan
    return d


def pairwise_disagreement(labels: np.ndarray) -> float:
    """I_pwd = (2 / (m(m−1))) Σ_{i<j} D[i, j], the mean of :func:`disagreement_matrix` over all pairs of
    restarts (the authors' ``avg_disagreement`` averaged over pairs)."""
    d = disagreement_matrix(labels)
    iu = np.triu_indices(len(d), k=1)
    return float(d[iu].mean()) if len(iu[0]) else float("nan")


def fleiss_kappa(labels: np.ndarray, num_classes: int | None = None) -> float:
    """Fleiss' κ of m "raters" (the runs) labelling n "subjects" (the examples) into K classes.

    With n_kc = #runs predicting class c for example k::

        P_k  = (Σ_c n_kc² − m) / (m (m − 1))      agreement on example k
        P̄    = (1/n) Σ_k P_k
        p_c  = Σ_k n_kc / (n m)                   share of class c over all predictions
        P_e  = Σ_c p_c²
        κ    = (P̄ − P_e) / (1 − P_e)

    The paper reports the instability I_κ = 1 − κ. The authors' code is written for two classes; this
    is the same formula for any K. Open case (0/0, the authors' code returns NaN): when every run
    predicts one and the same class everywhere, P̄ = P_e = 1 and the runs agree perfectly, so κ = 1.
    """
    y = np.asarray(labels, dtype=int)
    m, n = y.shape
    if m < 2 or n == 0:
        return float("nan")
    k = int(num_classes or (y.max() + 1))
    counts = np.stack([(y == c).sum(axis=0) for c in range(k)], axis=1)  # (n, K)
    p_k = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_bar = p_k.mean()
    p_c = counts.sum(axis=0) / (n * m)
    p_e = float((p_c**2).sum())
    if np.isclose(p_e, 1.0):
        return 1.0
    return float((p_bar - p_e) / (1 - p_e))


def jsd_matrix(probs: np.ndarray) -> np.ndarray:
    """J[i, j] = (1/n) Σ_k JSD(p_ik, p_jk) with JSD(p, q) = ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2, natural
    log (the authors' ``jsd``, averaged over examples). Probabilities are clipped at 1e-12 before the
    log so that an fp16-stored 0 gives 0·log 0 = 0 instead of NaN."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    m_runs = len(p)
    logp = np.log(p)
    out = np.zeros((m_runs, m_runs))
    for i in range(m_runs):
        for j in range(i + 1, m_runs):
            mid = (p[i] + p[j]) / 2
            logm = np.log(mid)
            kl_p = (p[i] * (logp[i] - logm)).sum(-1)
            kl_q = (p[j] * (logp[j] - logm)).sum(-1)
            out[i, j] = out[j, i] = float(((kl_p + kl_q) / 2).mean())
    return out


def ensemble_predictions(labels_or_scores: np.ndarray, regression: bool, num_classes: int | None = None) -> np.ndarray:
    """The cell's ensemble of restarts: per example the majority vote of the runs' labels (ties go to the
    smallest class index, a fixed rule) or, for regression, the mean of their scores."""
    x = np.asarray(labels_or_scores)
    if regression:
        return x.astype(np.float64).mean(axis=0)
    k = int(num_classes or (x.max() + 1))
    counts = np.stack([(x == c).sum(axis=0) for c in range(k)], axis=0)  # (K, n)
    return counts.argmax(axis=0)
