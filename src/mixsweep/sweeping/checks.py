"""Checks of a run config that need no data, model or device, so that planning can run them
for every cell before anything is launched or written. Problems that depend on the machine
a run lands on (data paths, a GPU) are found by the run itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_regularizer(reg: Mapping[str, Any]) -> None:
    """Build the cell's methods: each validates its own settings (the only validation on the way
    from the yaml to the operator) and raises a one-line RegularizerError naming the key."""
    from mixsweep.regularizers.base import build_methods

    build_methods(reg)


def inert_methods(reg: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, str]:
    """``{method: why}`` for the cell's methods that change nothing on its ``task`` (the composed
    ``cfg.task``), see :meth:`mixsweep.regularizers.base.Method.inert_on`; {} for a non-text task."""
    from mixsweep.data.tasks import TEXT_KIND, TaskSpec
    from mixsweep.regularizers.base import inert_methods as inert

    if task.get("kind", TEXT_KIND) != TEXT_KIND:
        return {}
    return inert(reg, TaskSpec.from_config(task))
