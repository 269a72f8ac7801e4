"""The fixed split of a dev set into a val half and a test half (the ``zhang2021`` selection protocol).

Zhang et al. (2021) choose each run's checkpoint on one half of the dev set and report the other
half. Their code (revisit-bert-finetuning ``run_glue.py``, ``train``, ``--test_val_split``) is the
specification, and these are its halves:

- group the dev positions by label value (a class; on STS-B each distinct float score, as the
  reference groups by ``sample[-1].item()``), each group in dev order;
- shuffle each group with a fresh ``np.random.RandomState(1)`` (the same seed for every group);
- put the first ⌊n_g / 2⌋ of the shuffled group in **val** and the rest in **test** (stratified: both
  halves keep the class proportions; test gets the odd example of an odd group, and a score seen
  once goes to test).

The halves depend on the dev labels alone, so every run, seed and study of one dev set shares them.
Runs recorded before #32 ordered each group by ``sha256(str(position))`` instead: their records were
scored on those halves (their ``outputs.npz`` holds them, ``val_half`` / ``test_half``). A run records
the rule of its halves as ``extra.dev_halves`` (:data:`HALVES_RULE`); the analysis refuses a zhang2021
selection over a cell whose runs do not all carry the same one.
"""

from __future__ import annotations

import numpy as np

REFERENCE_SEED = 1  # run_glue.py: state = np.random.RandomState(1), once per label value
# What a run records (extra.dev_halves) for halves made by this rule; records without it were written
# before the rule was recorded, most with the earlier sha256 halves, so they are not mixed with these.
HALVES_RULE = "run_glue_randomstate1"


def dev_halves(labels: np.ndarray, stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sorted dev positions of the val half and of the test half (see the module docstring).
    ``stratify=False`` treats the whole dev set as one group."""
    labels = np.asarray(labels)
    strata = labels if stratify else np.zeros(len(labels), dtype=int)
    val: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for value in np.unique(strata):  # the groups' order does not matter: each has its own fresh generator
        members = np.flatnonzero(strata == value)  # in dev order, as the reference's class2idx lists
        np.random.RandomState(REFERENCE_SEED).shuffle(members)
        half = len(members) // 2
        val.append(members[:half])
        test.append(members[half:])
    return (np.sort(np.concatenate(val)).astype(int) if val else np.array([], dtype=int),
            np.sort(np.concatenate(test)).astype(int) if test else np.array([], dtype=int))
