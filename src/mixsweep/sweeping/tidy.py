"""A failed launch leaves a results folder as it found it (issue 15 §1)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from mixsweep.sweeping.request import SweepRequest

HYDRA_CLUTTER = ("multirun.yaml", ".hydra", ".progress.json")
VIEW_LOCK = ".view.lock"


@contextlib.contextmanager
def tidy_after_failure(req: SweepRequest) -> Iterator[None]:
    """A launch that fails leaves no Hydra files in a results folder that holds no run.

    When a job stops the sweep (a data file deleted after the preflight, a node without a GPU) and
    no run of the study has a record, what this launch added is removed: Hydra's multirun.yaml and
    its .hydra/ folder, the progress ledger, the study's view if this launch wrote it, run folders
    of the store holding only a lock nobody holds, and the folders the launch created. What existed
    before (another launch's files) stays.
    """
    from mixsweep.store import runs as store

    results = Path(req.results)
    sweep_dir = store.study_dir(results, req.sweep)
    runs_dir = results / store.RUNS
    created = [p for p in (results, runs_dir, sweep_dir) if not p.exists()]
    before = _entries(sweep_dir)
    runs_before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
    try:
        yield
    except BaseException:
        if sweep_dir.is_dir() and not _has_records(results, req.sweep):
            for path in sorted(_entries(sweep_dir) - before, key=lambda p: len(p.parts)):
                if path.name in (*HYDRA_CLUTTER, store.VIEW, VIEW_LOCK) or path.parent.name == ".hydra":
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    elif path.exists():
                        path.unlink()
            new_runs = (set(runs_dir.iterdir()) if runs_dir.is_dir() else set()) - runs_before
            _remove_unused_run_dirs(sorted(p for p in new_runs if p.is_dir()))
            for path in reversed(created):
                with contextlib.suppress(OSError):
                    path.rmdir()
        raise


def _has_records(results: Path, sweep: str) -> bool:
    from mixsweep.store import runs as store

    try:
        return any(True for _ in store.iter_records(results, sweep, []))
    except Exception:  # an unreadable view: keep everything rather than guess
        return True


def _entries(sweep_dir: Path) -> set[Path]:
    """The study folder's top-level entries and those of its .hydra/ folder."""
    top = set(sweep_dir.iterdir()) if sweep_dir.is_dir() else set()
    hydra = sweep_dir / ".hydra"
    return top | (set(hydra.iterdir()) if hydra.is_dir() else set())


def _remove_unused_run_dirs(runs: list[Path]) -> None:
    """Remove run folders holding nothing but a lock no process holds."""
    from mixsweep.store import runs as store

    for run in runs:
        if [p.name for p in run.iterdir()] != [store.LOCK]:
            continue
        with store.run_lock(run) as held:
            if held:
                (run / store.LOCK).unlink()
        with contextlib.suppress(OSError):
            run.rmdir()
