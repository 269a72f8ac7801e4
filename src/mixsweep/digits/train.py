"""One training recipe for both phases: Adam, linear warmup then linear decay, minibatches from tensors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixsweep.config.digits import DigitsFinetune, DigitsPretrain
from mixsweep.digits.data import Split
from mixsweep.optim import linear_warmup_decay
from mixsweep.regularizers import Method, RunContext, lifecycle
from mixsweep.run.step import loss_entry, optimizer_step, transform_loss


@dataclass(frozen=True)
class Recipe:
    """One phase's optimizer and schedule (its settings: ``task.pretrain``, ``task.finetune``)."""

    lr: float
    epochs: int
    batch_size: int
    warmup_ratio: float
    weight_decay: float  # λ of wdecay(0, λ); 0 in finetuning (the paper uses none there)

    @classmethod
    def pretraining(cls, phase: DigitsPretrain, epochs: int) -> Recipe:
        """One cell of the w_pre grid: ``phase``'s recipe run for ``epochs`` (one of ``phase.epochs``)."""
        return cls(lr=phase.lr, epochs=epochs, batch_size=phase.batch_size, warmup_ratio=phase.warmup_ratio,
                   weight_decay=phase.weight_decay)

    @classmethod
    def finetuning(cls, phase: DigitsFinetune) -> Recipe:
        return cls(lr=phase.lr, epochs=phase.epochs, batch_size=phase.batch_size, warmup_ratio=phase.warmup_ratio,
                   weight_decay=phase.weight_decay)


@dataclass
class FitResult:
    steps: int = 0
    diverged: bool = False
    train_loss: list[dict[str, Any]] = field(default_factory=list)  # [{"step", "loss", "task_loss"}]


def total_steps(n: int, recipe: Recipe) -> int:
    """Optimizer steps of a run over ``n`` examples: ⌈n / batch_size⌉ per epoch."""
    return math.ceil(n / recipe.batch_size) * recipe.epochs


def make_optimizer(model: nn.Module, recipe: Recipe, groups: list[dict[str, Any]] | None = None) -> torch.optim.Adam:
    """Adam with wdecay(0, λ) = an L2 term (λ/2)‖w‖² on weight matrices only, not on biases or LayerNorm
    (pretraining's recipe; finetuning regularizes through the methods, ``weight_decay`` 0).

    Adam's ``weight_decay`` adds λw to the gradient, which is exactly the gradient of that term.
    ``groups`` (from the methods) keep their ``lr_scale``; each is split by that rule.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    split = []
    for group in groups or [{"params": trainable}]:
        extra = {k: v for k, v in group.items() if k != "params"}
        lr = recipe.lr * float(extra.pop("lr_scale", 1.0))
        params = list(group["params"])
        split += [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": recipe.weight_decay, "lr": lr, **extra},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": lr, **extra},
        ]
    return torch.optim.Adam([g for g in split if g["params"]], lr=recipe.lr, betas=(0.9, 0.999))


def fit(
    model: nn.Module,
    data: Split,
    recipe: Recipe,
    *,
    order: torch.Generator,
    after_epoch: Callable[[int, int], None] | None = None,
    log_every: int = 20,
    methods: Sequence[Method] = (),
    ctx: RunContext | None = None,
) -> FitResult:
    """Train in place; each epoch visits ``data`` in a fresh permutation drawn from ``order``.

    The lr follows the shared schedule (:func:`mixsweep.optim.linear_warmup_decay`). ``methods`` (with
    their ``ctx``, already prepared) get the per-step hooks in the documented order, as in a
    finetuning run. ``after_epoch(epoch, step)`` runs after every epoch (1-based) with the model back
    in train mode afterwards. A non-finite loss stops training and marks the result diverged.
    """
    n = len(data)
    total = total_steps(n, recipe)
    groups = lifecycle.param_groups(methods, ctx) if ctx is not None else None
    optimizer = make_optimizer(model, recipe, groups)
    scheduler = linear_warmup_decay(optimizer, total, recipe.warmup_ratio)
    if ctx is not None:
        ctx.optimizer = optimizer
    result = FitResult()
    model.train()
    for epoch in range(1, recipe.epochs + 1):
        perm = torch.randperm(n, generator=order).to(data.x.device)
        for start in range(0, n, recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            step = result.steps
            batch = {"x": data.x[idx], "y": data.y[idx]}
            if ctx is not None:
                ctx.batch = batch
            logits = model(batch["x"])
            task_loss = loss = nn.functional.cross_entropy(logits, batch["y"])
            added = {}
            if ctx is not None:
                ctx.outputs = logits
                loss, added = transform_loss(methods, loss, step, ctx)
            optimizer_step(methods, ctx, loss, step, optimizer, scheduler)
            result.steps += 1
            if result.steps % log_every == 0 or result.steps == total:
                entry = loss_entry(result.steps, task_loss, added, ctx.penalties if ctx else {})
                result.train_loss.append(entry)
                if not math.isfinite(entry["loss"]):
                    result.diverged = True
                    return result
            if ctx is not None:
                ctx.penalties.clear()
        if after_epoch is not None:
            after_epoch(epoch, result.steps)
            model.train()
    return result


@torch.no_grad()
def accuracy(model: nn.Module, data: Split, batch_size: int = 8192) -> float:
    """Fraction of ``data`` classified correctly, in eval mode (plain weights: no dropout, no mixout)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        logits = model(data.x[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == data.y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(data)
