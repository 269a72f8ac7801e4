"""Stratified, seeded subsampling for few-sample studies (``data.train_size`` / ``data.dev_size``)."""

from __future__ import annotations

import numpy as np

REGRESSION_STRATA = 5  # score quantile bins that stand in for classes


def stratified_indices(
    labels: np.ndarray, size: int, seed: int, stream: int, regression: bool = False
) -> np.ndarray:
    """Sorted row indices of a sample of ``size`` rows that keeps the class proportions.

    Class k with n_k of the N rows gets floor(size * n_k / N) rows, and the rows still missing
    go to the classes with the largest remainders (ties: lower class first), so every count
    is within one row of its exact share. Rows within a class are drawn without replacement
    from ``numpy.random.default_rng([seed, stream])``; ``stream`` separates train from dev so
    the two samples are independent. Regression scores are stratified by rank into
    ``REGRESSION_STRATA`` equal-size bins.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 < size <= n:
        raise ValueError(f"sample size {size} must be in 1..{n}")
    strata = _score_bins(labels) if regression else labels
    _, inverse = np.unique(strata, return_inverse=True)
    counts = np.bincount(inverse)
    shares = size * counts / n
    quota = np.floor(shares).astype(int)
    leftover = size - quota.sum()
    by_remainder = np.argsort(-(shares - quota), kind="stable")
    quota[by_remainder[:leftover]] += 1
    rng = np.random.default_rng([seed, stream])
    picked = [rng.choice(np.flatnonzero(inverse == k), size=q, replace=False) for k, q in enumerate(quota)]
    return np.sort(np.concatenate(picked))


def _score_bins(scores: np.ndarray) -> np.ndarray:
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable")
    return ranks * REGRESSION_STRATA // len(scores)
