"""Every study composes for every task, and the run id keys on semantics only."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from mixsweep.config.paths import CONF_DIR, sweep_names
from mixsweep.records import cell_label
from mixsweep.store.runid import run_id
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


# What each option must select, typed from the paper and the libraries (not read from the yaml files).
PAPER_HEADLINES = {"rte": "accuracy", "mrpc": "f1", "cola": "mcc", "stsb": "spearman", "sst2": "accuracy",
                   "digits": "target_acc"}
MODEL_IDS = {"bert_large": "bert-large-uncased", "bert_base": "bert-base-uncased", "roberta_large": "roberta-large",
             "minilm_l6": "minilm_l6", "tiny": "tiny"}
REGULARIZER_LABELS = {  # the paper's strings (Table 1, Fig. 4)
    "none": "none",
    "dropout": "dropout(0.1)",
    "devlin": "dropout(0.1)+wdecay(0,0.01)",
    "wdecay": "wdecay(w_pre,0.01)",
    "mixout": "mixout(w_pre,0.9)",
    "mixout_wdecay": "mixout(w_pre,0.9)+wdecay(w_pre,0.01)",
}
LAUNCHERS = {"local": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
             "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
             "slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
             "submitit_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"}


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("name", _options("task"))
def test_each_task_option_selects_that_task(name):
    task = compose_run([f"task={name}"]).task
    assert task.name == name
    assert task.headline == PAPER_HEADLINES.get(name, task.headline)
    if task.kind == "text":
        assert task.headline in task.metrics


def test_the_paper_tasks_and_models_have_options():
    assert set(PAPER_HEADLINES) <= set(_options("task"))
    assert set(MODEL_IDS) <= set(_options("model"))
    assert set(REGULARIZER_LABELS) <= set(_options("regularizer"))
    assert set(LAUNCHERS) <= set(_options("launcher"))
    assert {"bertadam", "adamw"} <= set(_options("optimizer"))


@pytest.mark.parametrize("name", _options("model"))
def test_each_model_option_names_its_checkpoint(name):
    model = compose_run([f"model={name}"]).model
    assert model.name_or_path == MODEL_IDS.get(name, model.name_or_path) and model.name_or_path


@pytest.mark.parametrize("name", _options("regularizer"))
def test_each_regularizer_option_has_its_name_and_paper_label(name):
    reg = compose_run([f"regularizer={name}"]).regularizer
    assert reg.name == name
    label = cell_label(OmegaConf.to_container(reg))
    assert label == REGULARIZER_LABELS.get(name, label) and label


@pytest.mark.parametrize("name", _options("optimizer"))
def test_each_optimizer_option_has_the_papers_recipe(name):
    opt = compose_run([f"optimizer={name}"]).optimizer
    assert opt.name == name
    assert (opt.lr, list(opt.betas), opt.eps) == (2e-5, [0.9, 0.999], 1e-6)  # Devlin et al.'s BERT recipe


@pytest.mark.parametrize("name", _options("launcher"))
def test_each_launcher_option_selects_its_hydra_launcher(name):
    cfg = compose_run([f"launcher={name}"], hydra=True)
    assert cfg.hydra.launcher._target_ == LAUNCHERS.get(name, cfg.hydra.launcher._target_)


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
