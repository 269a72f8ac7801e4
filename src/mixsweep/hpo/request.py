"""What one ``mixsweep hpo`` invocation asks for, and the names and overrides derived from it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsweep.hpo.space import SearchSpace, to_overrides

# Overrides that the HPO driver (or a confirming sweep) sets itself.
RESERVED = ("task", "seed", "sweep", "cell", "paths.results")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class HpoRequest:
    task: str
    space: str = "mixout"
    trials: int = 30  # total cap on COMPLETE + PRUNED trials, across relaunches and workers
    workers: int = 1
    results: str = "results"
    seeds: int = 3
    study: str | None = None
    storage: str | None = None  # an RDB URL, or a journal file path; default: <study dir>/journal.log
    penalty: float = 0.0
    multi_objective: bool = False
    retry_failed: int = 0
    launcher: str = "local"  # local | slurm | submitit_local
    sampler_seed: int = 0
    prune: bool = True
    prune_startup: int = 3  # trials that must finish before the median pruner acts
    stale_after_s: float = 600.0  # a RUNNING trial without a heartbeat for this long is failed
    failure: tuple[str, ...] = ("lee2020", "majority")
    threads: int | None = None  # torch threads per run (set when local workers share the CPU)
    overrides: list[str] = field(default_factory=list)
    # hydra.launcher.KEY=VALUE for --launcher slurm (partition, account, ...): how the workers are
    # scheduled, not what they compute, so a relaunch may change them.
    launcher_overrides: list[str] = field(default_factory=list)

    @property
    def study_name(self) -> str:
        return self.study or f"{self.task}-{Path(self.space).stem}"

    @property
    def sweep(self) -> str:
        """The results-store sweep that holds every trial's runs."""
        return f"hpo-{self.study_name}"

    @property
    def study_dir(self) -> Path:
        return Path(self.results) / "hpo" / self.study_name

    @property
    def storage_target(self) -> str:
        """The RDB URL or journal file path (what ``optuna-dashboard`` takes)."""
        return self.storage or str(self.study_dir / "journal.log")

    def valid_name(self) -> bool:
        return bool(_NAME.match(self.study_name))

    def base_overrides(self, space: SearchSpace) -> list[str]:
        """Space base, then the user's ARGS (which win over the base)."""
        return [*space.base, *self.overrides]

    def run_overrides(self, space: SearchSpace, params: dict[str, Any], seed: int, cell: str) -> list[str]:
        """One run of a trial: task, base, ARGS, the trial's values (which win), then identity."""
        threads = [f"threads={self.threads}"] if self.threads and not _sets(self.overrides, "threads") else []
        return [f"task={self.task}", *self.base_overrides(space), *threads, *to_overrides(params),
                f"seed={seed}", f"sweep={self.sweep}", f"cell={cell}", f"paths.results={self.results}"]

    def settings(self, space: SearchSpace) -> dict[str, Any]:
        """What defines the objective; a study keeps these, and a relaunch must match them."""
        return {"task": self.task, "space": space.spec(), "overrides": list(self.overrides), "seeds": self.seeds,
                "penalty": self.penalty, "multi_objective": self.multi_objective, "failure": list(self.failure)}


LAUNCHER_PREFIX = "hydra.launcher."


def split_launcher_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """ARGS -> (run overrides, ``hydra.launcher.*`` overrides), as ``make sweep`` takes both in ARGS."""
    launcher = [o for o in overrides if o.startswith(LAUNCHER_PREFIX)]
    return [o for o in overrides if not o.startswith(LAUNCHER_PREFIX)], launcher


def _sets(overrides: list[str], key: str) -> bool:
    from mixsweep.sweeping.overrides import override_key

    return any(override_key(o) == key for o in overrides)
