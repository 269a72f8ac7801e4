"""NoisyTune (Wu et al. 2022, "NoisyTune: A Little Noise Can Help You Finetune Pretrained Language
Models Better", eq. 1).

The authors publish no repository; the specification is the two-line PyTorch snippet in the paper (§2),
which loops over ``model.named_parameters()`` of the model about to be finetuned and adds, in place::

    θ ← θ + (U − ½) · λ · std(θ),    U ~ U[0, 1) element-wise (``torch.rand``),  std unbiased (``torch.std``)

so every parameter is perturbed: matrices, biases, LayerNorm vectors and the new head too (issue 14's
version skipped the head; replaced in issue 20). A one-element tensor (a regression head's bias) has
no unbiased std (the snippet would write NaN) and is left unchanged; a constant tensor has std 0 and is
unchanged anyway. λ = 0.15 is the paper's default. Noise is drawn in ``named_parameters`` order from a
generator derived from ``init_seed``. It runs after re-init and before any other prepare(), so mixout's
targets and ``ctx.reference`` are the noisy weights, where finetuning starts (see reinit).

Settings: ``lam`` ∈ (0, 1]. Record: how many tensors were perturbed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RunContext, register


def noisy(theta: Tensor, u: Tensor, lam: float) -> Tensor:
    """θ + (u − ½)·λ·std(θ) for given uniform draws u ∈ [0, 1)."""
    return theta + (u - 0.5) * lam * theta.std()


@register
class NoisyTune(Method):
    name = "noisytune"
    order = 12

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("lam")
        self.lam = self.number("lam", default=0.15, lo=0.0, hi=1.0, open_lo=True)
        self.perturbed: list[str] = []

    def settings(self) -> dict[str, Any]:
        return {"lam": self.lam}

    def label(self) -> str:
        return f"noisytune({self.lam:g})"

    @torch.no_grad()
    def prepare(self, ctx: RunContext) -> None:
        gen = generator(ctx.init_seed, self.name)
        self.perturbed = []
        for name, p in ctx.model.named_parameters():
            if p.numel() < 2:
                continue
            u = torch.rand(p.shape, generator=gen, dtype=torch.float32).to(p.device)
            p.copy_(noisy(p.float(), u, self.lam))
            self.perturbed.append(name)
        for m in ctx.model.modules():  # a MixLinear wrapped before us: its target follows (see reinit)
            target = getattr(m, "target", None)
            weight = getattr(m, "weight", None)
            if isinstance(target, Tensor) and isinstance(weight, Tensor) and target.shape == weight.shape:
                target.copy_(weight)

    def record(self) -> dict[str, Any]:
        return {"lam": self.lam, "tensors": len(self.perturbed)}
