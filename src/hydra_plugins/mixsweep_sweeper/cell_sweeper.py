"""Hydra sweeper for mixsweep's study files: a grid of named cells × the usual sweep params.

Hydra's basic sweeper only forms cartesian products, but a paper table is a *list* of rows
(Devlin; wdecay(w_pre, λ) for four λ; mixout(w_pre, p) for three p; ...). A sweep file
therefore names its rows under ``hydra.sweeper.cells`` (name → list of overrides) and its
cartesian dimensions under ``hydra.sweeper.params`` (task, seed); ``hydra.sweeper.cross`` crosses
every cell with a factor (each cell once per value, named ``<cell>@<value>``), and
``hydra.sweeper.per_task`` gives a cell other settings on one task, ``hydra.sweeper.seeds_per_cell`` runs a
cell on the study's first n seeds only. Jobs are
``params-product × cells`` (``select`` keeps some cells by name). Before launching, every job is
composed, given its run id, and checked against the results store, so a relaunch submits only
what is missing, whichever study ran the rest (and a SLURM array never carries finished runs);
the study's view (its run ids) is written then. ``dry_run=true`` prints that plan and launches
nothing.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mixsweep.sweeping.hydra_adapter import basic_sweeper

BasicSweeper = basic_sweeper()  # the class Hydra's module binds now (see basic_sweeper)

log = logging.getLogger(__name__)


@dataclass
class CellSweeperConf:
    _target_: str = "hydra_plugins.mixsweep_sweeper.cell_sweeper.CellSweeper"
    # No `from __future__ import annotations` here: Hydra execs plugin modules outside
    # sys.modules, where dataclasses cannot resolve string annotations.
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    cells: Dict[str, List[str]] = field(default_factory=dict)
    # each cell once per value of each key (sweeping.expand.cross_cells), e.g. {optimizer: [bertadam, adamw_hf]}
    cross: Dict[str, List[str]] = field(default_factory=dict)
    # a cell's other settings on one task (sweeping.expand.expand_jobs), e.g. {r3f: {rte: [regularizer.r3f.lam=0.7]}}
    per_task: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    # a cell that runs only the study's first n seeds (sweeping.expand.limit_seeds), e.g. {long_budget: 5}
    seeds_per_cell: Dict[str, int] = field(default_factory=dict)
    select: Optional[List[str]] = None  # run only these cells (--cells / CELLS=)
    dry_run: bool = False
    # the study's analysis design (mixsweep.analysis.design), read by the report alone: it changes no
    # run id and no plan
    design: Dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="cells", node=CellSweeperConf, provider="mixsweep")


class CellSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, str]] = None,
        cells: Optional[Dict[str, Any]] = None,
        cross: Optional[Dict[str, Any]] = None,
        per_task: Optional[Dict[str, Any]] = None,
        seeds_per_cell: Optional[Dict[str, Any]] = None,
        select: Optional[List[str]] = None,
        dry_run: bool = False,
        design: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        from mixsweep.sweeping.expand import cross_cells

        self.cells = cross_cells({str(k): [str(o) for o in v] for k, v in (cells or {}).items()},
                                 {str(k): [str(x) for x in v] for k, v in (cross or {}).items()})
        self.per_task = {str(c): {str(t): [str(o) for o in ovs] for t, ovs in tasks.items()}
                         for c, tasks in (per_task or {}).items()}
        self.seeds_per_cell = dict(seeds_per_cell or {})
        self.select = None if select is None else [str(s) for s in select]
        self.dry_run = dry_run
        del design  # the report's (mixsweep.analysis.design); nothing here reads it
        self.plan: Any = None

    def sweep(self, arguments: List[str]) -> Any:
        from mixsweep.store.atomic import atomic_write_text
        from mixsweep.sweeping.expand import study_jobs
        from mixsweep.sweeping.overrides import user_keys
        from mixsweep.sweeping.plan import build_plan

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        # What the launch sets (ARGS, task, seeds...) beats what a cell sets: drop the cell's override of that key.
        jobs = study_jobs(str(self.config.get("sweep")), overrides, self.cells, self.select,
                          keep_keys=user_keys(arguments),
                          per_task=self.per_task, seeds_per_cell=self.seeds_per_cell)

        loader = self.hydra_context.config_loader
        self.plan = build_plan(jobs, lambda ov: loader.load_sweep_config(self.config, list(ov)))
        self.plan.print_summary()
        if self.dry_run:
            return []
        self.plan.write_view()  # the study is a view of the store, even when every run is done
        if not self.plan.todo:
            return []

        self.plan.start_progress()
        todo = [job.overrides for job in self.plan.todo]
        self.overrides = list(BasicSweeper.split_overrides_to_chunks(todo, self.max_batch_size))
        sweep_dir = self.plan.sweep_dir()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))

        returns = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            # Jobs record their own failures (status "failed") and return normally, so one bad
            # cell never aborts the batch.
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            initial_job_idx += len(batch)
            returns.append(results)
        return returns
