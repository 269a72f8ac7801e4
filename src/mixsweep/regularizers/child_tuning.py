"""Child-Tuning_F (Xu et al. 2021, "Raise a Child in Large Language Model", §3.2, task-free variant).

The reference code is the specification: PKUnlp-icler/ChildTuning, ``ChildTuningOptimizer.py``,
``ChildTuningAdamW.step`` (mode ChildTuning-F). Inside the optimizer step, i.e. after gradient clipping
and before Adam's moments, the gradient of *every* parameter the optimizer holds (the new head
included, ``ChildTuningF.py`` passes all ``model.named_parameters()``) is multiplied by a fresh mask::

    g ← g · (M / p_F),    M ~ Bernoulli(p_F) element-wise

so only a random "child network" is updated, and the expected gradient is unchanged. Here that is the
``before_step`` hook (after clipping, before the configured optimizer reads the gradient); issue 14's
version masked before clipping (clipping saw a norm inflated by ~1/√p_F) and skipped the head, and
was replaced (issue 20). Masks are drawn in the optimizer's parameter order (groups, then params,
those with a gradient) from a generator derived from ``noise_seed``, independent of dropout/mixout.

Settings: ``p_f`` ∈ (0, 1] (1 = plain finetuning). The default 0.3 is ``run.sh``'s ``REVERSE_P``; the
paper tunes p_F per task. Record: the fraction of gradient entries kept in the last step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RunContext, register


def mask_gradient(grad: Tensor, mask: Tensor, p: float) -> Tensor:
    """g · (M / p), in place (M is overwritten with M / p)."""
    return grad.mul_(mask.div_(p))


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
        if ctx.optimizer is not None:
            self._params = [p for g in ctx.optimizer.param_groups for p in g["params"]]
        else:  # a caller without an optimizer in the context: every trainable parameter
            self._params = [p for p in ctx.model.parameters() if p.requires_grad]
        device = self._params[0].device if self._params else ctx.device
        self._gen = generator(ctx.noise_seed, self.name, device)

    @torch.no_grad()
    def before_step(self, step: int, lr: float, ctx: RunContext) -> None:
        if self._params is None:
            self._setup(ctx)
        kept, total = [], 0
        for p in self._params:
            if p.grad is None:
                continue
            mask = torch.empty_like(p.grad).bernoulli_(self.p_f, generator=self._gen)
            kept.append(mask.sum())
            total += mask.numel()
            mask_gradient(p.grad, mask, self.p_f)
        # Kept as a tensor: reading it here would synchronize a GPU every step.
        self.kept = (torch.stack(kept).sum() / total) if total else None  # taken before M / p

    def record(self) -> dict[str, Any]:
        return {"p_f": self.p_f, "kept_last_step": None if self.kept is None else float(self.kept)}
