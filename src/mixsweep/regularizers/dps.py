"""DPS: dynamic parameter selection (Zhang et al. 2022, "Fine-Tuning Pre-Trained Language Models
Effectively by Optimizing Subnetworks Adaptively", NeurIPS), Dense (the default) and Mix.

The reference code is the specification: ZhangHaojie077/DPS, ``transformers/DPSDense/grads_ops.py``
``Grads_Ops.forward``/``backward`` (an identity on each weight whose backward edits the weight's gradient),
applied by ``transformers/DPSDense/moudle.py`` ``DPSDense.forward`` to the weight of every Linear layer of its
``modeling_bert.py`` (query, key, value, attention output, intermediate, output, pooler and the classifier;
biases, embeddings and LayerNorm untouched), run by ``script/run_trainer.py`` (``--generalization_type dense``).
Here: the weight of every ``nn.Linear`` of the model, the new head included. With s = 1, 2, … the step,
u = ``int(total_steps · update_ratio)`` (``DPSDense``'s ``int(self.max_steps*self.update_ratio)``) and
phase ``c = ⌈s / u⌉``, the cycle alternates two stages:

* c odd (accumulate; full finetuning): ``G_W ← g_W² / 1e3`` at the first step of the phase, ``G_W += g_W² / 1e3``
  at the others (element-wise, ``grad_output**2/epsilon``); the gradient is left as it is.
* c even (update the sub-network): at its first step, per weight W, ``M_W = [G_W ≥ t_W]`` with t_W the k-th
  largest entry of G_W, k = ⌈n_W · (1 − reserve_p)⌉ (ties kept); every step of the phase ``g_W ← g_W · M_W``.

So ``reserve_p`` is the fraction of each weight matrix whose gradient is zeroed in an update phase (the
entries with the least accumulated squared gradient); Adam's moments still move them, as in the reference,
which masks the gradient the optimizer reads. The mask acts on the gradient in the backward pass, i.e. before
the Trainer's global clip: here ``after_backward`` (order 40, after wdecay's fused L2 gradient, a loss term the
reference's autograd gradient would hold). The statistics are the task gradient of the step (the sum of the
batch's, one backward per step as the reference's Trainer without accumulation).

Defaults: ``script/run_glue.sh`` (BERT-large, RTE/MRPC/STS-B/CoLA): ``reserve_p`` 0.3, ``update_ratio`` 0.05
(lr 2e-5, batch 16, warmup 0.1, weight decay 0.01, fp16, ``max_steps`` 468 on RTE: u = 23). Its
``run_trainer.py`` sets every dropout to 0 for DPS-Dense (0.1 again from 2,000 steps); this method sets no
dropout (the ``dropout`` method owns it; the lab's cell keeps Devlin's 0.1). Its low-resource script
(``run_low_resource.sh``: 500 or 1,000 examples) computes u from *one epoch's* steps, ⌈size/16⌉, not the run's
(u = 1 or 3); here u always comes from the run's own total steps. A u below 1 is refused. Its ``--fp16``
statistics are of the loss-scaled gradient (a scale change inside a phase reweights its steps, and a step
skipped for overflow still advances the cycle); here they are of the true gradient.

``variant: mix`` is DPS-Mix (``DPSMix/``, ``--generalization_type mix``): every Linear becomes a
:class:`~mixsweep.regularizers.dps_mix.DPSMixLinear` (a Mixout-style mix of each weight with a target under a
random column mask in accumulate phases and the selected mask in update phases; see that module), with masks
drawn from ``noise_seed``; it cannot be combined with ``mixout`` (both own the Linear layers' forward).
The reference counts training forward passes, so a second forward in a step (R3F, R-Drop) advances its cycle
twice: DPS-Mix here does the same (its masks are per forward), DPS-Dense counts optimizer steps.

Settings: ``reserve_p`` ∈ [0, 1) (0 = plain finetuning), ``update_ratio`` ∈ (0, 1], ``variant`` ∈ {dense, mix}
(``run_glue.sh``: dense). Record: u, the weights masked, the steps masked and the fraction of entries kept by
the last selection (Mix: forward passes in update phases, of the first layer).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register
from mixsweep.regularizers.dps_mix import DPSMixLinear
from mixsweep.regularizers.mixlinear import MixLinear

VARIANTS = ("dense", "mix")
SCALE = 1e3  # the reference's ``epsilon``: G accumulates g² / 1e3 (the selection does not depend on it)


def select(stat: Tensor, reserve_p: float) -> Tensor:
    """``stat ≥`` its k-th largest entry, k = ⌈n · (1 − reserve_p)⌉ (``Grads_Ops.forward``'s sort/index_select):
    the k entries with the largest accumulated squared gradient, ties at the threshold included."""
    flat = stat.reshape(-1)
    n = flat.numel()
    k = math.ceil(n * (1 - reserve_p))
    threshold = torch.kthvalue(flat, n - k + 1).values  # k-th largest = (n − k + 1)-th smallest
    return stat >= threshold


@register
class DPS(Method):
    name = "dps"
    order = 40

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("reserve_p", "update_ratio", "variant")
        self.reserve_p = self.number("reserve_p", default=0.3, lo=0.0, hi=1.0)
        if self.reserve_p >= 1.0:
            raise self.error("reserve_p", self.reserve_p, "a number in [0, 1) (the fraction of each weight "
                                                         "frozen in an update phase)", 0.3)
        self.update_ratio = self.number("update_ratio", default=0.05, lo=0.0, hi=1.0, open_lo=True)
        self.variant = self.choice("variant", VARIANTS, default="dense")
        self.update_steps = 0
        self.weights: list[nn.Parameter] = []
        self.stats: list[Tensor | None] = []
        self.masks: list[Tensor | None] = []
        self.masked_steps = 0
        self.kept: Tensor | None = None
        self.mix_layers: list[DPSMixLinear] = []

    def settings(self) -> dict[str, Any]:
        return {"reserve_p": self.reserve_p, "update_ratio": self.update_ratio, "variant": self.variant}

    def label(self) -> str:
        return f"dps({self.reserve_p:g},{self.update_ratio:g}{'' if self.variant == 'dense' else ',mix'})"

    def active(self) -> bool:
        return self.reserve_p > 0.0  # the reference's ``ctx.p == 0.0``: the gradient passes untouched

    def prepare(self, ctx: RunContext) -> None:
        self.update_steps = int(ctx.total_steps * self.update_ratio)
        if self.update_steps < 1:
            raise RegularizerError(
                f"{self.key('update_ratio')}={self.update_ratio:g} gives a phase of int({ctx.total_steps} × "
                f"{self.update_ratio:g}) = 0 steps: pass e.g. {self.key('update_ratio')}="
                f"{1 / max(1, ctx.total_steps):.3g} or more, or train longer")
        linears = [(name, m) for name, m in ctx.model.named_modules()
                   if isinstance(m, nn.Linear) and m.weight.requires_grad]
        self.weights = [m.weight for _, m in linears]
        if self.variant == "mix":
            self._mix(ctx, linears)
        self.stats = [None] * len(self.weights)
        self.masks = [None] * len(self.weights)

    def _mix(self, ctx: RunContext, linears: list[tuple[str, nn.Linear]]) -> None:
        if any(isinstance(m, MixLinear) for _, m in linears):
            raise RegularizerError(f"{self.key('variant')}=mix replaces every Linear layer's forward, as mixout does: "
                                   f"drop regularizer.mixout, or pass {self.key('variant')}=dense")
        gen = generator(ctx.noise_seed, self.name, self.weights[0].device) if self.weights else None
        self.mix_layers = [DPSMixLinear(m, self.reserve_p, self.update_steps, gen) for _, m in linears]
        for (name, _), layer in zip(linears, self.mix_layers, strict=True):
            ctx.model.set_submodule(name, layer)

    @torch.no_grad()
    def after_backward(self, step: int, ctx: RunContext) -> None:
        if self.variant == "mix":  # its layers edit their own gradients in the backward pass
            return
        s, u = step + 1, self.update_steps
        first = (s - 1) % u == 0
        if math.ceil(s / u) % 2 == 1:  # accumulate: full finetuning, G from this phase's gradients
            for i, w in enumerate(self.weights):
                if w.grad is None:
                    continue
                sq = w.grad ** 2 / SCALE
                self.stats[i] = sq if first or self.stats[i] is None else self.stats[i].add_(sq)
            return
        if first:  # the sub-network of this update phase, from the last accumulate phase
            kept, total = [], 0
            for i, stat in enumerate(self.stats):
                self.masks[i] = None if stat is None else select(stat, self.reserve_p)
                if self.masks[i] is not None:
                    kept.append(self.masks[i].sum())
                    total += self.masks[i].numel()
            # Kept as a tensor: reading it here would synchronize a GPU.
            self.kept = torch.stack(kept).sum() / total if total else None
        for w, mask in zip(self.weights, self.masks, strict=True):
            if w.grad is not None and mask is not None:
                w.grad.mul_(mask)
        self.masked_steps += 1

    def record(self) -> dict[str, Any]:
        if self.mix_layers:  # Mix: the layers count their forward passes and keep their last selection
            chosen = [m.selected for m in self.mix_layers if m.selected is not None]
            first = self.mix_layers[0]
            self.masked_steps = sum(1 for s in range(1, first.steps + 1) if not first.accumulating(s))
            self.kept = (sum(c.sum() for c in chosen) / sum(c.numel() for c in chosen)) if chosen else None
        return {"reserve_p": self.reserve_p, "update_ratio": self.update_ratio, "variant": self.variant,
                "update_steps": self.update_steps,
                "weights": len(self.weights), "masked_steps": self.masked_steps,
                "kept_last_selection": None if self.kept is None else float(self.kept)}
