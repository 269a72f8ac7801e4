"""The stabilizer studies compose and validate, the Mosbach preset, and every stabilizer (alone and
with mixout) through the runner end to end on the tiny model."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import tiny_overrides
from mixsweep.regularizers.base import build_methods
from mixsweep.store.runid import semantic_config
from mixsweep.sweeping.compose import compose_run
from mixsweep.sweeping.expand import cross_cells, select_cells

STUDIES = {"stabilizers": ["rte", "mrpc", "cola", "stsb"], "stabilizers_smoke": ["rt_polarity"]}
# 17 methods × {bertadam, adamw_hf} + mosbach (its recipe's optimizer); the smoke study is not crossed
N_CELLS = {"stabilizers": 35, "stabilizers_smoke": 11}
STABILIZERS = {
    "reinit": ["+regularizer.reinit.k=1"],
    "llrd": ["+regularizer.llrd.xi=0.8"],
    "recadam": ["+regularizer.recadam.t0=1"],
    "child_tuning": ["+regularizer.child_tuning.p_f=0.5"],
    "noisytune": ["+regularizer.noisytune.lam=0.15"],
    "r3f": ["+regularizer.r3f.eps=1.0e-3"],
    "hype": ["+regularizer.hype.eps=1.0e-3"],
    "rdrop": ["+regularizer.rdrop.alpha=0.5", "++regularizer.dropout.p=0.1"],  # mixout alone has no dropout
    "spd": ["+regularizer.spd.lam=1.0"],
    "smart": ["+regularizer.smart.alpha=1.0"],
    "lora": ["+regularizer.lora.r=4"],
    "bitfit": ["+regularizer.bitfit.pooler=false"],
    "cwgnc": ["+regularizer.cwgnc.max_norm=1.0"],
    "dps": ["+regularizer.dps.reserve_p=0.3", "+regularizer.dps.update_ratio=0.5"],  # 2 steps: phases of 1
}


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_every_cell_of_the_stabilizer_studies_composes_validates_and_differs(study):
    base = compose_run([f"+sweeps={study}"], hydra=True)
    sweeper = OmegaConf.to_container(base.hydra.sweeper)
    cells = cross_cells(sweeper["cells"], sweeper.get("cross"))
    assert len(cells) == N_CELLS[study]
    for task in STUDIES[study]:
        seen = {}
        for name, overrides in cells.items():
            cfg = compose_run([f"+sweeps={study}", f"task={task}", *overrides])
            build_methods(OmegaConf.to_container(cfg.regularizer, resolve=True))  # raises on a bad value
            seen[name] = repr(semantic_config(cfg))
        assert len(set(seen.values())) == len(cells), "two cells are the same experiment"


def test_mosbach_recipe_preset():
    # uds-lsv/bert-stable-fine-tuning, examples/bert_stable_fine_tuning/configs/rte/
    # pooler-bert-large-uncased_bsz_16_lr_2e-05_adamW_bias-correct.yaml: transformers' AdamW with
    # bias correction, lr 2e-5, per_gpu_train_batch_size 16, warmup 0.1, max_grad_norm 1.0
    cfg = compose_run(["+sweeps=stabilizers", "task=rte", "+recipe=mosbach2021"])
    assert cfg.optimizer.name == "adamw_hf" and cfg.optimizer.lr == 2e-5
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.warmup_ratio, cfg.train.evals_per_epoch,
            cfg.train.max_grad_norm) == (20, 16, 0.1, 3, 1.0)
    # the lab's cells evaluate as Zhang et al.'s sample commands (--num_loggings 10); its Mosbach cell
    # drops that for the recipe's per-epoch schedule
    assert compose_run(["+sweeps=stabilizers", "task=rte"]).train.evals_per_run == 10
    mosbach = OmegaConf.to_container(compose_run(["+sweeps=stabilizers"], hydra=True).hydra.sweeper.cells)["mosbach"]
    assert "evals_per_run" not in compose_run(["+sweeps=stabilizers", "task=rte", *mosbach]).train


def test_zhang2021_recipe_preset_is_their_sample_commands_setup():
    """asappresearch/revisit-bert-finetuning sample_commands/{reinit,llrd,debiased_adam_baseline}.sh:
    --use_torch_adamw, --weight_decay 0, --per_gpu_train_batch_size 32, --num_train_epochs 3.0,
    --warmup_ratio 0.1, --learning_rate 2e-05, --num_loggings 10, --max_seq_length 128; options.py
    defaults --adam_epsilon 1e-8 and --max_grad_norm 1.0 (issue 32 item 5)."""
    import torch

    from mixsweep.config import schema
    from mixsweep.optim import build_optimizer
    from mixsweep.records import cell_label

    # weight decay 0: devlin's wdecay(0, 0.01) is off in every cell; its dropout 0.1 stays (their BERT's own)
    labels = {(): "dropout(0.1)", ("+regularizer.reinit.k=5",): "reinit(5)+dropout(0.1)",
              ("+regularizer.llrd.xi=0.95",): "dropout(0.1)+llrd(0.95)"}
    for cell, label in labels.items():
        cfg = compose_run(["+sweeps=stabilizers", "task=rte", "regularizer=devlin", *cell, "+recipe=zhang2021"])
        assert schema.problems(OmegaConf.to_container(cfg, resolve=True)) == []
        assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.eps) == ("adamw", 2e-5, 1e-8)
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.warmup_ratio, cfg.train.max_grad_norm,
                cfg.train.evals_per_run, cfg.data.max_length) == (3, 32, 0.1, 1.0, 10, 128)
        opt = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(2))]}],
                              OmegaConf.to_container(cfg.optimizer))
        assert type(opt) is torch.optim.AdamW  # torch's AdamW, as --use_torch_adamw
        assert (opt.param_groups[0]["eps"], opt.param_groups[0]["weight_decay"]) == (1e-8, 0.0)
        assert cell_label(OmegaConf.to_container(cfg.regularizer, resolve=True)) == label


def test_the_stabilizer_lab_crosses_every_method_with_both_optimizers():
    sweeper = OmegaConf.to_container(compose_run(["+sweeps=stabilizers"], hydra=True).hydra.sweeper)
    assert sweeper["cross"] == {"optimizer": ["bertadam", "adamw_hf"]}
    cells = cross_cells(sweeper["cells"], sweeper["cross"])
    methods = {name.split("@")[0] for name in cells} - {"mosbach"}
    assert len(methods) == 17 and {"hype", "rdrop", "spd", "smart", "lora", "bitfit", "cwgnc", "dps"} <= methods
    for m in methods:
        assert cells[f"{m}@bertadam"][-1] == "optimizer=bertadam"
        assert cells[f"{m}@adamw_hf"][-1] == "optimizer=adamw_hf"
    assert "mosbach" in cells and "optimizer=adamw_hf" in cells["mosbach"]


def test_cross_names_each_cell_per_value_and_leaves_cells_that_set_the_key():
    cells = {"a": ["regularizer=devlin"], "b": ["regularizer=none", "optimizer=adamw"]}
    crossed = cross_cells(cells, {"optimizer": ["bertadam", "adamw_hf"], "train.epochs": [3]})
    assert crossed == {
        "a@bertadam@3": ["regularizer=devlin", "optimizer=bertadam", "train.epochs=3"],
        "a@adamw_hf@3": ["regularizer=devlin", "optimizer=adamw_hf", "train.epochs=3"],
        "b@3": ["regularizer=none", "optimizer=adamw", "train.epochs=3"],
    }
    assert cross_cells(cells, None) == cells
    assert list(select_cells(crossed, ["a"])) == ["a@bertadam@3", "a@adamw_hf@3"]  # a base name: all values
    assert list(select_cells(crossed, ["a@adamw_hf@3"])) == ["a@adamw_hf@3"]


def test_plan_of_the_stabilizer_lab_shows_both_optimizers():
    from mixsweep.sweeping.compose import sweep_job_overrides
    from mixsweep.sweeping.request import SweepRequest

    jobs = sweep_job_overrides(SweepRequest(sweep="stabilizers", task="rte", seeds=1, results="/nonexistent"))
    assert len(jobs) == 35
    opts = [next((o.split("=", 1)[1] for o in job if o.startswith("optimizer=")), None) for job in jobs]
    assert opts.count("bertadam") == 17 and opts.count("adamw_hf") == 18
    # a study without `cross` (the smoke study) expands as before: its 11 cells, named as in its file
    smoke = sweep_job_overrides(SweepRequest(sweep="stabilizers_smoke", seeds=1, results="/nonexistent"))
    assert [o for job in smoke for o in job if o.startswith("cell=")][:2] == ["cell=devlin", "cell=devlin@adamw_hf"]
    assert len(smoke) == 11


@pytest.fixture(scope="module")
def run_tiny(tmp_path_factory):
    from mixsweep.run.train import run

    base = tiny_overrides(tmp_path_factory.mktemp("stab"))
    return lambda *overrides: run(compose_run([*base, "train.max_steps=3", *overrides]))


@pytest.mark.parametrize("method", sorted(STABILIZERS))
@pytest.mark.parametrize("with_mixout", [False, True], ids=["devlin", "mixout"])
def test_each_stabilizer_trains_end_to_end(run_tiny, method, with_mixout):
    reg = ["regularizer=mixout", "regularizer.mixout.p=0.5"] if with_mixout else ["regularizer=devlin"]
    out = run_tiny(*reg, *STABILIZERS[method])
    assert out["status"] == "ok" and out["final"]


@pytest.mark.parametrize("method", ["spd", "smart"])
def test_new_stabilizers_train_a_regression_task(run_tiny, method):
    out = run_tiny("task=stsb", "regularizer=devlin", *STABILIZERS[method])
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


def test_evals_per_run_evaluates_every_total_over_n_steps_and_at_the_end(run_tiny):
    # revisit-bert-finetuning run_glue.py: logging_steps = t_total // num_loggings, evaluated when
    # global_step % logging_steps == 0 or global_step == t_total. Here t_total = 5 epochs × 2 steps = 10:
    # N = 3 -> every 3 steps: 3, 6, 9 and the last, 10; N = 5 -> every 2 steps.
    out = run_tiny("regularizer=none", "train.max_steps=null", "train.epochs=5", "+train.evals_per_run=3")
    assert [e["step"] for e in out["eval_curve"]] == [3, 6, 9, 10]
    out = run_tiny("regularizer=none", "train.max_steps=null", "train.epochs=5", "+train.evals_per_run=5",
                   "train.evals_per_epoch=2")  # the per-run setting wins over the per-epoch one
    assert [e["step"] for e in out["eval_curve"]] == [2, 4, 6, 8, 10]


def test_plan_of_the_lab_on_stsb_runs_no_r3f_cell_and_says_why(tmp_path):
    """R3F adds nothing on a regression target (fairseq's sentence_prediction_r3f.py: plain MSE when
    regression_target), so its STS-B cells would be devlin's runs under R3F's name (issue 32 item 7):
    the plan lists no R3F cell there and says why; on RTE both R3F cells are planned."""
    from helpers import run_cli

    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "stabilizers", "--task", "stsb", "--seeds", "1",
                                        "--results", str(tmp_path / "r")])
    assert code == 0, err
    cells = [line.split()[1] for line in out.splitlines() if line.startswith("  stsb ")]
    assert len(cells) == 33 and not [c for c in cells if c.startswith("r3f")]  # 35 cells less r3f@{bertadam,adamw_hf}
    why = [line for line in out.splitlines() if line.startswith("  not run on stsb:")]
    assert why == ["  not run on stsb: r3f@bertadam, r3f@adamw_hf -- r3f is inactive there: fairseq's R3F adds no "
                   "term on a regression target (sentence_prediction_r3f.py: plain MSE), so its runs would be the "
                   "baseline's; regularizer.r3f.regression=gaussian is our extension that adds one"]
    assert "33 runs in 33 cells" in out


def test_r3f_is_inert_only_on_a_regression_task_without_its_gaussian_extension():
    from mixsweep.data.tasks import get_task
    from mixsweep.regularizers.base import inert_methods

    r3f = {"dropout": {"p": 0.1}, "r3f": {"lam": 1.0}}
    assert set(inert_methods(r3f, get_task("stsb"))) == {"r3f"}
    assert inert_methods(r3f, get_task("rte")) == {} and inert_methods(r3f, get_task("mrpc")) == {}
    assert inert_methods({"r3f": {"lam": 1.0, "regression": "gaussian"}}, get_task("stsb")) == {}
    assert inert_methods({"dropout": {"p": 0.1}}, get_task("stsb")) == {}
