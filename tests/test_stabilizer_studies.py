"""The stabilizer studies compose and validate, the Mosbach preset, and every stabilizer (alone and
with mixout) through the runner end to end on the tiny model."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import tiny_overrides
from mixsweep.regularizers.base import build_methods
from mixsweep.runid import semantic_config
from mixsweep.sweeping.compose import compose_run

STUDIES = {"stabilizers": ["rte", "mrpc", "cola", "stsb"], "stabilizers_smoke": ["rt_polarity"]}
STABILIZERS = {
    "reinit": ["+regularizer.reinit.k=1"],
    "llrd": ["+regularizer.llrd.xi=0.8"],
    "recadam": ["+regularizer.recadam.t0=1"],
    "child_tuning": ["+regularizer.child_tuning.p_f=0.5"],
    "noisytune": ["+regularizer.noisytune.lam=0.15"],
    "r3f": ["+regularizer.r3f.eps=1.0e-3"],
}


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_every_cell_of_the_stabilizer_studies_composes_validates_and_differs(study):
    base = compose_run([f"+sweeps={study}"], hydra=True)
    cells = base.hydra.sweeper.cells
    assert len(cells) == 11
    for task in STUDIES[study]:
        seen = {}
        for name, overrides in cells.items():
            cfg = compose_run([f"+sweeps={study}", f"task={task}", *overrides])
            build_methods(OmegaConf.to_container(cfg.regularizer, resolve=True))  # raises on a bad value
            seen[name] = repr(semantic_config(cfg))
        assert len(set(seen.values())) == len(cells), "two cells are the same experiment"


def test_mosbach_recipe_preset():
    cfg = compose_run(["+sweeps=stabilizers", "task=rte", "+recipe=mosbach2021"])
    assert cfg.optimizer.name == "adamw" and cfg.optimizer.lr == 2e-5
    assert (cfg.train.epochs, cfg.train.warmup_ratio, cfg.train.evals_per_epoch) == (20, 0.1, 3)


@pytest.fixture(scope="module")
def run_tiny(tmp_path_factory):
    from mixsweep.train import run

    base = tiny_overrides(tmp_path_factory.mktemp("stab"))
    return lambda *overrides: run(compose_run([*base, "train.max_steps=3", *overrides]))


@pytest.mark.parametrize("method", sorted(STABILIZERS))
@pytest.mark.parametrize("with_mixout", [False, True], ids=["devlin", "mixout"])
def test_each_stabilizer_trains_end_to_end(run_tiny, method, with_mixout):
    reg = ["regularizer=mixout", "regularizer.mixout.p=0.5"] if with_mixout else ["regularizer=devlin"]
    out = run_tiny(*reg, *STABILIZERS[method])
    assert out["status"] == "ok" and out["final"]


def test_r3f_trains_a_regression_task(run_tiny):
    out = run_tiny("task=stsb", "regularizer=devlin", *STABILIZERS["r3f"])
    assert out["status"] == "ok" and out["final"]


def test_evals_per_epoch_sets_the_number_of_dev_evaluations(run_tiny):
    # The RTE fixture has 16 training examples: 2 steps of 8 in the one epoch.
    out = run_tiny("regularizer=none", "train.max_steps=null", "train.evals_per_epoch=2")
    assert [e["step"] for e in out["eval_curve"]] == [1, 2]
    out = run_tiny("regularizer=none", "train.max_steps=null", "train.epochs=2", "train.evals_per_epoch=1")
    assert [e["step"] for e in out["eval_curve"]] == [2, 4]
