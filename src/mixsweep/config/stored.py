"""A stored run's config (a record's ``config``), read leniently into the few facts the analysis, the
report's provenance and the exports print or group by.

A live run's config is parsed strictly (:func:`mixsweep.config.settings.parse_run`): a bad value stops it.
A stored one was valid when its run started, but under the schema of its day: a key since renamed or a
legacy value must not stop a report over a results folder that holds it. So this reader never raises: a
fact the config does not hold (or holds in a shape this code cannot read) is None, and the report says
``?`` for it. With :mod:`mixsweep.config.recipe` it is the one place a stored config is read by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StoredRun:
    """What a stored run config says, as far as it says it."""

    experiment: str = "finetune"
    task: dict[str, Any] = field(default_factory=dict)         # the task file's block (TaskSpec.from_config)
    regularizer: dict[str, Any] = field(default_factory=dict)  # the methods' block (build_methods)
    optimizer_name: str | None = None
    model_name_or_path: str | None = None
    model_revision: str | None = None
    data_source: str | None = None  # as written (None: the config does not say)
    glue_dir: str | None = None
    hub_id: str | None = None
    max_length: int | None = None
    # the recipe as written (printed as the config has it: 2e-05, 0.1, null), None where it does not say
    optimizer_lr: Any = None
    epochs: Any = None
    batch_size: Any = None
    warmup_ratio: Any = None
    max_grad_norm: Any = None

    @property
    def task_default_source(self) -> str | None:
        """The task block's ``default_source`` (where ``data.source=auto`` reads from)."""
        return _text(self.task.get("default_source"))

    @property
    def source(self) -> str:
        """``data.source`` with ``auto`` (or nothing) resolved to the task's ``default_source``, else ``hub``."""
        if self.data_source not in (None, "auto"):
            return self.data_source
        return self.task_default_source or "hub"

    @property
    def num_labels(self) -> int | None:
        """The task block's ``num_labels`` (None when the block does not say)."""
        n = self.task.get("num_labels")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    @property
    def digits_recipe(self) -> tuple[Any, Any, Any, Any]:
        """``task.finetune`` of a ``task=digits`` config as written: (lr, epochs, batch_size, warmup_ratio)."""
        finetune = _block(self.task, "finetune")
        return finetune.get("lr"), finetune.get("epochs"), finetune.get("batch_size"), finetune.get("warmup_ratio")

    @property
    def digits_model(self) -> str:
        """``MLP 784-300-100-10, pretrained on <source kind>, finetuned on <target kind>`` (task=digits)."""
        model, data = _block(self.task, "model"), _block(self.task, "data")
        hidden = "-".join(str(h) for h in model.get("hidden", []) or [])
        src, tgt = _block(data, "source").get("kind", "?"), _block(data, "target").get("kind", "?")
        return f"MLP 784-{hidden}-10, pretrained on {src}, finetuned on {tgt}"


def stored(config: Mapping[str, Any] | None) -> StoredRun:
    """``config`` (a record's, possibly absent or from an older schema) as a :class:`StoredRun`."""
    if not isinstance(config, Mapping):
        return StoredRun()
    model, data, optimizer = _block(config, "model"), _block(config, "data"), _block(config, "optimizer")
    train = _block(config, "train")
    return StoredRun(
        experiment=str(config.get("experiment") or "finetune"),
        task=dict(_block(config, "task")),
        regularizer=dict(_block(config, "regularizer")),
        optimizer_name=_text(optimizer.get("name")),
        model_name_or_path=_text(model.get("name_or_path")),
        model_revision=_text(model.get("revision")),
        data_source=_text(data.get("source")),
        glue_dir=_text(data.get("glue_dir")),
        hub_id=_text(data.get("hub_id")),
        max_length=data.get("max_length") if isinstance(data.get("max_length"), int) else None,
        optimizer_lr=optimizer.get("lr"),
        epochs=train.get("epochs"),
        batch_size=train.get("batch_size"),
        warmup_ratio=train.get("warmup_ratio"),
        max_grad_norm=train.get("max_grad_norm"),
    )


# the blocks of the run config the analysis reads (cell identity, labels, recipe, provenance)
_CONFIG_BLOCKS = ("task", "model", "data", "train", "optimizer", "regularizer", "record", "paths")


def shape_problem(config: Any) -> str | None:
    """Why a record's ``config`` cannot be read as a run config (None: it can): it must be a JSON object whose
    blocks are objects, and ``optimizer.name`` (the analysis groups cells by it) a string."""
    if not isinstance(config, dict):
        return "must be a JSON object (the run's config)"
    bad = [k for k in _CONFIG_BLOCKS if config.get(k) is not None and not isinstance(config[k], dict)]
    if bad:
        return f"block '{bad[0]}' must be a JSON object"
    name = _block(config, "optimizer").get("name")
    return None if name is None or isinstance(name, str) else "optimizer.name must be a string"


def _block(values: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    block = values.get(name)
    return block if isinstance(block, Mapping) else {}


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
