"""RecAdam's annealed recall of the pretrained weights (Chen et al. 2020, "Recall and Learn", eq. 6-7).

    loss(t) = λ(t) · L_task + (1 − λ(t)) · (γ/2) · Σ ‖θ − θ_pre‖²,    λ(t) = 1 / (1 + exp(−k·(t − t₀)))

over every trainable pretrained parameter (biases and LayerNorm included; the new head has no θ_pre
and is left out, as in Sanyuan-Chen/RecAdam). Early on (t ≪ t₀) the loss is mostly the pull toward
θ_pre; after t₀ it becomes the task loss. t is the runner's ``step`` argument (optimizer steps taken
before this one). θ_pre is ``ctx.reference``, the weights finetuning starts from.

The authors implement the same objective inside an Adam variant; here it is the loss transform, so it
works with either optimizer. ``order`` puts it first among the loss transforms, so λ(t) scales the
task loss alone and the penalties of other methods are added after it, unscaled.

Defaults: γ = 5000 (the quadratic coefficient of the README's GLUE runs), sigmoid annealing with
k = 0.5 and t₀ = 250 (``run_glue_with_RecAdam.py``'s defaults; the README tunes k ∈ {0.05, 0.1, 0.2,
0.5, 1} and t₀ ∈ {100, 250, 500} on small tasks). t₀ is in steps: a 3-epoch RTE run at batch 32 has
only ~234, so the studies set t₀ for their step budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.base import Method, RunContext, register


def anneal(step: float, k: float, t0: float) -> float:
    """λ(t) = 1 / (1 + exp(−k (t − t₀))), computed without overflow."""
    z = -k * (step - t0)
    if z >= 0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


class _HalfSquaredDistances(torch.autograd.Function):
    """½ Σᵢ ‖θᵢ − θᵢ_pre‖² over lists of tensors with fused ``_foreach`` kernels; backward recomputes
    the differences instead of keeping them alive."""

    @staticmethod
    def forward(ctx, refs: Sequence[Tensor], *params: Tensor) -> Tensor:
        ctx.refs = refs
        ctx.save_for_backward(*params)
        diffs = torch._foreach_sub(list(params), list(refs))
        norms = torch._foreach_norm(diffs)
        return torch.stack(norms).pow(2).sum().mul(0.5)

    @staticmethod
    def backward(ctx, grad: Tensor):
        params = ctx.saved_tensors
        diffs = torch._foreach_sub(list(params), list(ctx.refs))
        torch._foreach_mul_(diffs, grad)
        return (None, *diffs)


def half_squared_distance(params: Sequence[Tensor], refs: Sequence[Tensor]) -> Tensor:
    return _HalfSquaredDistances.apply(list(refs), *params)


@register
class RecAdam(Method):
    name = "recadam"
    order = 5

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("gamma", "k", "t0")
        self.gamma = self.number("gamma", default=5000.0, lo=0.0)
        self.k = self.number("k", default=0.5, lo=0.0, open_lo=True)
        self.t0 = self.number("t0", default=250.0, lo=0.0)
        self._pairs: tuple[list[Tensor], list[Tensor]] | None = None
        self.last_lambda: float | None = None

    def settings(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "k": self.k, "t0": self.t0}

    def label(self) -> str:
        return f"recadam({self.gamma:g},{self.k:g},{self.t0:g})"

    def _params_and_refs(self, ctx: RunContext) -> tuple[list[Tensor], list[Tensor]]:
        if self._pairs is None:
            named = dict(ctx.model.named_parameters())
            names = [n for n in ctx.reference if n in named and named[n].requires_grad]
            self._pairs = ([named[n] for n in names],
                           [ctx.reference[n].to(named[n]) for n in names])
        return self._pairs

    def transform_loss(self, loss: Tensor, step: int, ctx: RunContext) -> Tensor:
        lam = anneal(step, self.k, self.t0)
        self.last_lambda = lam
        params, refs = self._params_and_refs(ctx)
        if not params or self.gamma == 0.0:
            return loss * lam
        return loss * lam + (1.0 - lam) * self.gamma * half_squared_distance(params, refs)

    def record(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "k": self.k, "t0": self.t0, "last_lambda": self.last_lambda}
