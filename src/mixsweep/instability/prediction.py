"""Prediction-level instability of m restarts on the same n examples (Du & Nguyen 2023, §3).

``labels`` is an (m, n) integer matrix (run i's predicted class of example k), ``probs`` an (m, n, K)
array of class probabilities. SD, pairwise disagreement and JSD follow the authors' ``analyze_measures.ipynb``;
Fleiss' κ is given both ways: textbook (:func:`fleiss_kappa`) and as their notebook computes it
(:func:`fleiss_kappa_authors`).
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


def _class_counts(y: np.ndarray, k: int) -> np.ndarray:
    """n_kc = #runs predicting class c for example k: an (n, K) integer matrix."""
    return np.stack([(y == c).sum(axis=0) for c in range(k)], axis=1)


def _observed_agreement(counts: np.ndarray, m: int) -> float:
    """P̄ = (1/n) Σ_k P_k, P_k = (Σ_c n_kc² − m) / (m (m − 1)): the share of agreeing pairs of runs on
    example k, averaged over examples (so 1 − P̄ = I_pwd, the mean over pairs of their disagreement)."""
    return float((((counts**2).sum(axis=1) - m) / (m * (m - 1))).mean())


def fleiss_kappa(labels: np.ndarray, num_classes: int | None = None) -> float:
    """Fleiss' κ, **textbook** (Fleiss 1971), of m "raters" (the runs) labelling n "subjects" (the
    examples) into K classes. With n_kc = #runs predicting class c for example k::

        P_k  = (Σ_c n_kc² − m) / (m (m − 1))      agreement on example k
        P̄    = (1/n) Σ_k P_k
        p_c  = Σ_k n_kc / (n m)                   share of class c over all predictions
        P_e  = Σ_c p_c²                           chance agreement
        κ    = (P̄ − P_e) / (1 − P_e)

    This is *not* the number in Du & Nguyen's tables: their notebook's chance agreement is 1/n
    (:func:`fleiss_kappa_authors`). The instability is I_κ = 1 − κ. Open case (0/0, the authors' code
    returns NaN): only when every prediction of every run is one and the same class is P̄ = P_e = 1
    exactly (the runs agree perfectly), and then κ = 1. The test is on the integer counts, not on a
    rounded P_e: one differing label in 2·10⁵ predictions makes P_e = 1 − 10⁻⁵, which ``np.isclose``
    would call 1, yet κ is then −1/(nm − 1), chance level.
    """
    y = np.asarray(labels, dtype=int)
    m, n = y.shape
    if m < 2 or n == 0:
        return float("nan")
    k = int(num_classes or (y.max() + 1))
    counts = _class_counts(y, k)
    totals = counts.sum(axis=0)  # predictions per class over all runs and examples
    if (totals == n * m).any():  # one class everywhere: P̄ = P_e = 1
        return 1.0
    p_bar = _observed_agreement(counts, m)
    p_c = totals / (n * m)
    p_e = float((p_c**2).sum())
    return float((p_bar - p_e) / (1 - p_e))


def fleiss_kappa_authors(labels: np.ndarray, num_classes: int | None = None) -> float:
    """κ as Du & Nguyen's notebook computes it (``analyze_measures.ipynb``, ``fleiss_kappa``), so that a
    number can be set beside their tables. Their P̄ is the textbook one; their chance agreement is not:
    they sum the (2 × n) matrix of class counts over its class axis, which gives m for every example,
    so q_k = m/(nm) = 1/n for each of the n examples and P_e = Σ_k q_k² = 1/n. Hence::

        κ_authors = (P̄ − 1/n) / (1 − 1/n),    I_κ(authors) = 1 − κ_authors = n/(n − 1) · (1 − P̄)
                                                              = n/(n − 1) · I_pwd

    (1 − P̄ is the mean over pairs of runs of their disagreement, :func:`pairwise_disagreement`), with n
    the number of *examples*. Their code counts classes 0 and 1 only; this is the same P̄ for any K.
    NaN for fewer than 2 runs or 2 examples."""
    y = np.asarray(labels, dtype=int)
    m, n = y.shape
    if m < 2 or n < 2:
        return float("nan")
    p_bar = _observed_agreement(_class_counts(y, int(num_classes or (y.max() + 1))), m)
    return float((p_bar - 1 / n) / (1 - 1 / n))


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


def ensemble_predictions(labels_or_scores: np.ndarray, regression: bool, num_classes: int | None = None,
                         probs: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The cell's ensemble of restarts: per example the majority vote of the runs' labels or, for
    regression, the mean of their scores.

    A tied vote goes to the tied class with the largest mean probability over the runs (``probs``,
    (m, n, K): the soft vote decides between the hard vote's winners); a tie that remains (no
    probabilities, or equal means) is broken uniformly at random among the tied classes by a generator
    seeded with ``seed``, so that no class is favoured (a fixed "smallest index" rule would hand every
    5–5 vote of ten restarts to class 0) and the result is reproducible."""
    x = np.asarray(labels_or_scores)
    if regression:
        return x.astype(np.float64).mean(axis=0)
    k = int(num_classes or (x.max() + 1))
    counts = np.stack([(x == c).sum(axis=0) for c in range(k)], axis=1).astype(np.float64)  # (n, K)
    tied = counts == counts.max(axis=1, keepdims=True)
    score = np.where(tied, 0.0, -np.inf)
    if probs is not None:
        score = np.where(tied, np.asarray(probs, dtype=np.float64).mean(axis=0)[:, :k], -np.inf)
    best = score == score.max(axis=1, keepdims=True)
    # uniform among what is still tied: the largest of i.i.d. uniform keys over the remaining classes
    keys = np.random.default_rng(seed).random(best.shape)
    return np.where(best, keys, -1.0).argmax(axis=1)
