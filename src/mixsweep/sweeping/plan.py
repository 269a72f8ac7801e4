"""A sweep's plan: every run it contains, its run id, and what the store already holds."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mixsweep.config.settings import parse_run
from mixsweep.records import cell_label
from mixsweep.run.progress import duration
from mixsweep.store import runs as store
from mixsweep.store.atomic import atomic_write_json
from mixsweep.store.cell_id import cell_config, cell_id, table_labels
from mixsweep.store.runid import SEED_KEYS, run_id
from mixsweep.sweeping.checks import check_regularizer, inert_methods
from mixsweep.sweeping.overrides import override_key
from mixsweep.sweeping.restarts import CellRestarts

PROGRESS = ".progress.json"


@dataclass
class Job:
    overrides: list[str]
    run_id: str
    task: str
    cell: str
    label: str  # the table label: regularizer label + the knobs this cell differs in (store/cell_id.py)
    state: str  # done | diverged | failed | todo
    directory: Path
    cell_id: str = ""  # the cell's identity: its semantic config without the seeds


@dataclass
class Plan:
    jobs: list[Job]
    results: Path
    sweep: str
    duplicates: int = 0  # grid points that resolve to a run already in the plan
    # (task, cell) -> {method: why}: cells left out on a task where a method of theirs does nothing
    inert: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def todo(self) -> list[Job]:
        return [j for j in self.jobs if j.state in ("todo", "failed")]

    def counts(self) -> Counter:
        return Counter(j.state for j in self.jobs)

    def sweep_dir(self) -> Path:
        return store.study_dir(self.results, self.sweep)

    def summary_lines(self) -> list[str]:
        c = self.counts()
        done = c["done"] + c["diverged"]
        lines = [
            f"sweep '{self.sweep}' -> {self.sweep_dir()}: {len(self.jobs)} runs in "
            f"{len({(j.task, j.cell_id) for j in self.jobs})} cells; {done} done, "
            f"{c['failed']} failed (will retry), {c['todo']} to do"
        ]
        if self.duplicates:
            lines.append(f"  ({self.duplicates} grid points are the same run as another and are run once)")
        lines += inert_lines(self.inert)
        # one row per cell: the name CELLS= takes, and its label where that says more than the name
        by_cell: dict[tuple[str, str, str, str], Counter] = {}
        for j in self.jobs:
            by_cell.setdefault((j.task, j.cell_id, j.cell, j.label), Counter())[j.state] += 1
        width = max([len(cell) for _, _, cell, _ in by_cell] + [len('cell (CELLS=)')])
        labelled = any(cell != label for _, _, cell, label in by_cell)
        lines.append(f"  {'task':<12} {'cell (CELLS=)':<{width}}  runs  done  failed  todo"
                     + ("  label" if labelled else ""))
        for (task, _, cell, label), cc in by_cell.items():
            n = sum(cc.values())
            lines.append(
                f"  {task:<12} {cell:<{width}}  {n:>4}  {cc['done'] + cc['diverged']:>4}  "
                f"{cc['failed']:>6}  {cc['todo']:>4}" + (f"  {label}" if labelled and label != cell else "")
            )
        return lines

    def print_summary(self) -> None:
        print("\n".join(self.summary_lines()), flush=True)

    def write_view(self) -> None:
        """Record the study as a view of the store: the run ids its cells need."""
        store.add_to_view(self.results, self.sweep,
                          [{"run_id": j.run_id, "task": j.task, "cell": j.cell} for j in self.jobs])

    def start_progress(self) -> None:
        """Write the ledger that every job (in any process) reads to print progress lines."""
        c = self.counts()
        atomic_write_json(
            self.sweep_dir() / PROGRESS,
            {
                "started": time.time(),
                "total": len(self.jobs),
                "skipped": c["done"] + c["diverged"],
                "runs": [j.run_id for j in self.jobs],
            },
        )


def _memo_plain(compose: Callable[[Sequence[str]], DictConfig]) -> Callable[[Sequence[str]], dict[str, Any]]:
    """The resolved config of each job as plain data (Hydra's block left out: it resolves only in a job).

    Composing (~0.1 s), copying (~50 ms) and resolving (~10 ms) a config are done once per cell: the
    restarts of a cell differ only in their seeds, which :class:`CellRestarts` fills in.
    """
    from omegaconf import open_dict

    cells: dict[tuple[str, ...], CellRestarts] = {}

    def plain(overrides: Sequence[str]) -> dict[str, Any]:
        seeds = {override_key(o): int(o.split("=", 1)[1]) for o in overrides if override_key(o) in SEED_KEYS}
        rest = tuple(o for o in overrides if override_key(o) not in SEED_KEYS)
        if rest not in cells:
            cfg = compose(rest)
            with open_dict(cfg):
                cfg.pop("hydra", None)
            cells[rest] = CellRestarts(cfg)
        return cells[rest].resolved(seeds)

    return plain


def build_plan(jobs: Sequence[Sequence[str]], compose: Callable[[Sequence[str]], DictConfig]) -> Plan:
    """Compose every job, give it its run id and cell identity, and look it up in the store.

    A run that any study finished is done here too: the store holds each run once, by run id.
    """
    resolved = _memo_plain(compose)
    planned: list[Job] = []
    seen: set[str] = set()
    cells: dict[str, tuple[str, str, dict]] = {}
    duplicates = 0
    left_out: dict[tuple[str, str], dict[str, str]] = {}
    results: Path | None = None
    sweep = ""
    for overrides in jobs:
        cfg = resolved(overrides)
        run = parse_run(cfg)  # planning checked every cell against the schema
        results, sweep = Path(run.paths.results), run.sweep
        rid = run_id(cfg)
        if rid in seen:
            duplicates += 1
            continue
        seen.add(rid)
        task = run.task_name
        directory = store.run_dir(results, rid)
        state = run_state(store.read_record(directory))
        reg = run.regularizer
        check_regularizer(reg)  # before anything is launched or written
        inert = inert_methods(reg, run.task)
        if inert:  # the baseline's run under the method's name: not run
            left_out.setdefault((task, run.cell or cell_label(reg)), inert)
            continue
        label = cell_label(reg)
        cid = cell_id(cfg)
        cells.setdefault(cid, (task, label, cell_config(cfg)))
        planned.append(Job(list(overrides), rid, task, run.cell or label, label, state, directory, cid))
    labels = table_labels(cells)
    for job in planned:
        job.label = labels[job.cell_id]
    return Plan(planned, results or Path("results"), sweep, duplicates, left_out)


def inert_lines(inert: dict[tuple[str, str], dict[str, str]]) -> list[str]:
    """``  not run on stsb: r3f@bertadam, r3f@adamw_hf -- r3f is inactive there: <why>``, one line per
    task and reason."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for (task, cell), methods in inert.items():
        why = "; ".join(f"{m} is inactive there: {reason}" for m, reason in methods.items())
        grouped.setdefault((task, why), []).append(cell)
    return [f"  not run on {task}: {', '.join(cells)} -- {why}" for (task, why), cells in grouped.items()]


def run_state(record) -> str:
    """A planned run's state from its stored record (None: absent or corrupt): done | diverged | failed | todo."""
    return "todo" if record is None else {"ok": "done"}.get(record.status, record.status)


def planned_without_record(results: str | Path, sweep: str, recorded: set[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (task, cell) of the study as launched (its view, which :meth:`Plan.write_view` writes with
    every run of the plan, done or not): ``(runs planned, those without a record)``, where ``recorded``
    holds the run ids that have a (readable) record. Nothing is re-planned or composed."""
    counts: dict[tuple[str, str], list[int]] = {}
    for e in store.read_view(results, sweep):
        n = counts.setdefault((str(e.get("task", "")), str(e.get("cell", ""))), [0, 0])
        n[0] += 1
        n[1] += e["run_id"] not in recorded
    return {cell: (planned, missing) for cell, (planned, missing) in counts.items()}


def progress_line(results: Path, sweep: str) -> str | None:
    """``run 7/220 done (3 skipped, 1 failed) · ETA 2h13m`` from the ledger and the store."""
    path = store.study_dir(results, sweep) / PROGRESS
    try:
        ledger = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    finished = failed = 0
    for rid in ledger["runs"]:
        status = _stored_status(store.run_dir(results, rid))
        if status is None:
            continue
        finished += 1
        failed += status != "ok"
    total, skipped = ledger["total"], ledger["skipped"]
    new = finished - skipped
    remaining = total - finished
    eta = ""
    if new > 0 and remaining > 0:
        eta = " · ETA " + duration((time.time() - ledger["started"]) / new * remaining)
    return f"run {finished}/{total} done ({skipped} skipped, {failed} failed){eta}"


_FINAL_STATUS: dict[Path, str] = {}


def _stored_status(directory: Path) -> str | None:
    """A run's stored status; final ones are remembered, so a progress line after each of N runs
    parses each record once rather than N times."""
    if directory in _FINAL_STATUS:
        return _FINAL_STATUS[directory]
    if not (directory / store.RESULT).exists():
        return None
    record = store.read_record(directory)
    if record is None:
        return None
    if store.is_final(record):
        _FINAL_STATUS[directory] = record.status
    return record.status
