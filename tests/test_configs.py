"""Every study composes for every task, and the run id keys on semantics only."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from mixsweep.paths import CONF_DIR, sweep_names
from mixsweep.records import cell_label
from mixsweep.runid import run_id
from mixsweep.sweeping.compose import compose_run

TEXT_TASKS = ["rte", "mrpc", "cola", "stsb", "sst2", "mnli", "qnli", "qqp", "wnli", "rt_polarity"]
GLUE_SWEEPS = ["smoke", "table1", "output_layer", "mix_prob", "dropout_prob", "sufficient_data", "wdecay_form"]


def test_every_study_file_is_known():
    assert set(GLUE_SWEEPS) <= set(sweep_names())


@pytest.mark.parametrize("sweep", GLUE_SWEEPS)
def test_every_sweep_composes_for_every_task(sweep):
    for task in TEXT_TASKS:
        cfg = compose_run([f"+sweeps={sweep}", f"task={task}"], hydra=True)
        assert cfg.task.name == task
        assert cfg.sweep == sweep
        assert cfg.hydra.sweeper.cells, "a study lists its cells"


@pytest.mark.parametrize("sweep", GLUE_SWEEPS)
def test_every_cell_of_every_sweep_composes(sweep):
    base = compose_run([f"+sweeps={sweep}"], hydra=True)
    labels = set()
    for name, overrides in base.hydra.sweeper.cells.items():
        cfg = compose_run([f"+sweeps={sweep}", *overrides, f"cell={name}"])
        labels.add(cell_label(OmegaConf.to_container(cfg.regularizer)))
    assert len(labels) == len(base.hydra.sweeper.cells), "each cell is a distinct regularizer"


def test_table1_has_the_papers_eleven_rows():
    base = compose_run(["+sweeps=table1"], hydra=True)
    labels = [
        cell_label(OmegaConf.to_container(compose_run(["+sweeps=table1", *ov]).regularizer))
        for ov in base.hydra.sweeper.cells.values()
    ]
    assert labels == [
        "dropout(0.1)+wdecay(0,0.01)",
        "wdecay(w_pre,0.01)", "wdecay(w_pre,0.04)", "wdecay(w_pre,0.07)", "wdecay(w_pre,0.1)",
        "mixout(w_pre,0.7)", "mixout(w_pre,0.8)", "mixout(w_pre,0.9)",
        "mixout(w_pre,0.7)+wdecay(w_pre,0.01)", "mixout(w_pre,0.8)+wdecay(w_pre,0.01)",
        "mixout(w_pre,0.9)+wdecay(w_pre,0.01)",
    ]


def test_every_config_group_option_composes():
    for group in ("task", "model", "regularizer", "optimizer", "launcher"):
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            compose_run([f"{group}={path.stem}"])


def test_run_id_ignores_where_results_go_but_not_what_runs():
    a = compose_run(["paths.results=/tmp/a", "sweep=x", "cell=c", "device=cpu"])
    b = compose_run(["paths.results=/tmp/b", "sweep=y", "cell=d", "device=auto"])
    assert run_id(a) == run_id(b)
    assert run_id(a) != run_id(compose_run(["seed=1"]))
    assert run_id(a) != run_id(compose_run(["optimizer.lr=3e-5"]))
    assert run_id(a) != run_id(compose_run(["regularizer=mixout"]))


def test_zero_probability_mixout_and_dropout_are_one_run():
    assert run_id(compose_run(["regularizer=dropout", "regularizer.dropout.p=0.0"])) == run_id(
        compose_run(["regularizer=mixout", "regularizer.mixout.p=0.0"])
    )


def test_seed_drives_all_three_randomness_sources_unless_overridden():
    cfg = compose_run(["seed=7", "data_seed=3"])
    assert (cfg.init_seed, cfg.data_seed, cfg.noise_seed) == (7, 3, 7)
