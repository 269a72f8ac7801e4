"""The results store: one directory per run, atomic records, per-run locks.

Layout: ``<results>/<sweep>/<task>/<run_id>/{result.json, curve.jsonl, .lock}``.
``result.json`` is written last and atomically, so its presence is the commit point of a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from mixsweep.atomic import atomic_write_json, atomic_write_jsonl, remove_stale_tmp
from mixsweep.errors import UserError
from mixsweep.records import RunRecord

RESULT = "result.json"
CURVE = "curve.jsonl"
LOCK = ".lock"
_WARNED: set[Path] = set()


def run_dir(results: str | Path, sweep: str, task: str, rid: str) -> Path:
    return Path(results) / sweep / task / rid


def read_record(directory: Path) -> RunRecord | None:
    """The stored record, or None if absent. A corrupt record is reported and treated as absent."""
    path = Path(directory) / RESULT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return RunRecord.from_dict(json.loads(text))
    except (ValueError, TypeError) as e:
        if path not in _WARNED:  # plan, execute and progress lines all read it: say it once
            _WARNED.add(path)
            print(f"mixsweep: warning: corrupt record {path} ({e}); the run will be redone", flush=True)
        return None


def is_final(record: RunRecord | None) -> bool:
    """ok and diverged are outcomes of the config; failed (an exception) is retried."""
    return record is not None and record.status in ("ok", "diverged")


def write_record(directory: Path, record: RunRecord) -> None:
    """Write the curve, then the record (the commit point); a full disk becomes a one-line error."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(directory / CURVE, record.eval_curve)
        atomic_write_json(directory / RESULT, record.to_dict())
    except OSError as e:
        raise UserError(
            f"cannot write the record of run {record.run_id} to {directory} ({e.strerror or e}): "
            "free disk space or choose another results directory with RESULTS=DIR"
        ) from e


def discard_unfinished(directory: Path) -> None:
    """Remove a run directory that holds no record, and its task directory if that is left empty.

    A run that stops without an outcome (bad input, a pruned trial, Ctrl-C) then leaves nothing
    in the store. Call it while holding the run's lock; a directory with a record is kept.
    """
    if (directory / RESULT).exists():
        return
    remove_stale_tmp(directory)
    for name in (CURVE, LOCK):
        (directory / name).unlink(missing_ok=True)
    for d in (directory, directory.parent):
        try:
            d.rmdir()
        except OSError:  # not empty: other runs, or files this function does not own
            return


@contextmanager
def run_lock(directory: Path) -> Iterator[bool]:
    """Try to take the run's lock without waiting; yields whether this process holds it.

    The lock is an OS file lock, so a killed process releases it. Stale temp files from a
    killed writer are removed once the lock is held.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        remove_stale_tmp(directory)
        yield True
    finally:
        lock.release()
