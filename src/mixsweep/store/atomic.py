"""Crash-safe writes: a reader sees the old file or the new one, never half of one.

Every file the harness writes for others to read (records, views, reports, figures, run
tables, weight and token caches) goes through this module: a temp name beside the target,
fsync, then an atomic rename. Stray ``.*.tmp`` entries from a crash are ignored by readers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory, fsync, then rename.

    ``os.replace`` is atomic on POSIX file systems, so a crash leaves either no file, the
    previous file, or the complete new one. Stray ``*.tmp`` files from a crash are ignored
    by every reader and swept by :func:`remove_stale_tmp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        # mkstemp makes the file owner-only (0600); results on a shared cluster file system
        # must be readable by the group like any file the user writes.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Let ``write(tmp_path)`` produce the file (a library's own saver: ``torch.save``,
    ``savefig``, ``to_parquet``), then fsync it and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_build_dir(final: str | os.PathLike, build: Callable[[Path], Any]) -> bool:
    """Let ``build(tmp_dir)`` fill a fresh directory, then rename it onto ``final``.

    Returns False if ``final`` appeared meanwhile (another builder won the race; its copy is
    kept and ours discarded), True if ours was put in place.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=TMP_SUFFIX))
    try:
        build(tmp / "data")
        try:
            os.rename(tmp / "data", final)
        except OSError:
            if not final.is_dir():
                raise  # not a lost race: a real I/O error
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in rows))


def remove_stale_tmp(directory: str | os.PathLike) -> int:
    """Delete temp files that a killed writer left in ``directory``; return how many."""
    n = 0
    for p in Path(directory).glob(f".*{TMP_SUFFIX}"):
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def _json_default(o: Any) -> Any:
    # numpy scalars and paths show up in metrics and configs.
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
