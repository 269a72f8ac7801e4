"""Turn ``mixsweep sweep`` arguments into one Hydra multirun, with one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsweep.errors import UserError
from mixsweep.paths import CONF_DIR, hydra_searchpath_override, sweep_names
from mixsweep.sweeping.expand import method_settings_added


@dataclass
class SweepRequest:
    sweep: str = "smoke"
    task: str | None = None
    seeds: int | None = None
    launcher: str | None = None
    results: str = "results"
    workers: int | None = None
    overrides: list[str] = field(default_factory=list)
    dry_run: bool = False
    cells: list[str] | None = None  # a subset of the study's cells, by name

    def __post_init__(self) -> None:
        self.overrides = method_settings_added(self.overrides)



def options(group_dir: Path) -> list[str]:
    return sorted(p.stem for p in group_dir.glob("*.yaml"))


def validate(req: SweepRequest) -> None:
    """Catch the common mistakes before Hydra does, so each gets a one-line error."""
    if req.sweep not in sweep_names():
        raise UserError(f"unknown sweep '{req.sweep}': choose one of {', '.join(sweep_names())} (sweeps/*.yaml)")
    if req.task is not None:
        for task in req.task.split(","):
            if task not in options(CONF_DIR / "task"):
                raise UserError(
                    f"unknown task '{task}': choose one of {', '.join(options(CONF_DIR / 'task'))} (conf/task/*.yaml)"
                )
    if req.launcher is not None and req.launcher not in options(CONF_DIR / "launcher"):
        raise UserError(
            f"unknown launcher '{req.launcher}': choose one of {', '.join(options(CONF_DIR / 'launcher'))}"
        )
    if req.seeds is not None and req.seeds <= 0:
        raise UserError(f"SEEDS must be a positive number of restarts, got {req.seeds}: e.g. SEEDS=20")
    if req.workers is not None and req.workers <= 0:
        raise UserError(f"WORKERS must be positive, got {req.workers}")
    for ov in req.overrides:
        if "=" not in ov:
            raise UserError(f"override '{ov}' is not key=value: write ARGS=\"key=value other.key=value\"")
    if not req.dry_run:
        _check_writable(Path(req.results))
    from mixsweep import store

    store.check_no_legacy(req.results, req.sweep)


def _check_writable(results: Path) -> None:
    """Fail before launching if RESULTS cannot be created or written, without creating it,
    so that a launch rejected for any reason leaves nothing behind."""
    existing = next(p for p in (results.absolute(), *results.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"results directory '{results}' cannot be written ({existing} is not a writable directory): "
            "choose another with RESULTS=DIR"
        )


def hydra_overrides(req: SweepRequest) -> list[str]:
    # Quoted: Hydra would read a study named 2024 or nan as a number, not as the file's name.
    ov = [hydra_searchpath_override(), f"+sweeps='{req.sweep}'", f"paths.results={req.results}"]
    if req.task:
        ov.append(f"task={req.task}")
    if req.seeds:
        ov.append(f"seed=range(0,{req.seeds})")
    if req.launcher:
        ov.append(f"launcher={req.launcher}")
    if req.launcher == "joblib":
        n = req.workers or 2
        ov.append(f"hydra.launcher.n_jobs={n}")
        if not any(o.startswith("threads=") for o in req.overrides):
            ov.append(f"threads={max(1, (os.cpu_count() or 1) // n)}")
    if (req.launcher in (None, "local")) and sys.stderr.isatty():
        ov.append("progress=true")
    if req.cells is not None:
        ov.append("hydra.sweeper.select=[" + ",".join(f"'{c}'" for c in req.cells) + "]")
    if req.dry_run:
        ov.append("hydra.sweeper.dry_run=true")
    return ov + list(req.overrides)


def run_multirun(overrides: Sequence[str]) -> Any:
    """Run Hydra's multirun in-process with mixsweep's config dir; Hydra errors become UserErrors."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mixsweep.sweeping.execute import execute

    GlobalHydra.instance().clear()
    try:
        hydra = Hydra.create_main_hydra2(task_name="mixsweep", config_search_path=create_config_search_path(str(CONF_DIR)))
        returns = hydra.multirun(config_name="config", task_function=execute, overrides=list(overrides))
        raise_first_job_error(returns)
        return returns
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(_one_line(e)) from e
    except Exception as e:
        from mixsweep.slurm import scheduler_error

        error = scheduler_error(e)
        if error is None:
            raise
        raise error from e
    finally:
        GlobalHydra.instance().clear()


def raise_first_job_error(returns: Any) -> None:
    """Re-raise the first exception a job ended with (a bad-input UserError, in practice).

    Every launcher (basic, joblib, submitit) catches a job's exception into its ``JobReturn``
    and carries on, so without this a sweep whose data or device is wrong would exit 0. The
    exception is read from ``_return_value``: the public getter also prints a second stderr line.
    """
    from hydra.core.utils import JobStatus

    for batch in returns or []:
        for job in batch:
            if job.status == JobStatus.FAILED:
                raise job._return_value


def _one_line(e: Exception) -> str:
    msg = " ".join(str(e).split())
    if "Could not override" in msg or "not in struct" in msg:
        key = msg.split("'")[1] if "'" in msg else "?"
        return (f"unknown config key '{key}' in the overrides: check the spelling (print the config with "
                f"`mixsweep plan --show-config`), or write +{key}=VALUE to add a new key")
    if "Could not find" in msg or "Could not load" in msg:
        return f"{msg.split('Available options')[0].strip()}: check the option name in conf/ or sweeps/"
    return f"{msg[:300]}: check the overrides"
