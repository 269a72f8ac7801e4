"""The task registry: one ``conf/task/<name>.yaml`` per task, read into a frozen :class:`TaskSpec`.

Everything that differs between tasks (text columns, label order, metrics, headline metric,
where the data lives, failure thresholds) is data in those files; code never branches on a
task name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsweep.config import paths
from mixsweep.errors import UserError

TEXT_KIND = "text"
METRIC_NAMES = ("accuracy", "f1", "acc_and_f1", "mcc", "pearson", "spearman")
SOURCES = ("hub", "glue_dir", "files", "bundled")


@dataclass(frozen=True)
class TaskSpec:
    """A text-classification (or regression) task as declared in its yaml file.

    ``label_names`` are in class-id order and match the ``nyu-mll/glue`` hub ids, so hub labels
    need no remapping. ``glue_tsv`` describes the task's files in a ``glue_data/`` folder;
    ``failure`` holds the published failure thresholds, read by the analysis layer.
    """

    name: str
    text_keys: tuple[str, ...]
    label_names: tuple[str, ...] | None
    num_labels: int
    metrics: tuple[str, ...]
    headline: str
    kind: str = TEXT_KIND
    is_regression: bool = False
    glue_dir_name: str | None = None
    hub_config: str | None = None
    hub_splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "dev": "validation"})
    glue_tsv: Mapping[str, Any] | None = None
    default_source: str = "hub"
    failure: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"task '{self.name}'"
        if not 1 <= len(self.text_keys) <= 2:
            raise UserError(f"{where}: text_keys must name 1 or 2 columns, got {list(self.text_keys)}")
        if self.is_regression != (self.label_names is None):
            raise UserError(f"{where}: a regression task has label_names: null and a classifier lists them")
        expected = 1 if self.is_regression else len(self.label_names or ())
        if self.num_labels != expected:
            raise UserError(f"{where}: num_labels is {self.num_labels} but should be {expected}")
        unknown = set(self.metrics) - set(METRIC_NAMES)
        if unknown:
            raise UserError(
                f"{where}: unknown metrics {sorted(unknown)}; choose from {', '.join(METRIC_NAMES)}"
            )
        if self.headline not in self.metrics:
            raise UserError(
                f"{where}: headline '{self.headline}' must be one of its metrics {list(self.metrics)}"
            )
        if self.default_source not in SOURCES:
            raise UserError(f"{where}: default_source must be one of {', '.join(SOURCES)}")

    def __hash__(self) -> int:
        # The mapping fields are unhashable; the name identifies a task in a run.
        return hash((self.name, self.kind, self.num_labels))

    @property
    def is_pair(self) -> bool:
        return len(self.text_keys) == 2

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TaskSpec:
        """Build a spec from a task mapping (a plain dict or a composed Hydra ``cfg.task``)."""
        raw = _to_plain(cfg)
        kind = raw.get("kind", TEXT_KIND)
        if kind != TEXT_KIND:
            raise UserError(
                f"task '{raw.get('name')}' is a '{kind}' experiment, not a text task: "
                f"run it with experiment={kind} instead of the text-task data pipeline"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise UserError(
                f"task '{raw.get('name')}': unknown keys {sorted(unknown)}; allowed: {sorted(names)}"
            )
        label_names = raw.get("label_names")
        return cls(
            **{
                **raw,
                "text_keys": tuple(raw["text_keys"]),
                "label_names": None if label_names is None else tuple(str(x) for x in label_names),
                "metrics": tuple(raw["metrics"]),
                "is_regression": label_names is None,
                "failure": dict(raw.get("failure") or {}),
            }
        )


def task_names(kind: str | None = TEXT_KIND) -> list[str]:
    """Names of the tasks in ``conf/task/`` of the given kind (``None``: every kind), sorted.

    Other kinds (the digits MLP experiment) share the folder but not this data pipeline.
    """
    return sorted(name for name, path in _task_files().items() if kind is None or _kind_of(path) == kind)


def get_task(name: str) -> TaskSpec:
    """Load ``conf/task/<name>.yaml``; an unknown name is a :class:`UserError` listing the known ones."""
    from omegaconf import OmegaConf

    path = _task_files().get(name)
    if path is None:
        raise UserError(
            f"unknown task '{name}': choose one of {', '.join(task_names())} "
            f"(files in {paths.CONF_DIR / 'task'})"
        )
    return TaskSpec.from_config(OmegaConf.load(path))


def _task_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted((paths.CONF_DIR / "task").glob("*.yaml"))}


def _kind_of(path: Path) -> str:
    from omegaconf import OmegaConf

    return str(OmegaConf.load(path).get("kind", TEXT_KIND))


def _to_plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
