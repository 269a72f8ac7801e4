"""Turn ``mixsweep sweep`` arguments into one Hydra multirun, with one-line errors."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mixsweep.config.paths import CONF_DIR, hydra_searchpath_override, search_roots, sweep_file, sweep_names
from mixsweep.errors import UserError
from mixsweep.sweeping.request import SweepRequest


def options(group_dir: Path) -> list[str]:
    return sorted(p.stem for p in group_dir.glob("*.yaml"))


def validate(req: SweepRequest) -> None:
    """Catch the common mistakes before Hydra does, so each gets a one-line error."""
    if req.sweep not in sweep_names():
        raise UserError(f"unknown sweep '{req.sweep}': choose one of {', '.join(sweep_names())} (sweeps/*.yaml)")
    _check_study_name(req.sweep)
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
    if req.task is not None:
        _check_narrowing(req)
    from mixsweep.store import runs as store

    store.check_location(req.results)
    if not req.dry_run:
        _check_writable(Path(req.results))
    elif Path(req.results).exists() and not Path(req.results).is_dir():
        raise UserError(f"results directory '{req.results}' is a file, not a folder: choose another with RESULTS=DIR")
    store.check_no_legacy(req.results, req.sweep)


def _check_study_name(sweep: str) -> None:
    """One name per study, its file's: a ``sweep:`` key that differs would file the runs under
    another study's view (and mix the two in its report)."""
    import yaml

    path = sweep_file(sweep)
    if path is None:
        return
    try:
        declared = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("sweep", sweep)
    except (yaml.YAMLError, AttributeError):
        return  # a syntax error is reported, with its line, when Hydra reads the file
    if str(declared) != sweep:
        raise UserError(f"{path} says 'sweep: {declared}' but a study's name is its file's ({sweep}): "
                        f"write 'sweep: {sweep}' in it, or rename the file to {declared}.yaml")


def _check_narrowing(req: SweepRequest) -> None:
    """TASK only narrows a study: a task it does not list would silently change its meaning."""
    from mixsweep.sweeping.preflight import study_tasks

    with hydra_errors():
        listed = study_tasks(req.sweep)
    for task in req.task.split(","):
        if task not in listed:
            raise UserError(
                f"task '{task}' is not in study '{req.sweep}' (its tasks: {', '.join(listed)}): "
                f"choose one of those, or another study with SWEEP=/--sweep (smoke runs rt_polarity)"
            )


def _check_writable(results: Path) -> None:
    """Fail before launching if RESULTS cannot be created or written, without creating it,
    so that a launch rejected for any reason leaves nothing behind."""
    existing = next(p for p in (results.absolute(), *results.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"results directory '{results}' cannot be written ({existing} is not a writable directory): "
            "choose another with RESULTS=DIR"
        )


def run_multirun(overrides: Sequence[str]) -> Any:
    """Run Hydra's multirun in-process with mixsweep's config dir; Hydra errors become UserErrors."""
    from mixsweep.sweeping.execute import execute
    from mixsweep.sweeping.hydra_adapter import hydra_app

    try:
        with hydra_errors(), hydra_app(CONF_DIR) as hydra:
            returns = hydra.multirun(config_name="config", task_function=execute, overrides=list(overrides))
        raise_first_job_error(returns)
        return returns
    except Exception as e:
        from mixsweep.sweeping.slurm import scheduler_error

        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            # Hydra's own files (.hydra/config.yaml), the view or a record: the runs already
            # recorded are complete (each is written atomically) and a relaunch skips them
            raise UserError(f"the disk is full ({e.strerror}: {e.filename or 'a results file'}): free disk space "
                            "or choose another results directory with RESULTS=DIR, then relaunch the same command "
                            "(finished runs are kept and skipped)") from e
        error = scheduler_error(e)
        if error is None:
            raise
        raise error from e


def hydra_introspect(req: SweepRequest, *, cfg: str | None, resolve: bool, info: str | None) -> None:
    """Hydra's own ``--cfg job|hydra|all`` and ``--info [topic]`` for the request's first run."""
    from hydra.core.global_hydra import GlobalHydra

    from mixsweep.sweeping.compose import sweep_job_overrides
    from mixsweep.sweeping.hydra_adapter import hydra_app

    GlobalHydra.instance().clear()  # composing the first job below starts (and leaves) a Hydra of its own
    with hydra_errors():
        first = sweep_job_overrides(req)[0]
    overrides = [hydra_searchpath_override(), *first]
    with hydra_errors(), hydra_app(CONF_DIR) as hydra:
        if info is not None:
            hydra.show_info(info, config_name="config", overrides=overrides)
        else:
            hydra.show_cfg(config_name="config", overrides=overrides, cfg_type=cfg, package=None, resolve=resolve)


@contextlib.contextmanager
def hydra_errors() -> Iterator[None]:
    """Hydra's and OmegaConf's exceptions (and YAML errors in a study file) as one-line UserErrors."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(_yaml_error(e) or _one_line(e)) from e
    except Exception as e:
        line = _yaml_error(e)
        if line is None:
            raise
        raise UserError(line) from e


def _yaml_error(e: BaseException) -> str | None:
    """``file:line:col: problem: fix`` for a YAML syntax error anywhere in the exception chain."""
    import yaml

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
            mark = e.problem_mark
            where = mark.name if mark.name and not mark.name.startswith("<") else _yaml_file_of(e)
            problem = " ".join(f"{e.context or ''} {e.problem or ''}".split())
            return (f"{where}:{mark.line + 1}:{mark.column + 1}: YAML error: {problem}: "
                    "fix the file's syntax (indentation, a missing ':' or an unclosed bracket)")
        e = e.__cause__ or e.__context__
    return None


def _yaml_file_of(e: BaseException) -> str:
    """The study file whose text contains the erroneous snippet (PyYAML often sees only a string)."""
    snippet = (getattr(e.problem_mark, "buffer", None) or "").rstrip("\0")
    for root in search_roots():
        for path in sorted((root / "sweeps").glob("*.yaml")):
            if snippet and path.read_text(errors="replace") == snippet:
                return str(path)
    return "<a study or config file>"


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
        head, _, options = msg.partition("Available options")
        names = options.partition(":")[2].split("Config search path")[0].split()
        choose = f"choose one of {', '.join(names)}" if names else "check the option name in conf/ or sweeps/"
        return f"{head.strip()}: {choose}"
    return f"{msg[:300]}: check the overrides"

