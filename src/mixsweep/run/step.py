"""One optimizer step of a run, shared by every runner (finetuning, digits, ``gpu-check``), in the hook
order of :mod:`mixsweep.regularizers.base`: :func:`transform_loss` (each method's penalty on the task
loss), :func:`optimizer_step` (backward, method hooks, clipping, the update, the schedule) and
:func:`loss_entry` (the step's line of ``train_loss``). What happens before the first step (each
method's ``prepare``, the parameter groups) is :mod:`mixsweep.regularizers.lifecycle`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.base import Method, RunContext


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
               penalties: Mapping[str, Tensor], grad_norm: float | None = None) -> dict[str, Any]:
    """``{"step", "loss", "task_loss"[, "grad_norm"][, "penalty": {method: value}]}`` for ``train_loss``:
    ``loss`` is the objective (task loss + every penalty), ``task_loss`` what the model learned apart from
    them, ``grad_norm`` the global L2 norm of the step's gradient before clipping (what
    :func:`optimizer_step` returns)."""
    task = float(task_loss.detach())
    terms = {name: float(v) for name, v in {**added, **penalties}.items()}
    entry: dict[str, Any] = {"step": step, "loss": task + sum(terms.values()), "task_loss": task}
    if grad_norm is not None:
        entry["grad_norm"] = grad_norm
    if terms:
        entry["penalty"] = terms
    return entry


def optimizer_step(methods: Sequence[Method], ctx: RunContext | None, loss: Tensor, step: int, optimizer: Any,
                   scheduler: Any, max_grad_norm: float | None = None) -> float:
    """One update from the objective ``loss``, the runners' shared step (hook order of ``base``)::

        loss.backward() → after_backward (each method; e.g. wdecay's L2 gradient, DPS's mask) → clip the
        global gradient norm at ``max_grad_norm`` (None: no clipping) → before_step (e.g. decoupled decay
        of the pre-update θ, Child-Tuning's mask) → the update → after_step → scheduler.step() → zero_grad

    The clipping is ``clip(ctx, max_grad_norm)`` of the one method that sets ``owns_clipping`` (CWGNC:
    each parameter tensor at its own threshold, no global clip), else the global clip. The update is
    ``optimizer.step()``, or ``update()`` of the one method that sets ``owns_update`` (RecAdam).
    Clipping therefore acts on exactly the gradient the optimizer sees, penalty gradients included, and
    a gradient edit in before_step is one inside the optimizer's step.

    Returns the global L2 norm of the gradient before clipping, ``‖g‖ = sqrt(Σ_p ‖∇p‖²)`` over every
    parameter with a gradient, after every ``after_backward`` (the training-curve diagnostics record it
    per step), whichever clipping runs.
    """
    loss.backward()
    for m in methods:
        m.after_backward(step, ctx)
    # The digits pretraining steps with no methods and no context: the optimizer's parameters are the model's.
    every = ctx.model.parameters() if ctx is not None else (p for g in optimizer.param_groups for p in g["params"])
    params = [p for p in every if p.grad is not None]
    clipper = next((m for m in methods if m.owns_clipping), None)
    if clipper is not None:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        clipper.clip(ctx, max_grad_norm)
    elif max_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:  # the same norm clipping would compute, so a run without clipping records it too
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    lr = scheduler.get_last_lr()[0]
    for m in methods:
        m.before_step(step, lr, ctx)
    owner = next((m for m in methods if m.owns_update), None)
    if owner is None:
        optimizer.step()
    else:
        owner.update(optimizer, step, ctx)
    for m in methods:
        m.after_step(step, lr, ctx)
    with warnings.catch_warnings():
        if owner is not None:  # torch's order check only sees optimizer.step(), which the owner replaced
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)
