"""A run's recipe in one line: what the plan's header and the report's provenance both print."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixsweep.config.stored import stored


def recipe_line(cfg: Mapping[str, Any]) -> str:
    """``bertadam lr 2e-05, 3 epochs, batch 32, warmup 0.1, clipping 1.0`` for a finetuning run.

    ``train.max_grad_norm`` null or 0 prints ``clipping off``: the runner clips only at a norm
    that is set and non-zero. A regularizer method that owns the clipping (``owns_clipping``: CWGNC)
    replaces the global clip, so the line names it instead: ``clipping cwgnc(1), not the global 1.0``.
    The digits experiment reads its recipe from ``task.finetune`` and clips nothing:
    ``lr 0.01, 10 epochs, batch 64, warmup 0.0``. Values print as written (a stored config is read
    leniently, :func:`mixsweep.config.stored.stored`).
    """
    run = stored(cfg)
    if run.experiment == "digits":
        lr, epochs, batch, warmup = run.digits_recipe
        return f"lr {lr}, {epochs} epochs, batch {batch}, warmup {warmup}"
    clip = run.max_grad_norm
    clipping = clip if clip else "off"
    if (owner := _clipping_owner(run.regularizer)) is not None:
        clipping = f"{owner}, not the global {clip}" if clip else owner
    return (f"{run.optimizer_name or '?'} lr {run.optimizer_lr}, {run.epochs} epochs, "
            f"batch {run.batch_size}, warmup {run.warmup_ratio}, clipping {clipping}")


def _clipping_owner(reg: Mapping[str, Any]) -> str | None:
    """The label of the regularizer method of ``reg`` that replaces the global clip, or None."""
    from mixsweep.regularizers.base import RegularizerError, registry  # torch only when a line is printed

    for name, cls in registry().items():
        if cls.owns_clipping and name in reg:
            try:
                return cls(reg[name] if isinstance(reg[name], Mapping) else {}).label() or name
            except RegularizerError:  # a stored record with a setting since refused: still say who clips
                return name
    return None
