"""What mixsweep relies on in Hydra's private API, pinned (``mixsweep.sweeping.hydra_adapter``).

Hydra is pinned to 1.3.x; an upgrade that changes any of this fails here rather than in a sweep.
Expected values are typed by hand.
"""

from __future__ import annotations

import inspect

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from helpers import run_cli
from mixsweep.config.paths import CONF_DIR
from mixsweep.sweeping.hydra_adapter import basic_sweeper, grid, hydra_app

BasicSweeper = basic_sweeper()


def test_the_grid_is_the_cartesian_product_with_the_last_key_fastest():
    parsed = OverridesParser.create().parse_overrides(["seed=range(0,2)", "task=rte,mrpc", "model=tiny"])
    assert grid(parsed) == [
        ["seed=0", "task=rte", "model=tiny"],
        ["seed=0", "task=mrpc", "model=tiny"],
        ["seed=1", "task=rte", "model=tiny"],
        ["seed=1", "task=mrpc", "model=tiny"],
    ]


def test_batches_of_jobs_are_chunks_in_order():
    jobs = [["a=1"], ["a=2"], ["a=3"]]
    assert list(BasicSweeper.split_overrides_to_chunks(jobs, 2)) == [[["a=1"], ["a=2"]], [["a=3"]]]
    assert list(BasicSweeper.split_overrides_to_chunks(jobs, None)) == [jobs]


def test_the_cell_sweeper_can_subclass_the_basic_sweeper():
    params = inspect.signature(BasicSweeper.__init__).parameters
    assert {"max_batch_size", "params"} <= set(params)
    for name in ("setup", "sweep", "_parse_config"):
        assert callable(getattr(BasicSweeper, name))


def test_the_app_composes_from_mixsweeps_config_dir_and_clears_itself():
    with hydra_app(CONF_DIR) as hydra:
        assert GlobalHydra.instance().is_initialized()
        cfg = hydra.compose_config(config_name="config", overrides=["task=rte"], run_mode=RunMode.MULTIRUN)
        assert cfg.task.name == "rte" and cfg.hydra.job.name == "mixsweep"
        for name in ("multirun", "show_cfg", "show_info"):
            assert callable(getattr(hydra, name))
    assert not GlobalHydra.instance().is_initialized()


def test_a_fresh_process_plans_a_study_through_the_cell_sweeper(tmp_path):
    """The cell sweeper subclasses the BasicSweeper that Hydra's plugin scan binds (not one cached
    before the scan: then BasicSweeper.__init__'s super(BasicSweeper, self) fails)."""
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "smoke", "--results", str(tmp_path / "r")], timeout=300)
    assert code == 0, err
    assert "study 'smoke'" in out


def test_one_reading_of_an_override_key():
    from mixsweep.sweeping.overrides import override_key

    cases = {"seed=range(0,3)": "seed", "+regularizer.reinit.k=3": "regularizer.reinit.k",
             "++regularizer.mixout.p=0.9": "regularizer.mixout.p", "~regularizer.wdecay": "regularizer.wdecay",
             "~tracking=mlflow": "tracking", "data.source=glue_dir": "data.source"}
    assert {o: override_key(o) for o in cases} == cases
