"""The layer of DPS-Mix (Zhang et al. 2022): ``nn.Linear`` whose weight, in training, is mixed with a target
under a mask that is random in accumulate phases and selected from gradient statistics in update phases.

The reference code is the specification: ZhangHaojie077/DPS, ``transformers/DPSMix/moudle.py``
``DPSMix.forward`` (the targets) and ``transformers/DPSMix/grads_ops.py`` ``Grads_Ops`` (the mask, the mixed
weight, the gradient and its statistics). With s = 1, 2, … the layer's training forward passes, u the phase
length, c = ⌈s / u⌉, p = ``reserve_p``, W the weight and M the mask::

    W̃ = ((1 − M)·T + M·W − p·T) / (1 − p),      ∂L/∂W ← ∂L/∂W̃ · M   (the reference's backward: no 1/(1 − p))

* c odd: T = the weight at the first training forward (θ_pre as finetuning sees it); M = a fresh Bernoulli(1 − p)
  draw per input column (one row drawn, repeated over the output rows), every forward. Statistics, from the
  phase's first step afresh: ``G = Σ g²·M / 1e3`` and ``A = Σ M`` (how often each entry was kept).
* c even: T = the weight at the phase's first step; at that step M = [S ≥ k-th largest of S], k = ⌈n(1 − p)⌉,
  with S = G / max(A, 1) (A = 0 read as 1), times exp(−A / u) when u ≥ 50; M is kept for the phase.

At eval the layer is the plain Linear (the reference returns W when not training). Masks are drawn from the
generator the method passes (``noise_seed``), layer by layer in forward order, as the reference draws them
(it uses the global stream). Each layer keeps its own statistics; the reference keeps one list for all layers
indexed by a counter that forward pushes and backward pops, which is the same when the backward runs the
layers in reverse order (it does for BERT).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCALE = 1e3  # the reference's ``epsilon``


def mix_statistic(grads: Tensor, accum: Tensor, update_steps: int) -> Tensor:
    """S = G / max(A, 1), × exp(−A / u) when u ≥ 50 (``Grads_Ops.forward``, first step of an update phase)."""
    accum = torch.where(accum > 0, accum, 1)
    if update_steps < 50:
        return grads / accum
    return (grads / accum) * torch.exp(-accum / update_steps)


class _MixFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: Tensor, target: Tensor, noise: Tensor, p: float, layer: DPSMixLinear,
                step: int) -> Tensor:
        ctx.noise, ctx.layer, ctx.step = noise, layer, step
        return ((1 - noise) * target + noise * weight.clone() - p * target) / (1 - p)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        ctx.layer.accumulate(grad_output, ctx.noise, ctx.step)
        return grad_output * ctx.noise, None, None, None, None, None


class DPSMixLinear(nn.Linear):
    """``nn.Linear`` sharing a given layer's Parameters, its training forward DPS-Mix's (module docstring)."""

    def __init__(self, linear: nn.Linear, p: float, update_steps: int, generator: torch.Generator | None):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_parameter("weight", linear.weight)
        self.register_parameter("bias", linear.bias)
        self.p, self.update_steps, self.generator = p, update_steps, generator
        self.steps = 0
        self.pretrained: Tensor | None = None
        self.target: Tensor | None = None
        self.grads: Tensor | None = None
        self.accum: Tensor | None = None
        self.selected: Tensor | None = None

    def accumulating(self, s: int) -> bool:
        """Whether training forward s is in an accumulate phase (c = ⌈s / u⌉ odd)."""
        return math.ceil(s / self.update_steps) % 2 == 1

    def _phase(self, s: int) -> tuple[bool, bool]:
        """(accumulate phase, first step of its phase) at training forward s."""
        return self.accumulating(s), (s - 1) % self.update_steps == 0

    def forward(self, input: Tensor) -> Tensor:
        if not self.training:
            return F.linear(input, self.weight, self.bias)
        self.steps += 1
        odd, first = self._phase(self.steps)
        if self.steps == 1:
            self.target = self.weight.detach().clone()
            self.pretrained = self.weight.detach().clone()
        elif not odd and first:
            self.target = self.weight.detach().clone()
        if odd:
            row = torch.empty(self.in_features, dtype=self.weight.dtype, device=self.weight.device)
            row.bernoulli_(1 - self.p, generator=self.generator)
            noise = row.repeat(self.out_features, 1)
            target = self.pretrained
        else:
            if first:
                stat = mix_statistic(self.grads, self.accum, self.update_steps).reshape(-1)
                k = math.ceil(stat.numel() * (1 - self.p))
                threshold = torch.kthvalue(stat, stat.numel() - k + 1).values  # the k-th largest
                self.selected = torch.where(stat.view_as(self.weight) >= threshold, 1, 0)
            noise = self.selected
            target = self.target
        return F.linear(input, _MixFunction.apply(self.weight, target, noise, self.p, self, self.steps), self.bias)

    @torch.no_grad()
    def accumulate(self, grad: Tensor, noise: Tensor, step: int) -> None:
        """The backward's statistics for the forward pass at ``step`` (nothing in update phases)."""
        odd, first = self._phase(step)
        if not odd:
            return
        sq = grad ** 2 * noise / SCALE
        if first or self.grads is None:
            self.grads, self.accum = sq, noise.long()
        else:
            self.grads += sq
            self.accum += noise.long()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dps_mix p={self.p}, update_steps={self.update_steps}"
