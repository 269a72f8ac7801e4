"""A run's recipe in one line: what the plan's header and the report's provenance both print."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def recipe_line(cfg: Mapping[str, Any]) -> str:
    """``bertadam lr 2e-05, 3 epochs, batch 32, warmup 0.1, clipping 1.0`` for a finetuning run.

    ``train.max_grad_norm`` null or 0 prints ``clipping off``: the runner clips only at a norm
    that is set and non-zero. A regularizer method that owns the clipping (``owns_clipping``: CWGNC)
    replaces the global clip, so the line names it instead: ``clipping cwgnc(1), not the global 1.0``.
    The digits experiment reads its recipe from ``task.finetune`` and clips nothing:
    ``lr 0.01, 10 epochs, batch 64, warmup 0.0``. Values print as written.
    """
    if (cfg.get("experiment") or "finetune") == "digits":
        ft = (cfg.get("task") or {}).get("finetune") or {}
        return (f"lr {ft.get('lr')}, {ft.get('epochs')} epochs, batch {ft.get('batch_size')}, "
                f"warmup {ft.get('warmup_ratio')}")
    opt, train = cfg.get("optimizer") or {}, cfg.get("train") or {}
    clip = train.get("max_grad_norm")
    clipping = clip if clip else "off"
    if (owner := _clipping_owner(cfg.get("regularizer"))) is not None:
        clipping = f"{owner}, not the global {clip}" if clip else owner
    return (f"{opt.get('name', '?')} lr {opt.get('lr')}, {train.get('epochs')} epochs, "
            f"batch {train.get('batch_size')}, warmup {train.get('warmup_ratio')}, "
            f"clipping {clipping}")


def _clipping_owner(reg: Any) -> str | None:
    """The label of the regularizer method of ``reg`` that replaces the global clip, or None."""
    from mixsweep.regularizers.base import RegularizerError, registry  # torch only when a line is printed

    if not isinstance(reg, Mapping):
        return None
    for name, cls in registry().items():
        if cls.owns_clipping and name in reg:
            try:
                return cls(reg[name] if isinstance(reg[name], Mapping) else {}).label() or name
            except RegularizerError:  # a stored record with a setting since refused: still say who clips
                return name
    return None
