"""Child-Tuning_F (Xu et al. 2021, "Raise a Child in Large Language Model", §3.2, task-free variant).

At every step, after backward and before clipping and the optimizer step, each pretrained
parameter's gradient is multiplied by a fresh element-wise mask::

    g ← g ⊙ M / p_F,    M ~ Bernoulli(p_F)

so only a random "child network" is updated, and the expected gradient is unchanged. The new head
is not masked (it has no pretrained weights; the paper masks the pretrained model). The masks are
drawn from a generator derived from ``noise_seed``, independent of the dropout/mixout stream.

Settings: ``p_f`` ∈ (0, 1] (1 = plain finetuning). The default 0.3 is a value seen in public scripts
that run Child-Tuning; the paper tunes p_F per task and its grid was not checked here. Record: the fraction of gradient entries kept in the last step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RunContext, register


def mask_gradient(grad: Tensor, mask: Tensor, p: float) -> Tensor:
    """g ⊙ M / p, in place."""
    return grad.mul_(mask).div_(p)


@register
class ChildTuning(Method):
    name = "child_tuning"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("p_f")
        self.p_f = self.number("p_f", default=0.3, lo=0.0, hi=1.0, open_lo=True)
        self._gen: torch.Generator | None = None
        self._params: list[torch.nn.Parameter] | None = None
        self.kept = None

    def settings(self) -> dict[str, Any]:
        return {"p_f": self.p_f}

    def label(self) -> str:
        return f"child_tuning_f({self.p_f:g})"

    def active(self) -> bool:
        return self.p_f < 1.0

    def _setup(self, ctx: RunContext) -> None:
        named = dict(ctx.model.named_parameters())
        self._params = [named[n] for n in ctx.reference if n in named and named[n].requires_grad]
        device = self._params[0].device if self._params else ctx.device
        self._gen = generator(ctx.noise_seed, self.name, device)

    @torch.no_grad()
    def after_backward(self, step: int, ctx: RunContext) -> None:
        if self._params is None:
            self._setup(ctx)
        kept, total = [], 0
        for p in self._params:
            if p.grad is None:
                continue
            mask = torch.empty_like(p.grad).bernoulli_(self.p_f, generator=self._gen)
            mask_gradient(p.grad, mask, self.p_f)
            kept.append(mask.sum())
            total += mask.numel()
        # Kept as a tensor: reading it here would synchronize a GPU every step.
        self.kept = (torch.stack(kept).sum() / total) if total else None

    def record(self) -> dict[str, Any]:
        return {"p_f": self.p_f, "kept_last_step": None if self.kept is None else float(self.kept)}
