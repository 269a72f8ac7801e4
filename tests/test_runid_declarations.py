"""The run id's exclusions come from the settings' declarations (``schema.Key.in_run_id``,
``null_hashed_as``, ``omitted_when_off``): the lists below are the ones ``runid.py`` kept by hand
before (commit 87583c2), typed from it, so a declaration that drifts fails here before it moves ids."""

from __future__ import annotations

from mixsweep.store import runid
from mixsweep.store.runid import run_id, semantic_config


def test_the_declared_exclusions_are_the_hand_kept_lists_of_before():
    assert set(runid._EXCLUDED_TOP) == {"hydra", "paths", "sweep", "cell", "device", "threads", "progress", "record",
                                        "tracking"}
    assert set(runid._EXCLUDED_NESTED) == {("regularizer", "name"), ("train", "eval_batch_size"),
                                           ("data", "cache_dir"), ("data", "glue_dir"), ("data", "hub_cache_dir")}
    assert runid._HASHED_AS_BEFORE == {("train", "eval_every"): 0}
    # evals_per_run joined when its default (null) was declared and so entered every composed config: the runs
    # from before held no such key, so it is left out of the hash while off, as the two flags are
    assert runid._OMITTED_AT_DEFAULT == {("train", "eval_at_start"): False, ("train", "eval_at_epoch_end"): False,
                                         ("train", "evals_per_run"): False}


def _cfg(**train):
    return {"seed": 0, "sweep": "a", "cell": "b", "threads": 2, "paths": {"results": "r"},
            "train": {"epochs": 3, "eval_batch_size": 64, "eval_every": None, **train},
            "data": {"max_length": 128, "cache_dir": "/tmp/x"}, "regularizer": {"name": "none"}}


def test_excluded_keys_do_not_change_the_id_and_hashed_ones_do():
    base = run_id(_cfg())
    moved = _cfg()
    moved.update(sweep="other", cell="c", threads=8, paths={"results": "elsewhere"})
    moved["train"]["eval_batch_size"] = 8
    moved["data"]["cache_dir"] = None
    assert run_id(moved) == base
    assert run_id(_cfg(epochs=4)) != base
    # null eval_every hashes as the 0 it was written before; eval_at_start off is as if absent
    assert semantic_config(_cfg())["train"]["eval_every"] == 0
    assert run_id(_cfg(eval_at_start=False)) == base and run_id(_cfg(eval_at_start=True)) != base
    assert run_id(_cfg(evals_per_run=None)) == base and run_id(_cfg(evals_per_run=16)) != base
