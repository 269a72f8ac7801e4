"""The results store: every run once, by run id; a study is a view (the runs its cells need).

Layout (this module is the only code that knows it)::

    <results>/runs/<run_id>/{result.json, curve.jsonl, .lock}   one directory per run, for every study
    <results>/runs/<run_id>/{outputs,representations}.npz      per-example dev outputs (optional, #22)
    <results>/<sweep>/view.json                                  the study: [{run_id, task, cell}, ...]

A run id hashes the semantic config without the study name, so a run that two studies need
(Table 1's mixout(w_pre, 0.7) rows are Fig. 4's) is stored, locked and trained once. ``result.json``
is written last and atomically, so its presence is the commit point of a run. A view is written
when the study is planned for a launch, and grows (a union) as more of the study is launched.

Results written before this layout (``<results>/<sweep>/<task>/<run_id>/``) are moved in by
:func:`migrate` (``mixsweep store migrate``), which loses nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from mixsweep.errors import UserError
from mixsweep.records import RunRecord
from mixsweep.store.atomic import atomic_write_json, atomic_write_jsonl, remove_stale_tmp

RUNS = "runs"
VIEW = "view.json"
RESULT = "result.json"
CURVE = "curve.jsonl"
LOCK = ".lock"
OUTPUTS = "outputs.npz"  # per-example dev outputs (mixsweep.store.outputs); absent in runs recorded before #22
REPRESENTATIONS = "representations.npz"  # fp16 dev representations at the final checkpoint; same
_RUN_ID = re.compile(r"^[0-9a-f]{12}$")
_WARNED: set[Path] = set()


# Where a store must never be made: the system's own folders (a typo like RESULTS=/ would write /runs).
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin",
                 "/sys", "/usr")
_SYSTEM_DIRS = ("/", "/home", "/mnt", "/media", "/opt", "/root", "/run", "/srv", "/tmp", "/var")


def check_location(path: str | Path, *, what: str = "results directory",
                   writes: str = "a store writes runs/ and one folder per study there",
                   option: str = "RESULTS=DIR (e.g. RESULTS=results)") -> None:
    """Refuse the file-system root and the system's folders as a place mixsweep writes to.

    The one check of every output folder: a results store (``RESULTS=``/``--results``), a report's
    or the figures' ``--out``, an HPO journal's folder. ``what`` names the folder in the error,
    ``writes`` says what would land there, ``option`` is how to choose another.
    """
    resolved = Path(path).expanduser().resolve()
    where = str(resolved)
    if where in _SYSTEM_DIRS or any(where == t or where.startswith(t + "/") for t in _SYSTEM_TREES):
        kind = "the file-system root" if where == "/" else "a system directory" + (f" ({where})" if where != str(path) else "")
        raise UserError(f"{what} '{path}' is {kind}: {writes}; choose a folder of your own with {option}")


def run_dir(results: str | Path, rid: str) -> Path:
    return Path(results) / RUNS / rid


def lookup(results: str | Path, rid: str) -> RunRecord | None:
    """The stored record of run ``rid``, or None (absent or corrupt)."""
    return read_record(run_dir(results, rid))


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
    """Remove a run directory that holds no record.

    A run that stops without an outcome (bad input, a pruned trial, Ctrl-C) then leaves nothing
    in the store. Call it while holding the run's lock; a directory with a record is kept.
    ``runs/`` itself stays: another process may be creating a run in it at this moment.
    """
    if (directory / RESULT).exists():
        return
    remove_stale_tmp(directory)
    for name in (CURVE, LOCK, OUTPUTS, REPRESENTATIONS):
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # not empty: files this function does not own
        pass


@contextmanager
def run_lock(directory: Path) -> Iterator[bool]:
    """Try to take the run's lock without waiting; yields whether this process holds it.

    The lock is an OS file lock, so a killed process releases it. Stale temp files from a
    killed writer are removed once the lock is held. Every study locks the same directory for
    the same run, so the guarantee holds across studies.
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


def wait_for_run(results: str | Path, rid: str) -> None:
    """Block until no process holds run ``rid``'s lock (it finished or died)."""
    with FileLock(str(run_dir(results, rid) / LOCK)):
        pass


# ---- study views ------------------------------------------------------------------------------

def study_dir(results: str | Path, sweep: str) -> Path:
    return Path(results) / sweep


def read_view(results: str | Path, sweep: str) -> list[dict[str, str]]:
    """The study's entries ``{run_id, task, cell}``, in the order they were first planned."""
    path = study_dir(results, sweep) / VIEW
    try:
        entries = list(json.loads(path.read_text(encoding="utf-8"))["runs"])
        for e in entries:  # each names a run folder under runs/: a plain name, never a path
            if not isinstance(e, dict) or not isinstance(e.get("run_id"), str) or not e["run_id"] \
                    or "/" in e["run_id"] or e["run_id"].startswith("."):
                raise ValueError(f"entry {str(e)[:40]} is not {{run_id, task, cell}}")
        return entries
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"the study view {path} is unreadable ({e}): delete it and relaunch the sweep "
                        "to rewrite it (no run is lost)") from e


def add_to_view(results: str | Path, sweep: str, entries: Iterable[dict[str, str]]) -> None:
    """Add runs to the study's view (a union keyed by run id; a later cell name wins).

    Serialised by a lock, so two launches of one study, or its parallel jobs, never lose an entry.
    """
    entries = [{"run_id": str(e["run_id"]), "task": str(e["task"]), "cell": str(e["cell"])} for e in entries]
    if not entries:
        return
    directory = study_dir(results, sweep)
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / ".view.lock")):
        merged = {e["run_id"]: e for e in read_view(results, sweep)}
        if all(merged.get(e["run_id"]) == e for e in entries):
            return
        merged.update({e["run_id"]: e for e in entries})
        atomic_write_json(directory / VIEW, {"sweep": sweep, "runs": list(merged.values())})


def has_study(results: str | Path, sweep: str) -> bool:
    return (study_dir(results, sweep) / VIEW).is_file() or bool(legacy_runs(results, sweep))


def iter_records(results: str | Path, sweep: str | None = None,
                 warnings: list[str] | None = None) -> Iterator[RunRecord]:
    """The committed records of a study (its view), or of the whole store (``sweep=None``).

    A study's records carry the study's own name and cell name (a run another study trained
    keeps its outcome and is shown under this study's cell). Runs without a record are skipped;
    a record that does not parse is skipped and described in ``warnings``.
    """
    if sweep is None:
        root = Path(results) / RUNS
        rids = sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []
        entries = [{"run_id": r} for r in rids]
    else:
        entries = read_view(results, sweep)
    for e in entries:
        record = _read_checked(run_dir(results, e["run_id"]) / RESULT, warnings)
        if record is None:
            continue
        if sweep is not None:
            record.sweep, record.cell = sweep, e.get("cell") or record.cell
        yield record


def _read_checked(path: Path, warnings: list[str] | None) -> RunRecord | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return RunRecord.from_dict(json.loads(text))
    except (ValueError, TypeError, AttributeError) as e:
        if warnings is not None:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.append(f"corrupt record {path}: {why}; left out (relaunching the sweep redoes the run)")
        return None


def find_runs(results: str | Path, prefix: str) -> list[Path]:
    """Directories of the stored runs whose id starts with ``prefix``."""
    root = Path(results) / RUNS
    if not root.is_dir():
        return []
    # a plain prefix test, not a glob: '*' or '[0-9]' in a prefix must match nothing
    return sorted(p for p in root.iterdir() if p.name.startswith(prefix) and _RUN_ID.match(p.name)
                  and (p / RESULT).is_file())


# ---- the layout before one store (results/<sweep>/<task>/<run_id>/) ----------------------------

def legacy_runs(results: str | Path, sweep: str | None = None) -> list[Path]:
    """Run directories in the old per-study layout, of one study or of every study."""
    root = Path(results)
    if not root.is_dir():
        return []
    studies = [root / sweep] if sweep else [p for p in root.iterdir() if p.is_dir() and p.name != RUNS]
    out = []
    for study in studies:
        if not study.is_dir() or study.name.startswith("."):
            continue
        runs = [run for task in _visible_dirs(study) for run in _visible_dirs(task) if _RUN_ID.match(run.name)]
        # A study folder is in the old layout when a run of it holds a record; its runs without one
        # (unfinished when the old sweep stopped) go with it. Any other folder is left alone.
        if any(_holds_record(run) for run in runs):
            out += runs
    return sorted(out)


def _holds_record(directory: Path) -> bool:
    """Whether ``directory/result.json`` is a readable run record: what makes a folder an old-layout
    run, rather than any folder whose name happens to look like a run id."""
    try:
        record = RunRecord.from_dict(json.loads((directory / RESULT).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return False
    return record.run_id == directory.name


def check_no_legacy(results: str | Path, sweep: str) -> None:
    """A study still in the old layout is migrated before it is planned, run or reported."""
    if legacy_runs(results, sweep):
        raise UserError(
            f"{Path(results) / sweep} holds runs in the old layout (<sweep>/<task>/<run_id>/): run "
            f"`mixsweep store migrate --results {results}` once to move them into {Path(results) / RUNS}/ "
            "(nothing is lost)")


def check_store(results: str | Path) -> None:
    """Refuse what is not a results store (a missing path, a file, a folder holding no record),
    so that ``store migrate`` never restructures an unrelated folder."""
    root = Path(results)
    check_location(root)
    if not root.exists():
        raise UserError(f"results directory '{results}' does not exist: pass the folder that holds your runs "
                        "with --results DIR")
    if not root.is_dir():
        raise UserError(f"'{results}' is a file, not a results directory: pass the folder that holds your runs "
                        "with --results DIR")
    if not legacy_runs(root) and not find_runs(root, ""):
        raise UserError(f"'{results}' is not a results store (no run record <sweep>/<task>/<run_id>/result.json "
                        f"or runs/<run_id>/result.json in it): pass the folder that holds your runs with --results DIR")


def migrate(results: str | Path, dry_run: bool = False,
            say: Callable[[str], None] | None = None) -> dict[str, int]:
    """Move every old-layout run into ``<results>/runs/`` and list it in its study's view.

    An old-layout run is ``<results>/<sweep>/<task>/<run_id>/`` holding a readable record; nothing
    else is touched. Nothing is lost: a run that is already in the store (the same config run by
    two studies) keeps the stored copy, unless only the old copy is final; the other copy is moved
    to ``<results>/<sweep>/.migrated/<task>/<run_id>/``. ``dry_run`` only tells ``say`` what would be
    done. Returns counts: moved, duplicates, studies.
    """
    check_store(results)
    counts = {"moved": 0, "duplicates": 0, "studies": 0}
    by_study: dict[str, list[Path]] = {}
    for d in legacy_runs(results):
        by_study.setdefault(d.parent.parent.name, []).append(d)
    for sweep, dirs in sorted(by_study.items()):
        if dry_run:
            for d in dirs:
                target = run_dir(results, d.name)
                kept = "beside the stored copy, under .migrated/" if target.exists() else f"to {target}"
                (say or print)(f"would move {d} {kept}")
                counts["duplicates" if target.exists() else "moved"] += 1
            (say or print)(f"would list {len(dirs)} run(s) in {study_dir(results, sweep) / VIEW}")
            counts["studies"] += 1
            continue
        entries = []
        for d in dirs:
            rid, task = d.name, d.parent.name
            target = run_dir(results, rid)
            with run_lock(d) as held:
                if not held:
                    raise UserError(f"run {d} is being executed by another process: wait for the sweep to end, "
                                    "then migrate again")
            record = read_record(d)
            entries.append({"run_id": rid, "task": task, "cell": record.cell if record else ""})
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                keep_old = is_final(record) and not is_final(read_record(target))
                if keep_old:
                    aside = _aside(results, sweep, task, rid)
                    os.replace(target, aside)
                    os.replace(d, target)
                else:
                    os.replace(d, _aside(results, sweep, task, rid))
                counts["duplicates"] += 1
            else:
                os.replace(d, target)
                counts["moved"] += 1
            (target / LOCK).unlink(missing_ok=True)
            try:
                d.parent.rmdir()
            except OSError:
                pass
        add_to_view(results, sweep, entries)
        counts["studies"] += 1
    return counts


def _aside(results: str | Path, sweep: str, task: str, rid: str) -> Path:
    base = study_dir(results, sweep) / ".migrated" / task
    base.mkdir(parents=True, exist_ok=True)
    path, n = base / rid, 1
    while path.exists():
        path, n = base / f"{rid}.{n}", n + 1
    return path


def _visible_dirs(path: Path) -> list[Path]:
    with os.scandir(path) as it:
        return [Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir()]


# ---- per-example outputs and representations (mixsweep.store.outputs) ----------------------------

def write_outputs(directory: Path, outputs) -> None:
    """Write a run's ``outputs.npz`` / ``representations.npz`` (each atomically) before its record, so a
    committed record never points at half a file. ``None`` (recording off, no eval) writes nothing."""
    from mixsweep.store.atomic import atomic_write_with
    from mixsweep.store.outputs import save_npz

    if outputs is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if outputs.outputs:
            atomic_write_with(directory / OUTPUTS,
                              lambda p: save_npz(p, outputs.outputs, outputs.outputs_meta, compress=True))
        if outputs.representations:
            atomic_write_with(directory / REPRESENTATIONS,
                              lambda p: save_npz(p, outputs.representations, outputs.representations_meta,
                                                 compress=False))
    except OSError as e:
        raise UserError(
            f"cannot write the outputs of the run in {directory} ({e.strerror or e}): free disk space, choose "
            "another results directory with RESULTS=DIR, or record less (record.representations=null)") from e


def read_outputs(results: str | Path, rid: str, warnings: list[str] | None = None):
    """``(arrays, meta)`` of run ``rid``'s ``outputs.npz``, or None for a run without one (recorded
    before outputs were kept, or with ``record.outputs=false``) or with a damaged one, which is
    described in ``warnings`` (:func:`damaged_warning`)."""
    from mixsweep.store.outputs import check_output_values, check_outputs

    return _load_checked(run_dir(results, rid) / OUTPUTS, check_outputs, warnings, values=check_output_values)


def read_representations(results: str | Path, rid: str, warnings: list[str] | None = None, data: bool = True):
    """``(arrays, meta)`` of run ``rid``'s ``representations.npz`` (arrays ``rep_<layer>`` fp16 and
    ``positions``), or None for a run without one or with a damaged one (described in ``warnings``).
    ``data=False`` checks the file without reading its matrices (the arrays come back empty)."""
    from mixsweep.store.outputs import check_representations

    return _load_checked(run_dir(results, rid) / REPRESENTATIONS, check_representations, warnings, data)


def _load_checked(path: Path, check, warnings: list[str] | None, data: bool = True, values=None):
    """The one reading of a run's .npz: None when absent, or damaged (then one line in ``warnings``)."""
    from mixsweep.store.outputs import DamagedFile, load_npz

    try:
        got = load_npz(path, check, data)
        if got is not None and values is not None:
            values(*got)
        return got
    except DamagedFile as e:
        if warnings is not None:
            warnings.append(damaged_warning(path, str(e)))
        return None


def damaged_warning(path: Path, why: str) -> str:
    """The one line that reports a damaged outputs or representations file, and what to do."""
    return (f"damaged {path} ({why}): the run is read as one without this file; to redo the run, delete "
            f"{path.parent}/ and relaunch the sweep")


def output_sizes(results: str | Path, rid: str) -> dict[str, int]:
    """Bytes on disk of the run's outputs and representations files (0 when absent)."""
    sizes = {}
    for key, name in (("outputs", OUTPUTS), ("representations", REPRESENTATIONS)):
        try:
            sizes[key] = (run_dir(results, rid) / name).stat().st_size
        except OSError:
            sizes[key] = 0
    return sizes
