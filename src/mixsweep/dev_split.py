"""The fixed split of a dev set into a val half and a test half (the ``zhang2021`` selection protocol).

Zhang et al. (2021) choose each run's checkpoint on one half of the dev set and report the other
half; their code (revisit-bert-finetuning ``run_glue.py``, ``--test_val_split``) splits dev per
distinct label value with ``RandomState(1)``, putting the first ⌊n/2⌋ of each shuffled group in val.
Here the order is a function of the dev set alone, so every run, seed and study sees the same halves:

- order the dev examples of each class by ``sha256(str(i))``, i being the example's position in the
  dev set (0-based), and put the first ⌊n_c / 2⌋ of class c in **val** and the rest in **test**
  (stratified: both halves keep the class proportions; test gets the odd example of an odd class);
- a regression task (STS-B) is stratified the same way, per distinct gold score, as the reference
  does (its label is the float score): a score seen once goes to test, so test is the larger half.

Positions, not texts, are hashed: duplicate texts stay apart and nothing depends on tokenization.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _position_key(i: int) -> str:
    return hashlib.sha256(str(i).encode("ascii")).hexdigest()


def dev_halves(labels: np.ndarray, stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sorted dev positions of the val half and of the test half (see the module docstring)."""
    labels = np.asarray(labels)
    strata = labels if stratify else np.zeros(len(labels), dtype=int)
    val: list[int] = []
    test: list[int] = []
    for value in np.unique(strata):
        members = sorted(np.flatnonzero(strata == value).tolist(), key=_position_key)
        half = len(members) // 2
        val += members[:half]
        test += members[half:]
    return np.array(sorted(val), dtype=int), np.array(sorted(test), dtype=int)
