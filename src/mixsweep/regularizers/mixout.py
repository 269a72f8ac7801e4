"""Mixout, the functional operator (Lee, Cho & Kang, ICLR 2020, eq. 4 with μ = 1 − p).

    Φ(w; u, M) = u + M / (1 − p) ⊙ (w − u),        M ~ Bernoulli(1 − p)

A kept entry (M = 1) becomes u + (w − u)/(1 − p); a mixed-out entry (M = 0) becomes the target u
exactly. E[Φ] = w, so evaluation uses the plain weight w. With u = 0 this is inverted dropconnect.

Granularity of M:
- ``"neuron"`` (the paper's mixout and the official code): one draw per *input* neuron, i.e. per
  column of an ``nn.Linear`` weight (out × in), shared by every output row and by the whole batch, drawn
  once per forward call. M is stored as a 1 × in mask and broadcast, never as a weight-sized tensor.
  Weights with more than two dimensions get one draw per slice ``w[:, j, ...]``; 1-D weights per element.
- ``"element"``: mixconnect, one draw per weight element (a weight-sized *bool* mask).

Gradient with respect to w:
- ``"exact"``: the true derivative of Φ, ∂L/∂w = M/(1 − p) ⊙ ∂L/∂Φ (what autograd would give).
- ``"official"``: the hand-written backward of github.com/bloodwass/mixout, ∂L/∂Φ ⊙ M, which omits
  the 1/(1 − p) factor, i.e. (1 − p) × exact (10× smaller at p = 0.9). Adam almost cancels a constant
  scale, but gradient-norm clipping, Adam's ε and an explicit L2 term do not, so use it only to
  compare with results of the official code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GRANULARITIES = ("neuron", "element")
GRADS = ("exact", "official")


def keep_mask(
    weight: Tensor, p: float, granularity: str = "neuron", generator: torch.Generator | None = None
) -> Tensor:
    """Draw the bool keep mask M on ``weight``'s device (shape: see the module docstring)."""
    per_neuron = granularity == "neuron" and weight.dim() >= 2
    shape = (1, *weight.shape[1:]) if per_neuron else weight.shape
    return torch.empty(shape, dtype=torch.bool, device=weight.device).bernoulli_(1.0 - p, generator=generator)


def _scaled(keep: Tensor, scale: float, like: Tensor) -> Tensor:
    """``keep · scale`` in ``like``'s dtype; cheap because it is only built for broadcast (neuron) masks."""
    return keep.to(like.dtype).mul_(scale)


def _times_mask(t: Tensor, keep: Tensor, scale: float) -> Tensor:
    """``t ⊙ keep · scale`` in place on ``t``; a weight-sized mask is applied as bool, never converted."""
    if keep.shape == t.shape:
        return t.mul_(keep).mul_(scale)
    return t.mul_(_scaled(keep, scale, t))


def mix(weight: Tensor, target: Tensor, keep: Tensor, p: float) -> Tensor:
    """Φ for a given mask, with a single weight-sized allocation (the result). No autograd graph."""
    with torch.no_grad():
        return _times_mask(weight - target, keep, 1.0 / (1.0 - p)).add_(target)


def weight_grad(grad_mixed: Tensor, keep: Tensor, p: float, official: bool) -> Tensor:
    """∂L/∂w from ∂L/∂Φ, in place on ``grad_mixed``, in the exact or official mode (module docstring)."""
    return _times_mask(grad_mixed, keep, 1.0 if official else 1.0 / (1.0 - p))


class _Mixout(torch.autograd.Function):
    """Saves only the (1 × in for neuron granularity) mask for backward, never Φ or a dense mask."""

    @staticmethod
    def forward(ctx, weight: Tensor, target: Tensor, keep: Tensor, p: float, official: bool) -> Tensor:
        ctx.save_for_backward(keep)
        ctx.p, ctx.official = p, official
        return mix(weight, target, keep, p)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (keep,) = ctx.saved_tensors
        d_weight = d_target = None
        if ctx.needs_input_grad[0]:
            d_weight = weight_grad(grad.clone(), keep, ctx.p, ctx.official)
        if ctx.needs_input_grad[1]:  # the target's derivative is always the exact one
            d_target = grad - weight_grad(grad.clone(), keep, ctx.p, official=False)
        return d_weight, d_target, None, None, None


def _check_args(weight: Tensor, target: Tensor, p: float, granularity: str, grad: str) -> float:
    """Argument checks of the stand-alone operator (a run's settings are validated once, by the
    ``mixout`` method; the layer and the surgery only assert)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"mixout p must be a number in [0, 1], got {p!r}: pass e.g. 0.7")
    for value, choices, what in ((granularity, GRANULARITIES, "granularity"), (grad, GRADS, "grad mode")):
        if value not in choices:
            raise ValueError(f"unknown mixout {what} {value!r}: choose one of {', '.join(choices)}")
    if target.shape != weight.shape:
        raise ValueError(
            f"mixout target shape {tuple(target.shape)} differs from weight shape {tuple(weight.shape)}: "
            "pass a target of the weight's shape"
        )
    if target.device != weight.device:
        raise ValueError(
            f"mixout target is on {target.device} but the weight on {weight.device}: move the target once "
            "(e.g. keep it as a module buffer) instead of copying it every step"
        )
    return float(p)


def mixout(
    weight: Tensor,
    target: Tensor,
    p: float,
    *,
    training: bool = True,
    granularity: str = "neuron",
    grad: str = "exact",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mix ``weight`` toward ``target`` with probability ``p``: Φ(w; u, M) of the module docstring.

    Returns ``weight`` itself when ``p == 0`` or ``training`` is false, and a copy of ``target`` when
    ``p == 1``. The forward allocates one weight-sized tensor (the result) and saves only the mask for
    backward. ``generator`` (on the weight's device) makes the masks reproducible.
    """
    p = _check_args(weight, target, p, granularity, grad)
    if not training or p == 0.0:
        return weight
    if p == 1.0:
        return target.clone()
    keep = keep_mask(weight, p, granularity, generator)
    return _Mixout.apply(weight, target, keep, p, grad == "official")
