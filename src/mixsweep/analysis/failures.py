"""Failed-run definitions: a registry of named predicates over the run table.

The thresholds are data (``failure:`` in ``conf/task/<name>.yaml``, read through
:func:`mixsweep.data.tasks.get_task`); this module only knows the two predicate shapes and the
majority-class rule:

- ``below: t``    fail if score < t   (``lee2020``: derived thresholds; Lee et al. give none)
- ``at_most: t``  fail if score <= t  (``dodge2020``: best-found score, Dodge et al. 2020)
- ``majority``    fail if the final score <= the majority-class score of that dev set
  (Mosbach et al. 2021); the majority score comes with each run record. It is not defined for a
  regression task (STS-B): a constant predictor's correlation is undefined (NaN), and ``score <= NaN``
  would silently count no run, so the count is NA there (printed ``–`` with a footnote).

``default`` is no definition of its own: per task it is ``lee2020`` where the task declares it,
else ``majority`` (which applies to every task with a majority class), so that the default
#failed column of a task without the paper's thresholds (rt_polarity, digits) is not all "–".

Whatever the definition, a diverged run and a NaN score (a constant predictor's correlation)
count as failed; a run that errored (status ``failed``) has no score and is left out (NA);
a definition the task does not declare, or whose metric the run did not record, is NA.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from mixsweep.errors import UserError

DEFINITIONS = ("lee2020", "majority", "dodge2020")
DEFAULT = "default"  # per task: lee2020 where declared, else majority (see default_for)
SELECTIONS = ("final", "best", "zhang2021")  # described in mixsweep.analysis.selection


@dataclass(frozen=True)
class FailureRule:
    """One task's threshold under one named definition."""

    name: str
    metric: str | None  # None: the run's headline metric
    below: float | None = None
    at_most: float | None = None
    selection: str | None = None  # pinned protocol (dodge2020: best); None follows the caller's
    derived: bool = False
    interval: str | None = None

    def describe(self) -> str:
        metric = self.metric or "headline"
        if self.name == "majority":
            return f"{metric} <= majority-class score"
        rule = f"{metric} < {self.below:g}" if self.below is not None else f"{metric} <= {self.at_most:g}"
        if self.selection:
            rule += f" ({self.selection})"
        if self.interval:
            rule += f"; admissible {self.interval}"
        return rule


MAJORITY = FailureRule(name="majority", metric=None, selection="final")


def parse_definitions(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"all"`` -> every definition; ``"lee2020,majority"`` or a list -> those, validated."""
    names = list(spec) if not isinstance(spec, str) else spec.split(",")
    if names == ["all"]:
        return DEFINITIONS
    unknown = [n for n in names if n not in (*DEFINITIONS, DEFAULT)]
    if unknown:
        raise UserError(f"unknown failure definition {unknown[0]!r}: choose from {', '.join(DEFINITIONS)}, "
                        f"{DEFAULT} or all")
    return tuple(names)


def check_selection(selection: str) -> str:
    if selection not in SELECTIONS:
        raise UserError(f"unknown selection {selection!r}: choose final (end of training), best (best eval) "
                        "or zhang2021 (test half of dev at the best val-half eval)")
    return selection


@cache
def task_failure_config(task: str) -> dict[str, dict[str, Any]]:
    """The ``failure:`` mapping of a task's config; {} for a task without one (or not a text task)."""
    from mixsweep.data.tasks import get_task

    try:
        return dict(get_task(task).failure)
    except UserError:
        return {}


@cache
def is_regression(task: str) -> bool:
    """Whether a known task is a regression (its headline is a correlation); False for unknown tasks."""
    from mixsweep.data.tasks import get_task

    try:
        return get_task(task).is_regression
    except UserError:
        return False


def undefined_reason(task: str, definition: str) -> str | None:
    """Why a definition cannot apply to a task at all (a footnote for its ``–``), or None."""
    if definition == "majority" and is_regression(task):
        return "not defined for regression (a constant predictor's correlation is undefined)"
    return None


def rule_for(task: str, definition: str, configs: dict[str, dict] | None = None) -> FailureRule | None:
    """The rule a task declares for a definition, or None. ``configs`` overrides the task files."""
    if definition == "majority":
        return None if undefined_reason(task, definition) else MAJORITY
    cfg = (configs if configs is not None else task_failure_config(task)).get(definition)
    if not cfg:
        return None
    return FailureRule(
        name=definition,
        metric=cfg.get("metric"),
        below=_opt_float(cfg.get("below")),
        at_most=_opt_float(cfg.get("at_most")),
        selection=cfg.get("selection"),
        derived=bool(cfg.get("derived", False)),
        interval=cfg.get("interval"),
    )


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def failure_mask(
    runs: pd.DataFrame,
    definition: str,
    selection: str = "final",
    configs: dict[str, dict[str, dict]] | None = None,
) -> pd.Series:
    """Per-run failed flag (nullable boolean; NA = not applicable) under one definition.

    ``configs`` maps task -> failure config and replaces the task files (for tests and for
    analysing another codebase's thresholds).
    """
    out = pd.Series(pd.NA, index=runs.index, dtype="boolean")
    for task, rows in runs.groupby("task", sort=False):
        task_configs = None if configs is None else configs.get(str(task), {})
        name = default_for(str(task), task_configs) if definition == DEFAULT else definition
        rule = rule_for(str(task), name, task_configs)
        if rule is not None:
            out.loc[rows.index] = _apply(rule, rows, rule.selection or selection)
    return out


def _apply(rule: FailureRule, rows: pd.DataFrame, selection: str) -> pd.Series:
    score, measured = _metric_values(rows, rule.metric, selection)
    undefined = np.zeros(len(rows), dtype=bool)
    if rule.name == "majority":
        majority = rows["majority_score"].to_numpy(dtype=float)
        threshold_hit = score <= majority
        recorded = rows["has_majority"].to_numpy(dtype=bool)
        measured &= recorded
        # A recorded but undefined (NaN) baseline makes the rule inapplicable, diverged runs included.
        undefined = recorded & np.isnan(majority)
    elif rule.below is not None:
        threshold_hit = score < rule.below
    else:
        threshold_hit = score <= rule.at_most
    failed = threshold_hit | np.isnan(score) | (rows["status"].to_numpy() == "diverged")
    result = pd.Series(failed, index=rows.index, dtype="boolean")
    applicable = (measured | (rows["status"].to_numpy() == "diverged")) & ~undefined
    result[~applicable | (rows["status"].to_numpy() == "failed")] = pd.NA
    return result


def _metric_values(rows: pd.DataFrame, metric: str | None, selection: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores under ``selection`` and whether each run recorded that metric at all."""
    if metric is None:
        return rows[f"{selection}_score"].to_numpy(dtype=float), np.ones(len(rows), dtype=bool)
    column = f"{selection}_{metric}"
    measured = rows["metrics"].map(lambda names: metric in names.split(",")).to_numpy(dtype=bool)
    if column not in rows:
        return np.full(len(rows), np.nan), np.zeros(len(rows), dtype=bool)
    return rows[column].to_numpy(dtype=float), measured


def default_for(task: str, configs: dict[str, dict] | None = None) -> str:
    """The definition ``default`` stands for on ``task``: lee2020 if the task declares it, else majority."""
    return "lee2020" if rule_for(task, "lee2020", configs) is not None else "majority"


def applicable(definition: str, tasks: list[str]) -> bool:
    """Whether any of ``tasks`` declares ``definition`` (majority and default apply to every task)."""
    return definition in ("majority", DEFAULT) or any(rule_for(t, definition) is not None for t in tasks)


def describe_definition(definition: str, tasks: list[str], configs: dict | None = None) -> str:
    """A one-line legend: which rule each task uses under a definition, and whether derived."""
    if definition == DEFAULT:
        parts = []
        for task in tasks:
            task_configs = None if configs is None else configs.get(task, {})
            name = default_for(task, task_configs)
            rule = rule_for(task, name, task_configs)
            why = "" if name == "lee2020" else f", as lee2020 is not defined for {task}"
            parts.append(f"{task}: {name} ({rule.describe()}{why})")
        return f"{DEFAULT} (lee2020 where a task defines it, else majority): " + "; ".join(parts)
    parts = []
    derived = False
    for task in tasks:
        rule = rule_for(task, definition, None if configs is None else configs.get(task, {}))
        if rule is not None:
            parts.append(f"{task}: {rule.describe()}")
            derived |= rule.derived
        elif undefined_reason(task, definition):
            parts.append(f"{task}: {undefined_reason(task, definition)}")
    if not parts:
        return f"{definition}: not defined for these tasks"
    tag = " (derived thresholds, not stated in the paper)" if derived else ""
    return f"{definition}{tag}: " + "; ".join(parts)
