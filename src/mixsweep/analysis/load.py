"""Load runs into one tidy table: one row per run, from a results store or an external CSV.

Columns: source, sweep, task, cell, label, display, seed, run_id, status, headline,
final_score / best_score (the headline metric at the end of training / at the best eval),
majority_score and has_majority, family and p (p-sweep cells, see
:func:`~mixsweep.analysis.naming.sweep_family`), metrics (comma-joined names the run recorded),
best_step, n_evals, distance_sq, and ``final_<metric>`` / ``best_<metric>`` for every metric.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from mixsweep.analysis.naming import display_name, label_of, normalize_task, sweep_family
from mixsweep.errors import UserError
from mixsweep.records import RunRecord

RESULT_FILE = "result.json"
CSV_COLUMNS = ("task", "config", "seed", "score")


@dataclass
class RunTable:
    """The tidy run table plus what was skipped while reading it."""

    runs: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    origin: str = ""


def sweep_dir(results: str | os.PathLike, sweep: str) -> Path:
    path = Path(results) / sweep
    if not path.is_dir():
        raise UserError(no_results(results, sweep, path))
    return path


def no_results(results: str | os.PathLike, sweep: str, path: Path) -> str:
    """Why ``results/sweep`` holds nothing, and the command that fills it (with the user's RESULTS)."""
    from mixsweep.paths import sweep_names

    results = Path(results)
    present = sorted(p.name for p in results.glob("[!.]*") if p.is_dir()) if results.is_dir() else []
    found = f" (sweeps with results in {results}/: {', '.join(present)})" if present else ""
    if sweep not in sweep_names() and sweep not in present:
        return f"unknown sweep '{sweep}': choose one of {', '.join(sweep_names())}{found}"
    results_arg = "" if results == Path("results") else f" RESULTS={results}"
    return f"no results for sweep '{sweep}' at {path}: run `make sweep SWEEP={sweep}{results_arg}` first{found}"


def load_results(results: str | os.PathLike, sweep: str) -> RunTable:
    """Read every ``<results>/<sweep>/<task>/<run_id>/result.json`` into a :class:`RunTable`.

    Hidden entries (``.hydra``, ``.lock``, temp files) are ignored; a record that does not
    parse or validate becomes a warning ``corrupt record <path>: <why>``.
    """
    root = sweep_dir(results, sweep)
    records, warnings = read_records(root)
    return RunTable(records_frame(records), warnings, origin=str(root))


def read_records(root: Path) -> tuple[list[RunRecord], list[str]]:
    records: list[RunRecord] = []
    warnings: list[str] = []
    for path in _result_files(root):
        try:
            records.append(RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, AttributeError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.append(f"corrupt record {path}: {why}")
    return records, warnings


def _result_files(root: Path) -> list[Path]:
    files = []
    for task in _visible_dirs(root):
        for run in _visible_dirs(task):
            candidate = Path(run) / RESULT_FILE
            if candidate.is_file():
                files.append(candidate)
    return sorted(files)


def _visible_dirs(path: Path | os.DirEntry) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return [e for e in it if not e.name.startswith(".") and e.is_dir()]


def records_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per record; see the module docstring for the columns."""
    return _frame([_record_row(r) for r in records])


def _record_row(r: RunRecord) -> dict[str, Any]:
    best = r.best or _best_from_curve(r.eval_curve, r.headline)
    family, p = sweep_family(r.label, (r.config or {}).get("regularizer"))
    row: dict[str, Any] = {
        "source": "results",
        "sweep": r.sweep,
        "task": r.task,
        "cell": r.cell,
        "label": r.label,
        "seed": r.seed,
        "run_id": r.run_id,
        "status": r.status,
        "headline": r.headline,
        "final_score": _num(r.final.get(r.headline)),
        "best_score": _num(best.get(r.headline)),
        "majority_score": _num(r.majority.get(r.headline)),
        "has_majority": r.headline in r.majority,
        "family": family,
        "p": p,
        "metrics": ",".join(sorted(r.final)),
        "best_step": r.best_step,
        "n_evals": len(r.eval_curve),
        "distance_sq": _num(r.distance_sq),
    }
    for name, value in r.final.items():
        row[f"final_{name}"] = _num(value)
    for name, value in best.items():
        row[f"best_{name}"] = _num(value)
    return row


def _best_from_curve(curve: list[dict[str, Any]], headline: str) -> dict[str, float]:
    """Metrics at the eval point with the highest headline score (NaN points never win)."""
    scored = [pt for pt in curve if not math.isnan(_num((pt.get("metrics") or {}).get(headline)))]
    if not scored:
        return {}
    return dict(max(scored, key=lambda pt: pt["metrics"][headline])["metrics"])


def _num(x: Any) -> float:
    """JSON metric -> float; null (an undefined correlation) becomes NaN."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


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
    for rec in raw.to_dict("records"):
        task = normalize_task(rec["task"])
        label = label_of(rec["config"])
        metric = str(rec.get("metric") or _headline_of(task))
        score = _num(rec["score"])
        family, p = sweep_family(label)
        majority = _num(rec.get("majority"))
        rows.append(
            {
                "source": "csv",
                "sweep": path.stem,
                "task": task,
                "cell": label,
                "label": label,
                "seed": int(rec["seed"]),
                "run_id": f"{task}/{label}/{rec['seed']}",
                "status": str(rec.get("status") or "ok"),
                "headline": metric,
                "final_score": score,
                "best_score": score,
                "majority_score": majority,
                "has_majority": "majority" in raw.columns and not math.isnan(majority),
                "family": family,
                "p": p,
                "metrics": metric,
                "best_step": None,
                "n_evals": 0,
                "distance_sq": math.nan,
                f"final_{metric}": score,
                f"best_{metric}": score,
            }
        )
    return RunTable(_frame(rows), [], origin=str(path))


@cache
def _headline_of(task: str) -> str:
    from mixsweep.tasks import get_task

    try:
        return get_task(task).headline
    except UserError:
        return "score"


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["source", "sweep", "task", "cell", "label", "seed", "status", "headline",
                                   "final_score", "best_score", "majority_score", "has_majority",
                                   "family", "p", "metrics"])
    df.insert(df.columns.get_loc("label") + 1, "display", df["label"].map(display_name))
    return df


def export_runs(runs: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the run table to ``.parquet`` or ``.csv`` (by suffix), atomically."""
    from mixsweep.atomic import atomic_write_text

    path = Path(path)
    if path.suffix == ".csv":
        atomic_write_text(path, runs.to_csv(index=False))
    elif path.suffix == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        runs.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    else:
        raise UserError(f"cannot export to {path}: use a .parquet or .csv file name")
    return path
