"""A cell's settings on one task (``hydra.sweeper.per_task``) and the study that uses them,
sweeps/stabilizers_presets.yaml: each method on its paper's stated settings (issue 32 item 6)."""

from __future__ import annotations

import pytest

from helpers import run_cli
from mixsweep.errors import UserError
from mixsweep.sweeping.compose import compose_run, sweep_job_overrides
from mixsweep.sweeping.expand import check_per_task, expand_jobs, with_task_settings
from mixsweep.sweeping.request import SweepRequest

GRID = [["task=rte", "seed=0"], ["task=mrpc", "seed=0"]]
CELLS = {"devlin": ["regularizer=devlin"],
         "r3f": ["regularizer=devlin", "+regularizer.r3f.lam=1.0", "+regularizer.r3f.noise=uniform"]}


def test_without_per_task_the_jobs_are_the_grid_times_the_cells_as_before():
    expected = [
        ["task=rte", "seed=0", "regularizer=devlin", "cell=devlin"],
        ["task=rte", "seed=0", "regularizer=devlin", "+regularizer.r3f.lam=1.0", "+regularizer.r3f.noise=uniform",
         "cell=r3f"],
        ["task=mrpc", "seed=0", "regularizer=devlin", "cell=devlin"],
        ["task=mrpc", "seed=0", "regularizer=devlin", "+regularizer.r3f.lam=1.0", "+regularizer.r3f.noise=uniform",
         "cell=r3f"],
    ]
    assert expand_jobs(GRID, CELLS) == expected
    assert expand_jobs(GRID, CELLS, per_task={}) == expected
    assert expand_jobs(GRID, CELLS, per_task={"r3f": {"stsb": ["regularizer.r3f.lam=0.5"]}}) == expected


def test_per_task_replaces_the_cells_setting_on_that_task_only_and_adds_the_rest():
    per_task = {"r3f": {"rte": ["regularizer.r3f.lam=0.7", "train.batch_size=8"]}}
    assert expand_jobs(GRID, CELLS, per_task=per_task) == [
        ["task=rte", "seed=0", "regularizer=devlin", "cell=devlin"],
        # the cell adds lam (+), the task's value replaces it in place and keeps the +: Hydra adds a key once
        ["task=rte", "seed=0", "regularizer=devlin", "+regularizer.r3f.lam=0.7", "+regularizer.r3f.noise=uniform",
         "train.batch_size=8", "cell=r3f"],
        ["task=mrpc", "seed=0", "regularizer=devlin", "cell=devlin"],
        ["task=mrpc", "seed=0", "regularizer=devlin", "+regularizer.r3f.lam=1.0", "+regularizer.r3f.noise=uniform",
         "cell=r3f"],
    ]


def test_per_task_names_the_base_cell_of_a_crossed_cell_and_yields_to_the_command_line():
    cells = {"r3f@bertadam": [*CELLS["r3f"], "optimizer=bertadam"]}
    per_task = {"r3f": {"rte": ["regularizer.r3f.lam=0.7", "optimizer.lr=1.0e-5"]}}
    # optimizer.lr typed by the user (keep_keys) holds over the cell's per-task value
    assert expand_jobs([["task=rte"]], cells, keep_keys=["optimizer.lr=3e-5"], per_task=per_task) == [
        ["task=rte", "regularizer=devlin", "+regularizer.r3f.lam=0.7", "+regularizer.r3f.noise=uniform",
         "optimizer=bertadam", "cell=r3f@bertadam"]]


def test_with_task_settings_keeps_order_and_a_delete_replaces_the_cells_setting():
    assert with_task_settings(["a=1", "+b=2", "~c"], ["b=3", "~a", "d=4"]) == ["~a", "+b=3", "~c", "d=4"]
    assert with_task_settings(["a=1"], []) == ["a=1"]


@pytest.mark.parametrize("per_task, names", [({"r3ff": {"rte": ["x=1"]}}, "'r3ff'"),
                                             ({"r3f": {"rte": "x=1"}}, "list of overrides"),
                                             ({"r3f": ["x=1"]}, "list of overrides")])
def test_a_bad_per_task_map_is_a_one_line_error_naming_it(per_task, names):
    with pytest.raises(UserError, match=names):
        check_per_task("s", per_task, ["devlin@bertadam", "r3f@bertadam"])
    check_per_task("s", {"r3f": {"rte": ["x=1"]}}, ["devlin@bertadam", "r3f@bertadam"])  # a base name is known


def _preset_configs(task: str) -> dict:
    jobs = sweep_job_overrides(SweepRequest(sweep="stabilizers_presets", task=task, seeds=1, results="/nonexistent"))
    return {next(o.split("=", 1)[1] for o in job if o.startswith("cell=")): compose_run(job) for job in jobs}


def test_the_presets_study_runs_each_papers_settings_on_rte():
    cfg = _preset_configs("rte")
    assert list(cfg) == ["devlin", "zhang2021", "reinit_5", "llrd", "recadam", "child_tuning_f", "r3f", "lora", "bitfit"]
    # Lee et al.'s recipe for the baseline
    assert (cfg["devlin"].optimizer.name, cfg["devlin"].optimizer.lr, cfg["devlin"].train.batch_size) == \
        ("bertadam", 2e-5, 32)
    # revisit-bert-finetuning reinit.sh / llrd.sh: --reinit_layers 5, --layerwise_learning_rate_decay 0.95,
    # --use_torch_adamw, --weight_decay 0
    for name in ("zhang2021", "reinit_5", "llrd"):
        c = cfg[name]
        assert (c.optimizer.name, c.optimizer.lr, c.regularizer.wdecay.lam, c.train.batch_size) == \
            ("adamw", 2e-5, 0.0, 32)
    assert cfg["reinit_5"].regularizer.reinit.k == 5 and cfg["llrd"].regularizer.llrd.xi == 0.95
    # RecAdam README: 7,800 steps on RTE, lr 2e-5, batch 32, gamma 5000; script defaults k 0.5, t0 250, no warmup
    r = cfg["recadam"]
    assert (r.train.max_steps, r.optimizer.lr, r.train.batch_size, r.train.warmup_ratio) == (7800, 2e-5, 32, 0.0)
    # run_glue_with_RecAdam.py: num_train_epochs = max_steps // len(train_dataloader) + 1; RTE's 2,490 examples
    # at batch 32 are 78 batches, 7800 // 78 + 1 = 101; the run ends at max_steps, 100 epochs
    assert r.train.epochs == 101
    assert (r.regularizer.recadam.gamma, r.regularizer.recadam.k, r.regularizer.recadam.t0) == (5000, 0.5, 250)
    # ChildTuning run.sh: reserve_p 0.3, batch 16, 3 epochs, lr 4e-5, warmup 0.1, weight decay 0.01
    c = cfg["child_tuning_f"]
    assert (c.regularizer.child_tuning.p_f, c.train.batch_size, c.train.epochs, c.optimizer.lr,
            c.train.warmup_ratio, c.regularizer.wdecay.lam) == (0.3, 16, 3, 4e-5, 0.1, 0.01)
    # fairseq examples/rxf/README.md on RTE: lambda 0.7, uniform, lr 1e-5, batch 8, 10 epochs, 187/3120 warmup,
    # no clipping, betas (0.9, 0.98), eps 1e-6, weight decay 0.1
    f = cfg["r3f"]
    assert (f.regularizer.r3f.lam, f.regularizer.r3f.noise, f.optimizer.name, f.optimizer.lr, f.train.batch_size,
            f.train.epochs, f.train.warmup_ratio, f.train.max_grad_norm, list(f.optimizer.betas), f.optimizer.eps,
            f.regularizer.wdecay.lam) == (0.7, "uniform", "adamw_hf", 1e-5, 8, 10, 0.06, None, [0.9, 0.98], 1e-6, 0.1)
    # PETuning run_rte_roberta_both.sh: LoRA r 8, alpha 8, lr 1e-3, bs 16, 50 epochs; BitFit lr 1e-3, bs 16
    lo, bf = cfg["lora"], cfg["bitfit"]
    assert (lo.regularizer.lora.r, lo.regularizer.lora.alpha, lo.optimizer.lr, lo.train.batch_size,
            lo.train.epochs) == (8, 8, 1e-3, 16, 50)
    assert (bf.optimizer.lr, bf.train.batch_size, bf.train.epochs) == (1e-3, 16, 50)


def test_the_presets_study_takes_each_tasks_own_values_elsewhere():
    mrpc, stsb, cola = _preset_configs("mrpc"), _preset_configs("stsb"), _preset_configs("cola")
    # fairseq states R3F's lambda for RTE only: elsewhere its default 1.0 on the lab's recipe
    assert (mrpc["r3f"].regularizer.r3f.lam, mrpc["r3f"].optimizer.lr, mrpc["r3f"].train.batch_size) == (1.0, 2e-5, 32)
    # (STS-B's r3f job is planned away: R3F.inert_on, a regression target gets no R3F term)
    # PETuning: MRPC alpha 16, lr 5e-4, bs 32; STS-B alpha 16, lr 1e-4, bs 32; CoLA as RTE
    assert (mrpc["lora"].regularizer.lora.alpha, mrpc["lora"].optimizer.lr, mrpc["lora"].train.batch_size) == \
        (16, 5e-4, 32)
    assert (stsb["lora"].regularizer.lora.alpha, stsb["lora"].optimizer.lr, stsb["lora"].train.batch_size) == \
        (16, 1e-4, 32)
    assert (cola["lora"].regularizer.lora.alpha, cola["lora"].optimizer.lr, cola["lora"].train.batch_size) == \
        (8, 1e-3, 16)
    # BitFit: CoLA lr 5e-4 bs 32, STS-B lr 5e-4 bs 16, MRPC as RTE
    assert (cola["bitfit"].optimizer.lr, cola["bitfit"].train.batch_size) == (5e-4, 32)
    assert (stsb["bitfit"].optimizer.lr, stsb["bitfit"].train.batch_size) == (5e-4, 16)
    assert (mrpc["bitfit"].optimizer.lr, mrpc["bitfit"].train.batch_size) == (1e-3, 16)
    # RecAdam README: STS-B's command t0 1000, k 1, 9,000 steps; MRPC 11,500, CoLA 13,400 steps
    rs = stsb["recadam"]
    assert (rs.regularizer.recadam.t0, rs.regularizer.recadam.k, rs.train.max_steps) == (1000, 1.0, 9000)
    assert (mrpc["recadam"].train.max_steps, cola["recadam"].train.max_steps) == (11500, 13400)
    # max_steps // batches + 1: MRPC 3,668 examples = 115 batches of 32, CoLA 8,551 = 268, STS-B 5,749 = 180
    assert (mrpc["recadam"].train.epochs, cola["recadam"].train.epochs, rs.train.epochs) == (101, 51, 51)
    assert (mrpc["recadam"].regularizer.recadam.t0, mrpc["recadam"].regularizer.recadam.k) == (250, 0.5)


def test_plan_lists_the_presets_with_their_rte_settings(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "stabilizers_presets", "--task", "rte", "--seeds", "1",
                                        "--results", str(tmp_path / "r")], timeout=300)
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.strip().startswith("rte ")}
    assert list(rows) == ["devlin", "zhang2021", "reinit_5", "llrd", "recadam", "child_tuning_f", "r3f", "lora",
                          "bitfit"]
    assert "r3f(0.7," in rows["r3f"] and "optimizer.lr=1e-05" in rows["r3f"] and "train.batch_size=8" in rows["r3f"]
    assert "reinit(5)" in rows["reinit_5"] and "optimizer=adamw," in rows["reinit_5"]
    assert "optimizer.lr=4e-05" in rows["child_tuning_f"] and "train.max_steps=7800" in rows["recadam"]
