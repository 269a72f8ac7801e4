"""Load runs into one tidy table: one row per run, from a results store or an external CSV.

Columns: source, sweep, task, cell, cell_id (the cell's identity), regularizer (its regularizer
label), label (the row name, see :func:`records_frame`), delta (its config delta), display, optimizer
(the config's ``optimizer.name``; None for a CSV), seed, run_id, status, headline,
final_score / best_score (the headline metric at the end of training / at the best eval),
majority_score and has_majority, family and p (p-sweep cells, see
:func:`~mixsweep.analysis.naming.sweep_family`), p_family and p_values (the sort key of
:func:`~mixsweep.analysis.naming.probability_key`, from the record's config), metrics (comma-joined names the run recorded),
best_step, n_evals, distance_sq, and ``final_<metric>`` / ``best_<metric>`` for every metric (``best_<metric>``
at the point the headline chose); ``best_on_<metric>``: the best point chosen on that metric itself, scored on it
(what a paper that early-stops on another metric than our headline reports, e.g. MRPC's acc_and_f1);
has_halves, zhang2021_score and ``zhang2021_<metric>``: the ``zhang2021`` selection (see
:mod:`~mixsweep.analysis.selection`), NaN for runs whose curve has no val/test halves.
From a store also (:func:`~mixsweep.analysis.instability_tables.run_fields`): has_outputs, has_representations,
dev_hash, and ``pwd_<protocol>`` (the run's mean disagreement with its cell's other restarts).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from mixsweep.analysis.naming import display_name, label_of, normalize_task, probability_key, sweep_family
from mixsweep.analysis.selection import zhang2021_point
from mixsweep.config.stored import stored
from mixsweep.errors import UserError
from mixsweep.records import RunRecord, best_point, metric_value
from mixsweep.store import runs as store
from mixsweep.store.cell_id import cell_config, cell_id, row_names, table_labels

CSV_COLUMNS = ("task", "config", "seed", "score")


@dataclass
class RunTable:
    """The tidy run table plus what was skipped while reading it."""

    runs: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    origin: str = ""
    records: list[RunRecord] = field(default_factory=list)  # the full records (config, env): provenance
    # (task, cell) -> (runs planned, those without a record), per cell of the study as launched (its view)
    planned: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def sweep_dir(results: str | os.PathLike, sweep: str) -> Path:
    """The study's folder (its view, report and figures); a study never launched is a one-line error."""
    store.check_no_legacy(results, sweep)
    path = store.study_dir(results, sweep)
    if not store.has_study(results, sweep):
        raise UserError(no_results(results, sweep, path))
    return path


def no_results(results: str | os.PathLike, sweep: str, path: Path) -> str:
    """Why ``results/sweep`` holds nothing, and the command that fills it (with the user's RESULTS)."""
    from mixsweep.config.paths import sweep_names

    results = Path(results)
    present = sorted(p.name for p in results.glob("[!.]*") if p.is_dir()) if results.is_dir() else []
    found = f" (sweeps with results in {results}/: {', '.join(present)})" if present else ""
    if sweep not in sweep_names() and sweep not in present:
        return f"unknown sweep '{sweep}': choose one of {', '.join(sweep_names())}{found}"
    results_arg = "" if results == Path("results") else f" RESULTS={results}"
    return f"no results for sweep '{sweep}' at {path}: run `make sweep SWEEP={sweep}{results_arg}` first{found}"


def load_results(results: str | os.PathLike, sweep: str) -> RunTable:
    """Read the records of every run in the study's view of the store into a :class:`RunTable`.

    Runs without a record (in progress, or not run yet) are left out; a record that does not
    parse or validate becomes a warning ``corrupt record <path>: <why>``, and a damaged outputs or
    representations file one that names it (the run is read as one without that file).
    """
    root = sweep_dir(results, sweep)
    warnings: list[str] = []
    records = without_inert(list(store.iter_records(results, sweep, warnings)), warnings)
    from mixsweep.analysis.instability_tables import run_fields

    runs = run_fields(records_frame(records), results, warnings)
    from mixsweep.sweeping.plan import planned_without_record

    planned = planned_without_record(results, sweep, {r.run_id for r in records})
    return RunTable(runs, warnings, origin=str(root), records=records, planned=planned)


def without_inert(records: list[RunRecord], warnings: list[str]) -> list[RunRecord]:
    """The records less those of a cell whose method does nothing on the run's task (R3F on STS-B,
    :meth:`~mixsweep.regularizers.base.Method.inert_on`): the baseline's runs under the method's name,
    stored before planning left such cells out. Each left-out cell becomes one line in ``warnings``."""
    from mixsweep.sweeping.checks import inert_methods

    verdicts: dict[tuple[str, str], dict[str, str]] = {}
    kept, dropped = [], Counter()
    for r in records:
        key = (r.task, r.cell)
        if key not in verdicts:
            saved = stored(r.config)
            try:
                verdicts[key] = inert_methods(saved.regularizer, saved.task)
            except (UserError, ValueError, KeyError, TypeError):  # a config this code cannot read: keep the runs
                verdicts[key] = {}
        if verdicts[key]:
            dropped[key] += 1
        else:
            kept.append(r)
    for (task, cell), n in dropped.items():
        why = "; ".join(f"{m} is inactive on {task}: {reason}" for m, reason in verdicts[(task, cell)].items())
        warnings.append(f"{n} runs of {cell} on {task} left out: {why}")
    return kept


def select_cells(table: RunTable, names: list[str] | None) -> RunTable:
    """The runs of the named cells only (``--cells``); an unknown name is a one-line error."""
    if names is None:
        return table
    known = list(dict.fromkeys(table.runs["cell"].astype(str)))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(f"unknown cell {', '.join(map(repr, unknown)) or '(none given)'} in {table.origin}: "
                        f"choose from {', '.join(sorted(known)) or '(no runs yet)'}")
    runs = table.runs[table.runs["cell"].isin(names)].reset_index(drop=True)
    kept = set(runs["run_id"].astype(str)) if "run_id" in runs else set()
    return RunTable(runs, table.warnings, table.origin, [r for r in table.records if r.run_id in kept],
                    {cell: n for cell, n in table.planned.items() if cell[1] in names})


def unfinished_lines(table: RunTable) -> list[str]:
    """What opens a table or report of a study whose planned runs do not all have a record: the
    total, then one line per cell with runs missing. None for a finished study (or a CSV)."""
    missing = {cell: n for cell, n in table.planned.items() if n[1]}
    if not missing:
        return []
    planned = sum(n for n, _ in table.planned.values())
    absent = sum(m for _, m in table.planned.values())
    lines = [f"unfinished study: {absent} of {planned} planned runs have no record yet, so every number here "
             f"covers the {planned - absent} that do; relaunch the sweep to run the rest (finished runs are kept)"]
    width = max(len(task) for task, _ in missing)
    lines += [f"  {task:<{width}}  {cell}: {m} of {n} planned runs without a record"
              for (task, cell), (n, m) in missing.items()]
    return lines


def records_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per record; see the module docstring for the columns.

    Runs are grouped into cells by identity (``cell_id``: the config without the seeds); ``delta``
    is a cell's regularizer label plus the knobs in which the cells of this table differ
    (:func:`mixsweep.store.cell_id.table_labels`), so two cells never share a row; ``label``, the row
    name, is that delta in the paper's grids and the study's cell name where cells differ in more
    than the regularizer (:func:`mixsweep.store.cell_id.row_names`; the delta is then the legend).
    """
    rows = [_record_row(r) for r in records]
    cells = {row["cell_id"]: (r.task, r.cell, r.label, cell_config(r.config or {}))
             for row, r in zip(rows, records, strict=True)}
    deltas = table_labels({cid: (task, label, cfg) for cid, (task, _, label, cfg) in cells.items()})
    names = row_names(cells)
    for row in rows:
        row["label"], row["delta"] = names[row["cell_id"]], deltas[row["cell_id"]]
        if row["delta"] != row["regularizer"]:  # p-sweeps hold plain cells only (naming.sweep_family)
            row["family"], row["p"] = None, math.nan
    return _frame(rows)


def _record_row(r: RunRecord) -> dict[str, Any]:
    point = best_point(r.eval_curve, r.headline)
    best = r.best or (dict(point["metrics"]) if point else {})
    saved = stored(r.config)
    family, p = sweep_family(r.label, saved.regularizer if r.config else None)
    pkey = probability_key(saved.regularizer if r.config else None)
    row: dict[str, Any] = {
        "source": "results",
        "sweep": r.sweep,
        "task": r.task,
        "cell": r.cell,
        "cell_id": cell_id(r.config) if r.config else f"label:{r.label}",
        "regularizer": r.label,
        "label": r.label,
        "optimizer": saved.optimizer_name,
        "seed": r.seed,
        "run_id": r.run_id,
        "status": r.status,
        "headline": r.headline,
        "final_score": metric_value(r.final.get(r.headline)),
        "best_score": metric_value(best.get(r.headline)),
        "majority_score": metric_value(r.majority.get(r.headline)),
        "has_majority": r.headline in r.majority,
        "family": family,
        "p": p,
        "p_family": pkey[0] if pkey else None,
        "p_values": pkey[1] if pkey else None,
        "metrics": ",".join(sorted(r.final)),
        "best_step": r.best_step,
        "n_evals": len(r.eval_curve),
        "distance_sq": metric_value(r.distance_sq),
    }
    zhang = zhang2021_point(r.eval_curve, r.headline)
    row["has_halves"] = zhang is not None
    row["dev_halves"] = (r.extra or {}).get("dev_halves") if zhang is not None else None
    row["zhang2021_score"] = metric_value((zhang or {}).get(r.headline))
    for name, value in r.final.items():
        row[f"final_{name}"] = metric_value(value)
    for name, value in best.items():
        row[f"best_{name}"] = metric_value(value)
    for name in best:
        if r.eval_curve:
            on = best_point(r.eval_curve, name)
            row[f"best_on_{name}"] = metric_value(on["metrics"].get(name)) if on else math.nan
        elif name == r.headline:  # no curve: only the headline's best is known
            row[f"best_on_{name}"] = metric_value(best.get(name))
    for name, value in (zhang or {}).items():
        row[f"zhang2021_{name}"] = metric_value(value)
    return row


def load_external_csv(path: str | os.PathLike) -> RunTable:
    """Read published per-run scores or another codebase's runs: ``task, config, seed, score``.

    ``config`` is a canonical label or a paper display name (Devlin, Wiese, Our, Our+W, D0.x,
    M0.x). The score is taken as the headline metric at the end of training (and as the best,
    which a CSV cannot distinguish). Optional columns: ``status`` (ok|failed|diverged),
    ``metric`` (the score's metric name; default: the task's headline), ``majority``.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}; give a CSV with header {','.join(CSV_COLUMNS)}") from e
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise UserError(f"{path} lacks columns {missing}: the header must include {','.join(CSV_COLUMNS)}")
    rows = []
    for line, rec in enumerate(raw.to_dict("records"), start=2):  # line 1 is the header
        task = normalize_task(rec["task"])
        label = label_of(rec["config"])
        metric = str(rec.get("metric") or _headline_of(task))
        seed = _csv_seed(path, line, rec["seed"])
        score = _csv_number(path, line, "score", rec["score"])
        family, p = sweep_family(label)
        majority = _csv_number(path, line, "majority", rec.get("majority"))
        rows.append(
            {
                "source": "csv",
                "sweep": path.stem,
                "task": task,
                "cell": label,
                "cell_id": label,  # the CSV's config column is the identity of its cells
                "regularizer": label,
                "label": label,
                "optimizer": None,  # a CSV names no optimizer
                "delta": label,
                "seed": seed,
                "run_id": f"{task}/{label}/{rec['seed']}",
                "status": str(rec.get("status") or "ok"),
                "headline": metric,
                "final_score": score,
                "best_score": score,
                "majority_score": majority,
                "has_majority": "majority" in raw.columns and not math.isnan(majority),
                "family": family,
                "p": p,
                "p_family": None,  # a CSV has no config, and p is never parsed from a label
                "p_values": None,
                "metrics": metric,
                "best_step": None,
                "n_evals": 0,
                "distance_sq": math.nan,
                "has_halves": False,
                "zhang2021_score": math.nan,
                f"final_{metric}": score,
                f"best_{metric}": score,
                f"best_on_{metric}": score,
            }
        )
    return RunTable(_frame(rows), [], origin=str(path))


def _csv_seed(path: Path, line: int, value: Any) -> int:
    """A CSV row's seed: a whole number (``3`` or ``3.0``); anything else is a one-line error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise UserError(f"{path} line {line}: seed {_cell(value)} is not a whole number: give each run's seed as "
                        "an integer (e.g. 0, 1, 2)")
    return int(number)


def _csv_number(path: Path, line: int, column: str, value: Any) -> float:
    """A CSV row's score (or majority): a number, or empty / NaN for a run without one (a diverged
    run); text such as ``abc`` is a one-line error, never a silent NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path} line {line}: {column} {_cell(value)} is not a number: give a number, or leave "
                        "the cell empty for a run without one") from None


def _cell(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@cache
def _headline_of(task: str) -> str:
    from mixsweep.data.tasks import get_task

    try:
        return get_task(task).headline
    except UserError:
        return "score"


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["source", "sweep", "task", "cell", "cell_id", "regularizer", "label", "delta",
                                   "optimizer", "seed", "status", "headline",
                                   "final_score", "best_score", "majority_score", "has_majority",
                                   "family", "p", "p_family", "p_values", "metrics", "has_halves",
                                   "zhang2021_score"])
    df.insert(df.columns.get_loc("label") + 1, "display", df["label"].map(display_name))
    return df


def export_runs(runs: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the run table to ``.parquet`` or ``.csv`` (by suffix), atomically."""
    from mixsweep.store.atomic import atomic_write_text, atomic_write_with

    path = Path(path)
    if path.suffix == ".csv":
        from mixsweep.analysis.tables import csv_text

        atomic_write_text(path, csv_text(runs))
    elif path.suffix == ".parquet":
        atomic_write_with(path, lambda tmp: runs.to_parquet(tmp, index=False))
    else:
        raise UserError(f"cannot export to {path}: use a .parquet or .csv file name")
    return path
