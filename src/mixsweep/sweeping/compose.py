"""Compose run configs outside a Hydra app (tests, HPO, ``plan --show-config``, rerun)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from mixsweep.config import hydra_node
from mixsweep.config.paths import CONF_DIR, hydra_searchpath_override
from mixsweep.sweeping.expand import check_cell_names, cross_cells, study_jobs
from mixsweep.sweeping.overrides import user_keys
from mixsweep.sweeping.request import SweepRequest


@contextlib.contextmanager
def composing() -> Iterator[None]:
    """Hydra's compose API over ``conf/`` (a fresh global instance, cleared on leaving) with the declared
    defaults registered: the one start-up of every composition outside a Hydra app. Inside, each
    :func:`compose_run` reuses it (planning composes a study's cells in one)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    hydra_node.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="mixsweep"):
        yield


def compose_run(overrides: Sequence[str] = (), *, hydra: bool = False) -> DictConfig:
    """The config of one run: ``conf/config.yaml`` + overrides (``+sweeps=NAME`` works too)."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        # Inside a running Hydra app (a sweep job or the HPO driver) or composing(): reuse its search path.
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)
    with composing():
        return compose("config", overrides=[hydra_searchpath_override(), *overrides], return_hydra_config=hydra)


def sweep_job_overrides(req: SweepRequest) -> list[list[str]]:
    """The per-run overrides a study expands to, exactly as the cell sweeper forms them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    base = compose_run([f"+sweeps='{req.sweep}'"], hydra=True)
    sweeper = base.hydra.sweeper
    params = {k: str(v) for k, v in (sweeper.get("params") or {}).items()}
    if req.task:
        params["task"] = req.task
    if req.seeds:
        params["seed"] = f"range(0,{req.seeds})"
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    every_cell = cross_cells(_plain(sweeper.get("cells")), _plain(sweeper.get("cross")))
    check_cell_names(req.sweep, every_cell)
    jobs = study_jobs(req.sweep, parsed, every_cell, req.cells, keep_keys=user_keys(req.hydra_arguments()),
                      per_task=_plain(sweeper.get("per_task")), seeds_per_cell=_plain(sweeper.get("seeds_per_cell")))
    return [[f"+sweeps='{req.sweep}'", f"paths.results={req.results}", *job, *req.overrides] for job in jobs]


def _plain(node) -> dict:
    """A sweeper mapping (cells, cross, per_task, seeds_per_cell) as plain data; absent or empty is ``{}``."""
    return OmegaConf.to_container(node) if node else {}


def compose_sweep_jobs(req: SweepRequest, limit: int | None = None) -> list[DictConfig]:
    jobs = sweep_job_overrides(req)[:limit]
    return [compose_run(job) for job in jobs]
