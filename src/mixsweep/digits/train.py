"""One training recipe for both phases: Adam, linear warmup then linear decay, minibatches from tensors."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixsweep.digits.data import Split


@dataclass(frozen=True)
class Recipe:
    lr: float
    epochs: int
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0  # λ of wdecay(0, λ); 0 in finetuning (the paper uses none there)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], epochs: int | None = None) -> Recipe:
        return cls(
            lr=float(cfg["lr"]),
            epochs=int(cfg["epochs"] if epochs is None else epochs),
            batch_size=int(cfg.get("batch_size", 32)),
            warmup_ratio=float(cfg.get("warmup_ratio", 0.1)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
        )


@dataclass
class FitResult:
    steps: int = 0
    diverged: bool = False
    train_loss: list[dict[str, float]] = field(default_factory=list)  # [{"step", "loss"}]


def lr_multiplier(step: int, total: int, warmup_ratio: float) -> float:
    """m(t) = t / W for t < W, then (T − t) / (T − W), with W = ⌊warmup_ratio · T⌋ (HF's linear schedule)."""
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Adam:
    """Adam with wdecay(0, λ) = an L2 term (λ/2)‖w‖² on weight matrices only, not on biases or LayerNorm.

    Adam's ``weight_decay`` adds λw to the gradient, which is exactly the gradient of that term.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": recipe.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.Adam(groups, lr=recipe.lr, betas=(0.9, 0.999))


def fit(
    model: nn.Module,
    data: Split,
    recipe: Recipe,
    *,
    order: torch.Generator,
    after_epoch: Callable[[int, int], None] | None = None,
    log_every: int = 20,
) -> FitResult:
    """Train in place; each epoch visits ``data`` in a fresh permutation drawn from ``order``.

    ``after_epoch(epoch, step)`` runs after every epoch (1-based) with the model back in train mode
    afterwards. A non-finite loss stops training and marks the result diverged.
    """
    n = len(data)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    optimizer = make_optimizer(model, recipe)
    result = FitResult()
    model.train()
    for epoch in range(1, recipe.epochs + 1):
        perm = torch.randperm(n, generator=order).to(data.x.device)
        for start in range(0, n, recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_multiplier(result.steps, total, recipe.warmup_ratio)
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.steps += 1
            if result.steps % log_every == 0 or result.steps == total:
                value = loss.item()
                result.train_loss.append({"step": result.steps, "loss": value})
                if not math.isfinite(value):
                    result.diverged = True
                    return result
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
