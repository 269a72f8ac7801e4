"""Run ids of stored runs survive refactors that do not change what a run computes.

The expected ids were computed by the code at commit 49721f1 (before the run-config schema made null the
one "off" of ``train.eval_every``): a store written then must still be found, not run again.
"""

import pytest

from mixsweep.store.runid import run_id
from mixsweep.sweeping.compose import compose_run


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], "41d639619b0a"),
    (["task=rte", "model=bert_large", "regularizer=mixout", "seed=3"], "ddb9ba8dbb5d"),
    (["task=rte", "regularizer=devlin", "optimizer=adamw", "seed=0"], "5dd7dd9f7b38"),
    (["task=rt_polarity", "model=minilm_l6", "regularizer=dropout", "train.evals_per_epoch=3", "seed=1"],
     "98597d59a305"),
])
def test_ids_of_runs_stored_before_the_schema_are_unchanged(overrides, expected):
    assert run_id(compose_run(overrides)) == expected


def test_an_explicit_eval_interval_is_still_part_of_the_id():
    assert run_id(compose_run(["train.eval_every=10"])) != run_id(compose_run([]))
