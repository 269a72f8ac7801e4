"""What a run record is in MLflow: one function per part, shared by the export and the live logger so
that a run logged live and the same run exported afterwards carry the same keys, steps and values.

A record (:class:`~mixsweep.records.RunRecord`) becomes a run with

- **params**: the resolved run config flattened (:func:`mixsweep.store.cell_id.flatten`, the schema's dotted
  keys: ``optimizer.lr``, ``regularizer.mixout.p``); a list or null is written as JSON;
- **tags**: ``mixsweep.study``, ``.cell``, ``.task``, ``.label``, ``.seed``, ``.run_id``, ``.commit``,
  ``.status``, ``.data_source``, and MLflow's ``mlflow.runName`` / ``mlflow.source.git.commit``;
- **metrics with their steps**: every eval point as ``dev.<metric>`` (the whole dev set),
  ``val_half.<metric>`` / ``test_half.<metric>`` (zhang2021's halves) and ``epoch``; every training
  step as ``train.loss`` (the objective), ``train.task_loss`` and ``train.penalty.<method>``;
- **scores** at the record's last step: ``final.<metric>``, ``best.<metric>`` (the best eval point),
  ``zhang2021.<metric>`` (the test half at the best val-half point), ``best_step``, ``distance_sq``
  and ``time.<phase>_s``;
- **status**: ``ok`` -> FINISHED; ``failed`` (an exception) and ``diverged`` (a non-finite loss) -> FAILED.

Every string goes through :func:`mixsweep.secrets.mask`, so no URL password reaches the tracker.
Pure: no mlflow import; metrics are ``(key, value, step)`` triples.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from mixsweep.config.stored import stored
from mixsweep.records import RunRecord, best_point, zhang2021_index
from mixsweep.secrets import mask
from mixsweep.store.cell_id import flatten

Metric = tuple[str, float, int]

PREFIX = "mixsweep."
KIND, RUN_ID, CELL_ID, FINGERPRINT, LIVE = (f"{PREFIX}{k}" for k in ("kind", "run_id", "cell_id", "fingerprint",
                                                                     "live"))
CURVE_SUBSETS = {"metrics": "dev", "val_half": "val_half", "test_half": "test_half"}
MAX_PARAM = 6000  # MLflow's longest param value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH)
MAX_TAG = 8000  # and tag value


def text(value: Any, limit: int = MAX_PARAM) -> str:
    """A param or tag value: strings as they are, anything else as JSON; masked; cut at ``limit``."""
    s = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    s = mask(s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def params(config: Mapping[str, Any]) -> dict[str, str]:
    """The resolved run config flattened to the schema's dotted keys (``train.epochs`` -> ``"3"``)."""
    return {k: text(v) for k, v in flatten(config).items()}


def status(record_status: str) -> str:
    """MLflow's run status: ok -> FINISHED, failed (an exception) or diverged (a non-finite loss) -> FAILED."""
    return "FINISHED" if record_status == "ok" else "FAILED"


def commit(env: Mapping[str, Any]) -> str | None:
    """The code's git commit, ``<sha>-dirty`` when the checkout had uncommitted changes."""
    git = env.get("git") or {}
    sha = git.get("commit")
    return f"{sha}-dirty" if sha and git.get("dirty") else sha


def data_source(config: Mapping[str, Any]) -> str | None:
    """``data.source`` with ``auto`` resolved to the task's ``default_source`` (as the run read it), the
    folder or hub id after a colon: ``glue_dir:/data/glue``, ``hub:nyu-mll/glue``."""
    cfg = stored(config)
    source = cfg.data_source
    if source in (None, "auto"):
        source = cfg.task_default_source or source
    if source == "glue_dir" and cfg.glue_dir:
        return f"glue_dir:{cfg.glue_dir}"
    if source == "hub" and cfg.hub_id:
        return f"hub:{cfg.hub_id}"
    return source


def cell_key(task: str, cid: str) -> str:
    """The ``mixsweep.cell_id`` tag of a cell's parent run: the task and the cell's identity
    (:func:`mixsweep.store.cell_id.cell_id`), which already hashes the task block of a real config."""
    return f"{task}:{cid}"


def run_name(record: RunRecord) -> str:
    return f"{record.cell} seed {record.seed}"


def tags(record: RunRecord) -> dict[str, str]:
    """The record's identity and provenance as tags (see the module docstring)."""
    values = {
        KIND: "run",
        f"{PREFIX}study": record.sweep,
        f"{PREFIX}cell": record.cell,
        f"{PREFIX}task": record.task,
        f"{PREFIX}label": record.label,
        f"{PREFIX}seed": record.seed,
        RUN_ID: record.run_id,
        f"{PREFIX}commit": commit(record.env),
        f"{PREFIX}status": record.status,
        f"{PREFIX}data_source": data_source(record.config or {}),
        "mlflow.runName": run_name(record),
        "mlflow.source.git.commit": (record.env.get("git") or {}).get("commit"),
    }
    return {k: text(v, MAX_TAG) for k, v in values.items() if v is not None}


def curve_point(point: Mapping[str, Any]) -> list[Metric]:
    """One eval point: ``dev.<m>``, ``val_half.<m>``, ``test_half.<m>`` and ``epoch`` at its step."""
    step = int(point["step"])
    out: list[Metric] = []
    for subset, prefix in CURVE_SUBSETS.items():
        for name, value in (point.get(subset) or {}).items():
            out.append((f"{prefix}.{name}", _number(value), step))
    if point.get("epoch") is not None:
        out.append(("epoch", float(point["epoch"]), step))
    return out


def loss_entry(entry: Mapping[str, Any]) -> list[Metric]:
    """One training step: ``train.loss`` (the objective), ``train.task_loss``, ``train.grad_norm``,
    ``train.penalty.<method>``."""
    step = int(entry["step"])
    out: list[Metric] = [("train.loss", _number(entry["loss"]), step)]
    for key in ("task_loss", "grad_norm"):
        if entry.get(key) is not None:
            out.append((f"train.{key}", _number(entry[key]), step))
    for name, value in (entry.get("penalty") or {}).items():
        out.append((f"train.penalty.{name}", _number(value), step))
    return out


def curves(eval_curve: Iterable[Mapping[str, Any]], train_loss: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """Every eval point and every training step, in order."""
    return [m for p in eval_curve for m in curve_point(p)] + [m for e in train_loss for m in loss_entry(e)]


def scores(record: RunRecord) -> list[Metric]:
    """``final.<m>``, ``best.<m>``, ``zhang2021.<m>``, ``best_step``, ``distance_sq`` and ``time.*``, at the
    record's last step. best is :func:`~mixsweep.records.best_point` (the one definition of a run's best);
    zhang2021 the test half at :func:`~mixsweep.records.zhang2021_index` (absent where no point has it)."""
    step = last_step(record)
    best = record.best
    if not best:
        point = best_point(record.eval_curve, record.headline)
        best = dict(point["metrics"]) if point else {}
    i = zhang2021_index(record.eval_curve, record.headline)
    zhang = record.eval_curve[i]["test_half"] if i is not None else {}
    out: list[Metric] = []
    for prefix, values in (("final", record.final), ("best", best), ("zhang2021", zhang)):
        out += [(f"{prefix}.{name}", _number(v), step) for name, v in values.items()]
    if record.best_step is not None:
        out.append(("best_step", float(record.best_step), step))
    if record.distance_sq is not None:
        out.append(("distance_sq", _number(record.distance_sq), step))
    out += [(f"time.{k}", _number(v), step) for k, v in (record.times or {}).items()]
    return out


def metrics(record: RunRecord) -> list[Metric]:
    """Everything the record measured: its curves, then its scores."""
    return curves(record.eval_curve, record.train_loss) + scores(record)


def last_step(record: RunRecord) -> int:
    steps = [int(p["step"]) for p in record.eval_curve] + [int(e["step"]) for e in record.train_loss]
    return max(steps, default=0)


def fingerprint(record: RunRecord) -> str:
    """sha1 of the record's canonical JSON, 12 hex characters: an exported run whose tag still
    matches is up to date; any change of the record (a failed run redone) replaces its MLflow run."""
    payload = json.dumps(record.to_dict(), sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def _number(value: Any) -> float:
    """A metric value; null (an undefined correlation) is NaN, which MLflow stores as such."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
