"""The results store: one directory per run, atomic records, per-run locks.

Layout: ``<results>/<sweep>/<task>/<run_id>/{result.json, curve.jsonl, .lock}``.
``result.json`` is written last and atomically, so its presence is the commit point of a run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from mixsweep.atomic import atomic_write_json, atomic_write_jsonl, remove_stale_tmp
from mixsweep.records import RunRecord

log = logging.getLogger(__name__)

RESULT = "result.json"
CURVE = "curve.jsonl"
LOCK = ".lock"


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
        log.warning("corrupt record %s (%s): the run will be redone", path, e)
        print(f"mixsweep: warning: corrupt record {path} ({e}); the run will be redone", flush=True)
        return None


def is_final(record: RunRecord | None) -> bool:
    """ok and diverged are outcomes of the config; failed (an exception) is retried."""
    return record is not None and record.status in ("ok", "diverged")


def write_record(directory: Path, record: RunRecord) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(directory / CURVE, record.eval_curve)
    atomic_write_json(directory / RESULT, record.to_dict())


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
