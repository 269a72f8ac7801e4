"""``mixsweep export mlflow``: a study from the results store into MLflow, after the fact.

One experiment per study (named as the study). One **parent run per cell** (tag ``mixsweep.kind=cell``,
found again by ``mixsweep.cell_id``, ``<task>:<cell id>``): its config (flattened, without the seeds) as params, its delta
(the knobs that tell it from the study's other cells) as the param ``delta``, and the aggregates the
report shows, at step 0 (an update logs the new values; the latest is the one shown):

- ``<selection>.{n, mean, std, median, min, max, n_nan, n_error}`` for each selection protocol the runs
  support (final, best, zhang2021; :func:`mixsweep.analysis.cells.aggregate`, std with ddof 0);
- ``<selection>.fail.<definition>`` for every failure definition that applies to the task
  (lee2020, majority, dodge2020; :mod:`mixsweep.analysis.failures`);
- ``instability.<measure>[.<layer>]`` where the runs stored their outputs
  (:func:`mixsweep.analysis.instability_tables.instability`, point values without the bootstrap).

One **child run per record** (:mod:`mixsweep.tracking.mapping`), found again by ``mixsweep.run_id``.
The study's report (``mixsweep report``) is uploaded to the experiment's artifact location under
``report/`` and its Markdown becomes the experiment's description.

Idempotent: a run whose ``mixsweep.fingerprint`` tag matches what it would be written with is left
alone; a changed record (a failed run redone) replaces its MLflow run (the old one is deleted), and a
changed cell logs its new aggregates; a duplicate (two runs for one record) is deleted. Nothing is
ever added twice.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mixsweep.analysis.cells import aggregate
from mixsweep.analysis.failures import DEFINITIONS, SELECTIONS
from mixsweep.analysis.load import RunTable, load_results
from mixsweep.errors import UserError
from mixsweep.records import RunRecord
from mixsweep.store.cell_id import cell_config
from mixsweep.tracking import mapping, server
from mixsweep.tracking.live import cell_tags

AGGREGATES = ("n", "mean", "std", "median", "min", "max", "n_nan", "n_error")
MAX_DESCRIPTION = 20000  # MLflow's longest experiment tag value (MAX_EXPERIMENT_TAG_VAL_LENGTH)


@dataclass
class Counts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class Exported:
    experiment_id: str
    cells: Counts = field(default_factory=Counts)
    runs: Counts = field(default_factory=Counts)
    duplicates_removed: int = 0
    report: str | None = None  # where the report went, None when the study has none yet


def export_study(results: str | os.PathLike, sweep: str, uri: str) -> Exported:
    """Export study ``sweep`` of the store at ``results`` to the tracker at ``uri`` (see the module doc)."""
    from mixsweep.tracking import require_mlflow

    require_mlflow()
    table = load_results(results, sweep)
    if not table.records:
        raise UserError(f"study '{sweep}' in {results} has no finished run yet: run `mixsweep sweep --sweep {sweep}` "
                        "first, then export")
    try:
        return _export(table, Path(results), sweep, uri)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a tracker that is down or refuses: one line, not a traceback
        if type(e).__module__.startswith(("mlflow", "requests", "urllib3", "sqlalchemy")) or isinstance(e, OSError):
            raise server.unreachable(uri, e) from e
        raise


def _export(table: RunTable, results: Path, sweep: str, uri: str) -> Exported:
    c = server.client(uri)
    exp = server.experiment(c, sweep, results, uri)
    done = Exported(exp)
    existing = server.active_runs(c, exp)
    parents = _by_tag(c, existing, "cell", mapping.CELL_ID, done)
    children = _by_tag(c, existing, "run", mapping.RUN_ID, done)

    cell_of = {str(rid): mapping.cell_key(str(task), str(cid))
               for rid, task, cid in zip(table.runs["run_id"], table.runs["task"], table.runs["cell_id"], strict=True)}
    parent_ids = {}
    for cid, cell in _cells(table, results).items():
        parent_ids[cid] = _export_cell(c, exp, sweep, cid, cell, parents.get(cid), done.cells)
    for record in table.records:
        _export_run(c, exp, record, parent_ids[cell_of[record.run_id]], children.get(record.run_id), done.runs)
    done.report = _export_report(c, exp, results, sweep)
    return done


# --- cells --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    task: str
    label: str
    name: str  # the study's cell name(s)
    delta: str
    config: dict[str, Any]
    n_records: int
    metrics: dict[str, float]


def _cells(table: RunTable, results: Path) -> dict[str, Cell]:
    """:func:`~mixsweep.tracking.mapping.cell_key` -> the cell's identity and aggregates, from the
    analysis' own tables."""
    runs = table.runs
    metrics: dict[tuple[str, str], dict[str, float]] = {}
    for selection in SELECTIONS:
        try:
            agg = aggregate(runs, selection, failures=DEFINITIONS)
        except UserError:  # zhang2021 on runs recorded without the dev halves: that protocol is left out
            continue
        for (task, label), row in agg.iterrows():
            into = metrics.setdefault((task, label), {})
            for name in AGGREGATES:
                _put(into, f"{selection}.{name}", row[name])
            for d in DEFINITIONS:
                _put(into, f"{selection}.fail.{d}", row[f"fail_{d}"])
    for (task, label), values in _instability(table, results).items():
        metrics.setdefault((task, label), {}).update(values)

    by_id = {r.run_id: r for r in table.records}
    cells: dict[str, Cell] = {}
    for (task, cid), group in runs.groupby(["task", "cell_id"], sort=False):
        first = group.iloc[0]
        record = by_id[str(first["run_id"])]
        cells[mapping.cell_key(str(task), str(cid))] = Cell(
            task=str(first["task"]), label=str(first["label"]),
            name=",".join(sorted(set(group["cell"].astype(str)))), delta=str(first["delta"]),
            config=cell_config(record.config) if record.config else {}, n_records=len(group),
            metrics=metrics.get((str(first["task"]), str(first["label"])), {}))
    return cells


def _instability(table: RunTable, results: Path) -> dict[tuple[str, str], dict[str, float]]:
    """``instability.<measure>[.<layer>]`` per (task, label) from the stored outputs (point values)."""
    from mixsweep.analysis.instability_tables import instability

    long = instability(table.runs, table.records, results, "final").long
    out: dict[tuple[str, str], dict[str, float]] = {}
    for row in long.itertuples(index=False):
        key = f"instability.{row.measure}" + (f".{row.layer}" if row.layer else "")
        _put(out.setdefault((row.task, row.regularizer), {}), key, row.value)
    return out


def _export_cell(c, exp: str, sweep: str, cid: str, cell: Cell, existing, counts: Counts) -> str:
    params = {**mapping.params(cell.config), "delta": mapping.text(cell.delta)}
    tags = {**cell_tags(sweep, cell.task, cell.name, cell.label, cid), f"{mapping.PREFIX}delta": mapping.text(
        cell.delta, mapping.MAX_TAG), f"{mapping.PREFIX}records": str(cell.n_records)}
    fp = _digest({"params": params, "tags": tags, "metrics": cell.metrics})
    if existing is not None and existing.data.tags.get(mapping.FINGERPRINT) == fp:
        counts.unchanged += 1
        return existing.info.run_id
    if existing is None:
        run = c.create_run(exp, run_name=f"{cell.task} {cell.name}", tags=tags)
        run_id = run.info.run_id
        counts.new += 1
    else:  # created live, or the cell gained runs: log what changed (params are the same by the cell id)
        run_id = existing.info.run_id
        counts.updated += 1
    metrics = [(k, v, 0) for k, v in cell.metrics.items()]  # one value per cell: the UI draws bars, cell by cell
    server.log(c, run_id, params=params, tags={**tags, "mlflow.runName": f"{cell.task} {cell.name}"},
               metrics=metrics)
    c.set_terminated(run_id, "FINISHED")
    c.set_tag(run_id, mapping.FINGERPRINT, fp)
    return run_id


# --- runs ---------------------------------------------------------------------------------------------


def _export_run(c, exp: str, record: RunRecord, parent: str, existing, counts: Counts) -> None:
    fp = mapping.fingerprint(record)
    if (existing is not None and existing.data.tags.get(mapping.FINGERPRINT) == fp
            and existing.data.tags.get("mlflow.parentRunId") == parent):
        counts.unchanged += 1
        return
    if existing is not None:  # metric histories only grow in MLflow: a changed record gets a fresh run
        c.delete_run(existing.info.run_id)
        counts.updated += 1
    else:
        counts.new += 1
    start_ms, end_ms = _times(record)
    run = c.create_run(exp, start_time=start_ms, run_name=mapping.run_name(record),
                       tags={**mapping.tags(record), "mlflow.parentRunId": parent})
    server.log(c, run.info.run_id, params=mapping.params(record.config), metrics=mapping.metrics(record),
               timestamp_ms=end_ms)
    c.set_terminated(run.info.run_id, mapping.status(record.status), end_time=end_ms)
    c.set_tag(run.info.run_id, mapping.FINGERPRINT, fp)


def _times(record: RunRecord) -> tuple[int, int]:
    """(start, end) in ms: the record is written when the run ends; it ran ``times.total_s`` before."""
    try:
        end = _dt.datetime.fromisoformat(record.created).timestamp()
    except (TypeError, ValueError):
        end = time.time()
    total = float((record.times or {}).get("total_s") or 0.0)
    return int((end - (total if math.isfinite(total) else 0.0)) * 1000), int(end * 1000)


# --- the report -----------------------------------------------------------------------------------------


def _export_report(c, exp: str, results: Path, sweep: str) -> str | None:
    """The study's report into ``<experiment artifacts>/report/``, its Markdown as the description."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from mixsweep.store import runs as store

    folder = store.study_dir(results, sweep)
    md = folder / "report.md"
    if not md.is_file():
        return None
    location = c.get_experiment(exp).artifact_location
    repo = get_artifact_repository(location)
    for name in ("report.md", "report.html"):
        if (folder / name).is_file():
            repo.log_artifact(str(folder / name), "report")
    if (folder / "figures").is_dir():
        repo.log_artifacts(str(folder / "figures"), "report/figures")
    text = md.read_text(encoding="utf-8")
    note = f"\n\n(cut; the whole report: {location}/report/report.md)"
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - len(note)] + note
    c.set_experiment_tag(exp, "mlflow.note.content", mapping.text(text, MAX_DESCRIPTION))
    return f"{location}/report"


# --- helpers ------------------------------------------------------------------------------------------


def _by_tag(c, runs: list[Any], kind: str, key: str, done: Exported) -> dict[str, Any]:
    """The runs of one kind by a tag's value; of two runs for one value (a race) the oldest stays."""
    found: dict[str, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        tags = run.data.tags
        if tags.get(mapping.KIND) != kind or key not in tags:
            continue
        if tags[key] in found:
            c.delete_run(run.info.run_id)
            done.duplicates_removed += 1
        else:
            found[tags[key]] = run
    return found


def _put(into: dict[str, float], key: str, value: Any) -> None:
    """A finite number only: NA (a definition the task lacks) and NaN (no finite score) are left out."""
    if value is None or value is pd.NA:
        return
    try:
        x = float(value)
    except (TypeError, ValueError):
        return
    if math.isfinite(x):
        into[key] = x


def _digest(payload: Any) -> str:
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
