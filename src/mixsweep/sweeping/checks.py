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
