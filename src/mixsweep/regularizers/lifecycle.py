"""The start of a run, shared by every runner (finetuning and digits): steps 2-3 of the hook order
in :mod:`mixsweep.regularizers.base`. The per-step hooks are called by each runner's loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from mixsweep.regularizers.base import Method, RunContext
from mixsweep.regularizers.surgery import set_dropout
from mixsweep.regularizers.wdecay import pretrained_reference


def prepare(methods: Sequence[Method], ctx: RunContext) -> None:
    """Every dropout to 0 (only the ``dropout`` method sets one), each method's ``prepare``, then
    ``ctx.reference`` = w_pre as finetuning sees it (shared MixLinear targets, not copies)."""
    set_dropout(ctx.model, 0.0)
    for m in methods:
        m.prepare(ctx)
    ctx.reference = pretrained_reference(ctx.model, ctx.head)


def param_groups(methods: Sequence[Method], ctx: RunContext) -> list[dict[str, Any]]:
    """One group of every trainable parameter, reshaped by each method in turn."""
    groups: list[dict[str, Any]] = [{"params": [p for p in ctx.model.parameters() if p.requires_grad]}]
    for m in methods:
        groups = m.param_groups(groups, ctx)
    return groups


def transform_loss(methods: Sequence[Method], loss: Tensor, step: int,
                   ctx: RunContext) -> tuple[Tensor, dict[str, Tensor]]:
    """Each method's ``transform_loss`` in turn; returns the objective and, by method, what each added
    (detached), so the log can show the task loss and the penalties apart."""
    added: dict[str, Tensor] = {}
    for m in methods:
        new = m.transform_loss(loss, step, ctx)
        if new is not loss:
            added[m.name] = (new - loss).detach()
            loss = new
    return loss, added


def loss_entry(step: int, task_loss: Tensor, added: Mapping[str, Tensor],
               penalties: Mapping[str, Tensor]) -> dict[str, Any]:
    """``{"step", "loss", "task_loss"[, "penalty": {method: value}]}`` for ``train_loss``: ``loss`` is the
    objective (task loss + every penalty), ``task_loss`` what the model learned apart from them."""
    task = float(task_loss.detach())
    terms = {name: float(v) for name, v in {**added, **penalties}.items()}
    entry: dict[str, Any] = {"step": step, "loss": task + sum(terms.values()), "task_loss": task}
    if terms:
        entry["penalty"] = terms
    return entry
