"""Stratified, seeded subsampling of train and dev."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixsweep.data import load_splits
from mixsweep.data.subsample import stratified_indices
from mixsweep.data.tasks import get_task

GLUE = Path(__file__).parent / "fixtures" / "glue"
LABELS = np.array([0] * 30 + [1] * 70)


def test_class_proportions_are_kept():
    picked = stratified_indices(LABELS, 10, seed=0, stream=0)
    assert len(picked) == 10 and len(set(picked)) == 10
    assert np.bincount(LABELS[picked]).tolist() == [3, 7]


def test_largest_remainders_fill_the_sample():
    # shares 7 * (0.5, 0.3, 0.2) = 3.5, 2.1, 1.4 -> floors 3, 2, 1 and the spare row goes to class 0
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    assert np.bincount(labels[stratified_indices(labels, 7, seed=1, stream=0)]).tolist() == [4, 2, 1]


def test_same_seed_same_sample_and_other_seeds_differ():
    first = stratified_indices(LABELS, 20, seed=5, stream=0)
    assert np.array_equal(first, stratified_indices(LABELS, 20, seed=5, stream=0))
    assert not np.array_equal(first, stratified_indices(LABELS, 20, seed=6, stream=0))
    assert not np.array_equal(first, stratified_indices(LABELS, 20, seed=5, stream=1))


def test_full_size_returns_every_row_in_order():
    assert np.array_equal(stratified_indices(LABELS, 100, seed=0, stream=0), np.arange(100))


def test_regression_scores_are_stratified_by_quantile():
    scores = np.linspace(0.0, 5.0, 100)
    picked = stratified_indices(scores, 10, seed=0, stream=0, regression=True)
    # five equal-rank bins of 20 scores, two draws from each
    assert np.bincount(picked // 20).tolist() == [2, 2, 2, 2, 2]


def test_load_splits_subsamples_train_and_dev_reproducibly():
    cfg = {"source": "glue_dir", "glue_dir": str(GLUE), "train_size": 8, "dev_size": 4, "sample_seed": 3}
    first = load_splits(get_task("rte"), cfg)
    again = load_splits(get_task("rte"), cfg)
    assert len(first["train"]) == 8 and len(first["dev"]) == 4
    assert first["train"]["label"].value_counts().to_dict() == {0: 4, 1: 4}
    assert first["train"].equals(again["train"]) and first["dev"].equals(again["dev"])
    assert first["train"].attrs["full_size"] == 16
    other = load_splits(get_task("rte"), cfg | {"sample_seed": 4})
    assert not other["train"].equals(first["train"])
