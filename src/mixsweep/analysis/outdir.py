"""The folder a report or the figures go to: checked before anything is drawn, left clean when a write fails.

:func:`writing_into` refuses a system folder (the store's one location check,
:func:`mixsweep.store.runs.check_location`), checks that the folder takes a file, and turns a write that
fails on the way (a full disk, a read-only file system) into one line. What the command created
before it failed is removed again, so a failed report leaves no empty ``figures/`` and no report
without its figures; files it replaced keep their new, complete version (each is written
atomically).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mixsweep.errors import UserError
from mixsweep.store import runs as store

# errnos of a write that the file system refused: worth one line, not a traceback
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                          errno.EFBIG, errno.ENOENT, errno.ENOTDIR, errno.EEXIST})
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def writing_into(out: Path, *, what: str, writes: str, given: bool, subdirs: tuple[str, ...] = ()) -> Iterator[None]:
    """Check ``out`` (``what``, e.g. "report folder", holds ``writes``), then run the body; on failure
    remove what the body created in ``out`` and in its ``subdirs``, and raise a one-line UserError
    for a refused write. ``given``: the folder came from ``--out`` (else it is the default one)."""
    fix = "choose another folder with --out DIR" if given else "write it elsewhere with --out DIR"
    store.check_location(out, what=what, writes=writes, option="--out DIR")
    before = _entries(out, subdirs)
    missing = [p for p in (out, *out.parents) if not p.exists()]  # what mkdir will make
    try:
        _probe(out)
        yield
    except BaseException as e:
        _remove_new(out, subdirs, before, missing)
        cause = write_error(e)
        if cause is None or isinstance(e, UserError):
            raise
        raise UserError(_message(cause, out, what, fix)) from e


def write_error(e: BaseException) -> OSError | None:
    """The file system's refusal behind ``e``: ``e`` itself, or an OSError in its chain. A library may
    turn it into another error while it cleans up (matplotlib's PDF writer ends a full disk in
    ``AttributeError: 'Stream' object has no attribute 'pos'``, or a zlib error)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def _message(e: OSError, out: Path, what: str, fix: str) -> str:
    # Name the folder (or the part of its path at fault), never a temp file inside it.
    culprit = Path(e.filename) if e.filename and Path(e.filename) in (out, *out.parents) else out
    if e.errno in FULL:
        return f"the disk is full ({e.strerror}) writing into {out}: free disk space or {fix}"
    if e.errno in READ_ONLY:
        return f"the folder {culprit} is read-only ({e.strerror}): {fix}"
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"the {what} {out} cannot be made: {_file_in_path(out)} is a file, not a folder: {fix}"
    if e.errno == errno.ENOENT:
        return f"the {what} {out} does not exist and cannot be created there ({e.strerror}): {fix}"
    return f"cannot write into {out} ({e.strerror or e}): {fix}"


def _file_in_path(out: Path) -> Path:
    return next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), out)


def _probe(out: Path) -> None:
    """Create ``out`` and one empty file in it, before anything is computed."""
    out.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=out, prefix=".write-check.", suffix=".tmp")
    os.close(fd)
    os.unlink(probe)


def _entries(out: Path, subdirs: tuple[str, ...]) -> set[Path] | None:
    """What ``out`` and its ``subdirs`` hold now; None if ``out`` does not exist (then all of it is new)."""
    if not out.is_dir():
        return None
    found = {out / name for name in os.listdir(out)}
    for sub in subdirs:
        if (out / sub).is_dir():
            found |= {out / sub / name for name in os.listdir(out / sub)}
    return found


def _remove_new(out: Path, subdirs: tuple[str, ...], before: set[Path] | None, missing: list[Path]) -> None:
    """Remove the files and empty folders created in ``out`` (and ``subdirs``) since ``before``, and
    the folders of ``missing`` (``out`` and the parents that did not exist), when empty."""
    now = _entries(out, subdirs) or set()
    # deepest first, so that a new folder is empty by the time it is removed
    for path in sorted(now - (before or set()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
    for path in missing:  # deepest first
        try:
            path.rmdir()
        except OSError:
            break
