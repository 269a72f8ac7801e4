"""The testbed study, sweeps/testbed.yaml (issue 31): equal compute across its cells but the named
contrast's, one factor per compared cell, and the long corners cut to their first seeds
(``hydra.sweeper.seeds_per_cell``, :func:`mixsweep.sweeping.expand.limit_seeds`)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mixsweep.analysis.design import design_file
from mixsweep.errors import UserError
from mixsweep.run.prepare import cadence
from mixsweep.store.cell_id import flatten
from mixsweep.sweeping.compose import compose_run, sweep_job_overrides
from mixsweep.sweeping.expand import check_seeds_per_cell, limit_seeds
from mixsweep.sweeping.request import SweepRequest

ROOT = Path(__file__).resolve().parents[1]
CONTRAST_LONG = {"devlin_20ep", "bias_corrected_20ep"}


def _jobs(seeds: int) -> list[list[str]]:
    return sweep_job_overrides(SweepRequest(sweep="testbed", seeds=seeds, results="/nonexistent"))


def _cell(job) -> str:
    return next(o.split("=", 1)[1] for o in job if o.startswith("cell="))


@pytest.fixture(scope="module")
def configs() -> dict:
    return {_cell(job): compose_run(job) for job in _jobs(1)}


def _updates_and_evaluations(cfg) -> tuple[int, int]:
    steps_per_epoch = math.ceil(int(cfg.data.train_size) / int(cfg.train.batch_size))
    c = cadence(cfg.train, steps_per_epoch)
    return c.total_steps, sum(c.evaluates(s) for s in range(0, c.total_steps + 1))


def test_every_cell_but_the_contrasts_long_corners_runs_64_updates_and_16_evaluations(configs):
    assert list(configs) == ["none", "devlin", "bias_corrected", "mixout_0.9", "wdecay_pre",
                             "devlin_20ep", "bias_corrected_20ep"]
    # 256 reviews / batch 16 = 16 updates an epoch; 4 epochs = 64; an evaluation every 64 // 16 = 4 updates
    for name, cfg in configs.items():
        expected = (320, 16) if name in CONTRAST_LONG else (64, 16)  # 20 epochs: every 320 // 16 = 20 updates
        assert _updates_and_evaluations(cfg) == expected, name


def test_the_cells_of_unequal_compute_are_exactly_the_designs_contrast(configs):
    design = design_file(ROOT / "sweeps" / "testbed.yaml")
    compute = {name: _updates_and_evaluations(cfg) for name, cfg in configs.items()}
    unequal = {name for name, c in compute.items() if c != compute["devlin"]}
    assert unequal == CONTRAST_LONG and unequal <= set(design.contrast.cells)
    assert not unequal & {c.cell for c in design.compare} and not unequal & {c.baseline for c in design.compare}


def _differences(a, b) -> set[str]:
    fa, fb = (flatten(OmegaConf.to_container(c, resolve=True)) for c in (a, b))
    ignore = ("cell",)
    return {k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and k not in ignore}


def test_each_compared_cell_differs_from_its_baseline_in_the_one_factor_it_names(configs):
    design = {c.cell: c for c in design_file(ROOT / "sweeps" / "testbed.yaml").compare}
    assert {c: (d.baseline, d.claim) for c, d in design.items()} == {
        "bias_corrected": ("devlin", "fewer"), "mixout_0.9": ("devlin", "fewer"), "wdecay_pre": ("devlin", "fewer")}
    base = configs["devlin"]
    # the optimizer alone
    assert {k.split(".")[0] for k in _differences(configs["bias_corrected"], base)} == {"optimizer"}
    assert configs["bias_corrected"].optimizer.name == "adamw_hf" and base.optimizer.name == "bertadam"
    # the decay's target alone
    assert _differences(configs["wdecay_pre"], base) == {"regularizer.wdecay.target"}
    # the encoder's dropout -> mixout(w_pre, 0.9): the decay and the head input's dropout 0.1 are Devlin's
    mix = configs["mixout_0.9"]
    assert {k.split(".")[0] for k in _differences(mix, base)} == {"regularizer"}
    assert OmegaConf.to_container(mix.regularizer.wdecay) == OmegaConf.to_container(base.regularizer.wdecay)
    assert (mix.regularizer.mixout.p, mix.regularizer.mixout.head.policy, mix.regularizer.mixout.head.p) == \
        (0.9, "dropout", 0.1)
    assert (base.regularizer.dropout.p, base.regularizer.dropout.head) == (0.1, True)
    # the control has neither dropout nor decay
    assert "dropout" not in configs["none"].regularizer and "wdecay" not in configs["none"].regularizer
    # the contrast's long corners differ from their short ones in the budget alone
    assert _differences(configs["devlin_20ep"], base) == {"train.epochs"}
    assert _differences(configs["bias_corrected_20ep"], configs["bias_corrected"]) == {"train.epochs"}


def _seeds_by_cell(jobs) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for job in jobs:
        out.setdefault(_cell(job), []).append(int(next(o.split("=", 1)[1] for o in job if o.startswith("seed="))))
    return out


def test_the_long_corners_run_the_first_5_seeds_and_the_others_all_20():
    seeds = _seeds_by_cell(_jobs(20))
    assert {c: s for c, s in seeds.items() if c in CONTRAST_LONG} == {c: [0, 1, 2, 3, 4] for c in CONTRAST_LONG}
    assert all(s == list(range(20)) for c, s in seeds.items() if c not in CONTRAST_LONG)
    # the 5-seed variant is the same runs' first five on every cell
    assert {c: len(s) for c, s in _seeds_by_cell(_jobs(5)).items()} == dict.fromkeys(seeds, 5)


def test_limit_seeds_keeps_a_cells_first_seeds_on_each_task_worked_by_hand():
    jobs = [[f"task={t}", f"seed={s}", f"cell={c}"] for t in ("rte", "mrpc") for s in (0, 1, 2) for c in ("a", "b@x")]
    kept = limit_seeds(jobs, {"b": 2})
    assert kept == [["task=rte", "seed=0", "cell=a"], ["task=rte", "seed=0", "cell=b@x"],
                    ["task=rte", "seed=1", "cell=a"], ["task=rte", "seed=1", "cell=b@x"],
                    ["task=rte", "seed=2", "cell=a"],
                    ["task=mrpc", "seed=0", "cell=a"], ["task=mrpc", "seed=0", "cell=b@x"],
                    ["task=mrpc", "seed=1", "cell=a"], ["task=mrpc", "seed=1", "cell=b@x"],
                    ["task=mrpc", "seed=2", "cell=a"]]
    assert limit_seeds(jobs, {}) == jobs


@pytest.mark.parametrize("limits, names", [({"c": 2}, "'c'"), ({"a": 0}, "whole number"), ({"a": "5"}, "whole number"),
                                           ({"a": True}, "whole number")])
def test_a_bad_seeds_per_cell_map_is_a_one_line_error_naming_it(limits, names):
    with pytest.raises(UserError, match=names):
        check_seeds_per_cell("s", limits, ["a", "b@x"])
    check_seeds_per_cell("s", {"b": 1}, ["a", "b@x"])
