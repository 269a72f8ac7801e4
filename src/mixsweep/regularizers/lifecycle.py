"""The methods' part of a run before its first step, shared by every runner (finetuning and digits), in
the hook order of :mod:`mixsweep.regularizers.base`: :func:`prepare`, then :func:`param_groups`. Each step
after that is :mod:`mixsweep.run.step`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
