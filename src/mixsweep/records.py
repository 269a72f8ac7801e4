"""The run record: the one schema shared by the runner, the results store and the analysis.

A record is written once per run as ``results/runs/<run_id>/result.json`` (see :mod:`mixsweep.store.runs`). Metric
values for GLUE-style tasks are on the paper's scale (×100); the digits experiment keeps its
natural units (accuracy in [0, 1], squared L2 distance).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged")


@dataclass
class RunRecord:
    run_id: str
    sweep: str
    task: str
    cell: str  # short cell name from the sweep file (e.g. "mixout_0.7"), or the label
    label: str  # canonical regularizer label, see cell_label()
    seed: int
    status: str  # one of STATUSES
    headline: str = ""  # headline metric key, e.g. "f1" for MRPC
    final: dict[str, float] = field(default_factory=dict)  # dev metrics at the end of training
    best: dict[str, float] = field(default_factory=dict)  # dev metrics at the best eval by headline
    best_step: int | None = None
    eval_curve: list[dict[str, Any]] = field(default_factory=list)  # [{"step", "epoch", "metrics", "val_half", "test_half"}]
    # [{"step", "loss" (the objective), "task_loss", "penalty": {method: value} (when any)}]
    train_loss: list[dict[str, Any]] = field(default_factory=list)
    majority: dict[str, float] = field(default_factory=dict)  # majority-class dev scores per metric
    distance_sq: float | None = None  # ||w - w_pre||^2 over the pretrained weights
    times: dict[str, float] = field(default_factory=dict)  # {"train_s", "eval_s", "total_s"}
    seeds: dict[str, int] = field(default_factory=dict)  # {"init", "data", "noise"}
    config: dict[str, Any] = field(default_factory=dict)  # resolved semantic config
    overrides: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)  # git, versions, device, determinism flags
    extra: dict[str, Any] = field(default_factory=dict)  # experiment-specific values
    error: str | None = None
    created: str = ""
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Build a record from JSON; unknown keys are dropped, missing ones get defaults."""
        if not isinstance(d, dict):  # valid JSON that is no record ([], null, "x"): corrupt, like a bad parse
            raise ValueError(f"a run record is a JSON object, not {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"run_id", "sweep", "task", "cell", "label", "seed", "status"} - d.keys()
        if missing:
            raise ValueError(f"run record lacks {sorted(missing)}")
        if d["status"] not in STATUSES:
            raise ValueError(f"run record has unknown status {d['status']!r}")
        for key, value in d.items():
            problem = _FIELDS[key](value) if key in _FIELDS else None
            if problem:
                raise ValueError(f"run record field '{key}' {problem}, not {_shown(value)}")
        return cls(**{k: v for k, v in d.items() if k in names})


# The record's schema, checked when a record is read (RunRecord.from_dict): each field -> what is wrong
# with a value (None: nothing). A record that fails it is corrupt, like one that does not parse.
def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _optional_text(v: Any) -> str | None:
    return None if v is None or isinstance(v, str) else "must be a string or null"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> str | None:
    return None if _is_int(v) else "must be an integer"


def _optional_integer(v: Any) -> str | None:
    return None if v is None or _is_int(v) else "must be an integer or null"


def _optional_number(v: Any) -> str | None:
    return None if v is None or _is_number(v) else "must be a number or null"


def _mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) else "must be a JSON object"


def _metrics(v: Any) -> str | None:
    """{metric: number or null} (null: an undefined correlation)."""
    if not isinstance(v, dict) or not all(isinstance(k, str) and (x is None or _is_number(x)) for k, x in v.items()):
        return "must be an object {metric: number or null}"
    return None


def _curve(v: Any) -> str | None:
    """[{step, epoch, metrics, val_half?, test_half?}, ...]"""
    if not isinstance(v, list):
        return "must be a list of eval points"
    for i, point in enumerate(v):
        if not isinstance(point, dict) or not _is_int(point.get("step")):
            return f"point {i} must be an object with an integer step"
        for key in ("metrics", "val_half", "test_half"):
            if point.get(key) is not None and _metrics(point[key]):
                return f"point {i}: {key} must be an object {{metric: number or null}}"
        if point.get("epoch") is not None and not _is_number(point["epoch"]):
            return f"point {i}: epoch must be a number"
    return None


def _objects(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, dict) for x in v) else "must be a list of objects"


def _texts(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "must be a list of strings"



def _config(v: Any) -> str | None:
    from mixsweep.config.stored import shape_problem

    return shape_problem(v)


def _env(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must be a JSON object"
    bad = [k for k in ("git", "versions", "determinism") if v.get(k) is not None and not isinstance(v[k], dict)]
    return f"'{bad[0]}' must be a JSON object" if bad else None


_FIELDS = {
    "run_id": _text, "sweep": _text, "task": _text, "cell": _text, "label": _text, "seed": _integer,
    "headline": _text, "final": _metrics, "best": _metrics, "best_step": _optional_integer, "eval_curve": _curve,
    "train_loss": _objects, "majority": _metrics, "distance_sq": _optional_number, "times": _mapping,
    "seeds": _mapping, "config": _config, "overrides": _texts, "env": _env, "extra": _mapping,
    "error": _optional_text, "created": _text, "schema": _integer,
}


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def metric_value(x: Any) -> float:
    """A metric as stored in a record -> float; null (an undefined correlation) or a non-number is NaN."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def best_point(curve: list[dict[str, Any]], headline: str) -> dict[str, Any] | None:
    """The eval point with the highest headline score: the one definition of a run's "best".

    A missing or NaN score never wins; of equal maxima the earliest wins; an empty curve (or
    one without any score) has no best point (None).
    """
    best, best_score = None, -math.inf
    for point in curve:
        value = (point.get("metrics") or {}).get(headline)
        try:
            score = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isnan(score) and (best is None or score > best_score):
            best, best_score = point, score
    return best


# CoLA's reference metrics are MCC alone and STS-B's correlations: without `val_acc` the reference
# chooses on `val_mcc`, else `val_spearmanr`. Our CoLA runs also record accuracy, which the reference
# never computes for CoLA, so MCC comes first.
_ZHANG_ORDER = {"mcc": ("mcc",), "spearman": ("spearman",), "pearson": ("spearman", "pearson")}


def zhang2021_metric(headline: str, recorded: Any) -> str:
    """The val-half metric Zhang et al.'s code chooses the checkpoint on (revisit-bert-finetuning
    ``run_glue.py``, the ``best_val_acc`` update): accuracy whenever the task records it (MRPC
    included), else MCC (CoLA), else Spearman (STS-B); ``recorded`` holds a point's metric names."""
    for name in (*_ZHANG_ORDER.get(headline, ()), "accuracy"):
        if name in recorded:
            return name
    return headline


def zhang2021_index(curve: list[dict[str, Any]], headline: str) -> int | None:
    """Index of the eval point Zhang et al. (2021) select: the highest **val-half** score of
    :func:`zhang2021_metric` (accuracy where the task has it), by :func:`best_point`'s rule (a missing
    or NaN score never wins; of equal maxima the earliest). None when no point recorded both dev
    halves or none has a score."""
    best, best_score = None, -math.inf
    for i, point in enumerate(curve):
        if point.get("val_half") is None or point.get("test_half") is None:
            continue
        score = metric_value(point["val_half"].get(zhang2021_metric(headline, point["val_half"])))
        if not math.isnan(score) and (best is None or score > best_score):
            best, best_score = i, score
    return best


def cell_label(reg: dict[str, Any]) -> str:
    """Canonical, paper-style label of a regularizer config (``conf/regularizer/*.yaml``): the
    pieces of its active methods, see :func:`mixsweep.regularizers.base.label_of`.

    Examples: ``dropout(0.1)+wdecay(0,0.01)`` (Devlin), ``wdecay(w_pre,0.01)`` (Wiese),
    ``mixout(w_pre,0.7)``, ``mixout(w_pre,0.7)+wdecay(w_pre,0.01)``,
    ``mixout(w_pre,0.7)|head:mixout(w0,0.7)`` (Table 3), ``none``. Choices that differ from the
    paper's defaults are appended in brackets, e.g. ``mixout(w_pre,0.9)[layers=all_linear]``.
    A probability of 0 is no regularization, so dropout(0) and mixout(w_pre, 0) are both ``none``.
    """
    from mixsweep.regularizers.base import build_methods, label_of

    return label_of(build_methods(reg))
