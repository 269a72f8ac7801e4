"""Fleiss' κ both ways (textbook, and the authors' notebook), the exact one-class test, and the
ensemble's tie rule (#32, items 11 and 15)."""

from __future__ import annotations

import numpy as np
import pytest

from mixsweep.instability import (
    cell_measures,
    ensemble_predictions,
    fleiss_kappa,
    fleiss_kappa_authors,
    pairwise_disagreement,
)


def authors_fleiss_kappa(logits_list):
    """Port of ``fleiss_kappa`` in nlpsoc/instability_measurement, ``analyze_measures.ipynb`` (cell 1),
    line for line (numpy, two classes), as the reference side of the differential test."""
    pred_lists = np.stack([logits.argmax(axis=-1) for logits in logits_list]).T  # num_subjects, num_judges
    num_subjects, num_judges = pred_lists.shape
    pred_ones = np.sum(pred_lists == 1, axis=-1)
    pred_zeros = np.sum(pred_lists == 0, axis=-1)
    agreement_matrix = np.stack((pred_zeros, pred_ones))  # num_subjects, num_labels

    p_i = (pred_ones * pred_ones + pred_zeros * pred_zeros - num_judges) / (num_judges * (num_judges - 1))
    p_a = np.mean(p_i)
    q_j = np.sum(agreement_matrix, axis=0) / (num_judges * num_subjects)
    p_eps = np.sum(q_j * q_j)

    kappa = (p_a - p_eps) / (1 - p_eps)
    return float(kappa)


def _logits(labels: np.ndarray) -> list[np.ndarray]:
    """Each run's (n, 2) logits whose argmax is its label row (what the authors' function reads)."""
    return [np.eye(2)[row] * 3.0 - 1.0 for row in labels]


SMALL = [
    np.array([[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]]),
    np.array([[0, 1, 0, 1], [1, 0, 1, 0]]),
    np.array([[1, 1, 1, 0, 0], [1, 0, 1, 0, 1], [0, 0, 1, 1, 1], [1, 1, 1, 1, 0]]),
]


@pytest.mark.parametrize("labels", SMALL + [np.random.default_rng(s).integers(0, 2, (m, n))
                                            for s, (m, n) in enumerate([(10, 7), (20, 50), (3, 2), (5, 277)])])
def test_authors_variant_equals_their_notebook_and_the_pwd_identity(labels):
    m, n = labels.shape
    assert fleiss_kappa_authors(labels, 2) == pytest.approx(authors_fleiss_kappa(_logits(labels)), abs=1e-12)
    # I_κ(authors) = n/(n − 1) · I_pwd, n the number of examples
    assert 1 - fleiss_kappa_authors(labels, 2) == pytest.approx(n / (n - 1) * pairwise_disagreement(labels),
                                                                 abs=1e-12)


def test_authors_variant_by_hand_and_beside_the_textbook():
    # SMALL[0]: m = 3, n = 4; P̄ = 2/3 (test_instability_measures), the authors' P_e = 1/n = 1/4:
    # κ_a = (2/3 − 1/4)/(3/4) = 5/9, against the textbook 11/35
    assert fleiss_kappa_authors(SMALL[0]) == pytest.approx(5 / 9)
    assert fleiss_kappa(SMALL[0]) == pytest.approx(11 / 35)
    # balanced binary labels, independent runs: textbook I_κ ≈ 1, the authors' ≈ 1/2 (≈ I_pwd): about 2×
    y = np.random.default_rng(0).integers(0, 2, (10, 2000))
    textbook, authors = 1 - fleiss_kappa(y, 2), 1 - fleiss_kappa_authors(y, 2)
    assert textbook == pytest.approx(1.0, abs=0.02) and authors == pytest.approx(0.5, abs=0.02)
    out = cell_measures(np.arange(10.0), labels=y, num_classes=2)
    assert out.values["kappa"].value == pytest.approx(textbook)
    assert out.values["kappa_authors"].value == pytest.approx(authors)


def test_textbook_kappa_with_one_differing_label_in_two_hundred_thousand():
    # m = 20 runs, n = 10⁴ examples, one prediction of class 1 among N = nm = 2·10⁵.
    # P̄ = 1 − (1 − (19² + 1² − 20)/(20·19))/n = 1 − 0.1/n = 1 − 2/N; p_1 = 1/N → P_e = 1 − 2/N + 2/N²
    # κ = (P̄ − P_e)/(1 − P_e) = (−2/N²) / (2(N − 1)/N²) = −1/(N − 1): chance level, not perfect agreement
    y = np.zeros((20, 10_000), dtype=int)
    y[3, 17] = 1
    assert fleiss_kappa(y, 2) == pytest.approx(-1 / 199_999, rel=1e-6)
    assert fleiss_kappa(np.zeros((20, 10_000), dtype=int), 2) == 1.0  # one class everywhere: agreement


def test_ensemble_ties_go_to_the_soft_vote_then_at_random():
    # two runs, three examples; every vote is 1–1. Mean probabilities decide: class 1, class 0, class 0
    labels = np.array([[0, 0, 1], [1, 1, 0]])
    probs = np.array([[[0.6, 0.4], [0.9, 0.1], [0.45, 0.55]],
                      [[0.2, 0.8], [0.4, 0.6], [0.7, 0.3]]])
    # means: (0.4, 0.6), (0.65, 0.35), (0.575, 0.425)
    assert ensemble_predictions(labels, False, 2, probs=probs).tolist() == [1, 0, 0]
    # a clear majority is kept whatever the probabilities
    assert ensemble_predictions(np.array([[1], [1], [0]]), False, 2, probs=np.array([[[1.0, 0.0]]] * 3)
                                ).tolist() == [1]
    # without probabilities, 2000 tied votes split about evenly (binomial SD ≈ 22), reproducibly
    tied = np.array([[0] * 2000, [1] * 2000])
    ens = ensemble_predictions(tied, False, 2)
    assert 900 < ens.sum() < 1100
    assert (ensemble_predictions(tied, False, 2) == ens).all()
    # three-way tie among classes 0, 1, 2 (class 3 absent): each about a third, never class 3
    three = np.array([[0] * 3000, [1] * 3000, [2] * 3000])
    counts = np.bincount(ensemble_predictions(three, False, 4), minlength=4)
    assert counts[3] == 0 and (np.abs(counts[:3] - 1000) < 100).all()
