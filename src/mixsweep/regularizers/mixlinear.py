"""``MixLinear``: an ``nn.Linear`` whose weight is mixed out toward a frozen target while training.

    y = x Φ(w; u, M)ᵀ + b,    Φ as in :mod:`mixsweep.regularizers.mixout`; the bias b is never mixed.

The module *is* an ``nn.Linear`` with the same ``weight``/``bias`` Parameters (``from_linear`` reuses the
Parameter objects), so optimizers and ``state_dict`` are unchanged and a trained model loads as a plain
one. The target u is a non-persistent buffer: it follows ``.to()``, is not a parameter, and is not saved.

The forward and backward are fused into one autograd function that recomputes Φ in the backward pass
instead of keeping it alive: the extra memory is the target buffer plus one transient Φ per layer, not
a saved copy of every mixed weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixsweep.regularizers.mixout import GRADS, GRANULARITIES, keep_mask, mix, weight_grad


class _MixLinearFunction(torch.autograd.Function):
    """y = F.linear(x, Φ, b), saving x and the mask; Φ is rebuilt from w, u and the mask in backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, target, keep, p: float, official: bool) -> Tensor:
        out = F.linear(x, mix(weight, target, keep, p), bias)
        ctx.save_for_backward(x, weight, target, keep)
        ctx.p, ctx.official, ctx.has_bias = p, official, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight, target, keep = ctx.saved_tensors
        d_x = d_weight = d_bias = None
        # Under autocast the forward matmul ran in grad_out's dtype; compute the backward in it too.
        dtype = grad_out.dtype
        if ctx.needs_input_grad[0]:
            d_x = grad_out.matmul(mix(weight, target, keep, ctx.p).to(dtype))
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            d_mixed = grad_2d.t().mm(x.reshape(-1, x.shape[-1]).to(dtype))
            d_weight = weight_grad(d_mixed, keep, ctx.p, ctx.official)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            d_bias = grad_2d.sum(0)
        return d_x, d_weight, d_bias, None, None, None, None


class MixLinear(nn.Linear):
    """``nn.Linear`` with mixout(target, p) on its weight; see the module docstring."""

    target: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        p: float,
        granularity: str = "neuron",
        grad: str = "exact",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """A freshly initialised layer whose target is a copy of its own initial weight.

        The settings are validated once, where a run's config is read (the ``mixout`` method);
        here they are only asserted."""
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        assert isinstance(p, (int, float)) and 0.0 <= p <= 1.0, f"mixout p must be in [0, 1], got {p!r}"
        assert granularity in GRANULARITIES and grad in GRADS, (granularity, grad)
        self.p, self.granularity, self.grad = float(p), granularity, grad
        self.generator = generator
        self.register_buffer("target", self.weight.detach().clone(), persistent=False)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        p: float,
        target: Tensor | None = None,
        granularity: str = "neuron",
        grad: str = "exact",
        generator: torch.Generator | None = None,
    ) -> MixLinear:
        """Wrap ``linear``, sharing its Parameters; ``target`` defaults to a frozen copy of its weight.

        The target is always a copy, also when one is given: a target that aliased a trained weight
        (``target=linear.weight``) would move with training, the official code's known pitfall.
        """
        if isinstance(linear, MixLinear):
            raise ValueError("this layer already is a MixLinear: apply mixout once per model")
        if target is not None and target.shape != linear.weight.shape:
            raise ValueError(
                f"mixout target shape {tuple(target.shape)} differs from weight shape "
                f"{tuple(linear.weight.shape)}: pass a target of the weight's shape"
            )
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            p=p,
            granularity=granularity,
            grad=grad,
            generator=generator,
            device="meta",
        )
        layer.weight = linear.weight
        layer.bias = linear.bias
        source = linear.weight if target is None else target
        layer.target = source.detach().to(linear.weight, copy=True)
        layer.train(linear.training)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return F.linear(x, self.weight, self.bias)
        if self.p == 1.0:
            return F.linear(x, self.target, self.bias)
        keep = keep_mask(self.weight, self.p, self.granularity, self.generator)
        return _MixLinearFunction.apply(
            x, self.weight, self.bias, self.target, keep, self.p, self.grad == "official"
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p:g}, granularity={self.granularity}, grad={self.grad}"
