"""Checks of a run config that need no data, model or device, so that planning can run them
for every cell before anything is launched or written. Problems that depend on the machine
a run lands on (data paths, a GPU) are found by the run itself."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mixsweep.errors import UserError


def check_regularizer(reg: Mapping[str, Any]) -> None:
    """Every probability in [0, 1] (``null`` allowed where it means "inherit") and λ ≥ 0."""
    _probability(reg.get("dropout"), "regularizer.dropout", example=0.1, nullable=True)
    _probability((reg.get("mixout") or {}).get("p"), "regularizer.mixout.p", example=0.7)
    _probability((reg.get("head") or {}).get("p"), "regularizer.head.p", example=0.7, nullable=True)
    lam = (reg.get("wdecay") or {}).get("lam")
    if not _is_number(lam) or not math.isfinite(lam) or lam < 0:
        raise UserError(
            f"regularizer.wdecay.lam={lam!r} must be a finite number >= 0: "
            "pass e.g. regularizer.wdecay.lam=0.01 (0 turns weight decay off)"
        )


def _probability(value: Any, key: str, *, example: float, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise UserError(f"{key}={value!r} is not a probability: choose a value in [0, 1], e.g. {key}={example}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
