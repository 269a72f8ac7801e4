"""SPD: selective projection decay (Tian, Huang & Kira 2024, "Rethinking Weight Decay for Robust
Fine-Tuning of Foundation Models", NeurIPS).

The reference code is the specification: GT-RIPL/Selective-Projection-Decay, ``adamSPD.py``,
``AdamSPD.adam`` (called by ``AdamSPD.step``) and ``AdamSPD._ratio``. Per parameter *tensor* θ (a
"layer" in the paper) with gradient g (the one the optimizer reads: after clipping), anchor θ_pre and
the Adam step's result θ̂::

    θ̂ = AdamStep(θ, g)                            (the reference: torch-style Adam, weight decay 0)
    c = −Σ g ⊙ (θ − θ_pre)                         (on θ *before* the step)
    if c < 0:                                      (the descent direction −g points back toward θ_pre)
        r = clamp((‖θ̂ − θ_pre‖ − ‖θ − θ_pre‖) / ‖θ̂ − θ_pre‖, 0, 1)     (hardtanh(·, 0, 1))
        θ̂ ← θ̂ − λ · r · (θ̂ − θ_pre)                 (on θ̂, *after* the step; not scaled by lr)
    θ ← θ̂

λ is the reference's ``weight_decay``. With λ = 1 a selected tensor is projected back onto the sphere
of its previous deviation, ‖θ − θ_pre‖ (the "projection"); 0 < λ < 1 goes part of the way. A tensor
whose step shrinks its deviation gets r = 0 and is left alone.

How it runs here: the decay is outside Adam (it reads the Adam result, not Adam's moments), so it is
exactly two hooks around the configured optimizer's step rather than an optimizer of its own:
``before_step`` (order 90: after every other gradient edit, i.e. on the gradient the update reads)
takes c and ‖θ − θ_pre‖ per tensor; ``after_step`` applies the projection to θ̂. The reference's Adam
is torch's form (ε added to √v/√(1 − β₂ᵗ), bias-corrected): ``optimizer=adamw`` is exactly AdamSPD;
``optimizer=adamw_hf`` (transformers' ε placement) and ``optimizer=bertadam`` (no bias correction)
under SPD are our extension, the same SPD around another Adam step.

Anchors: the reference's README anchors *every* trainable tensor at its value when the optimizer is
built (``params_anchor = copy.deepcopy(params_to_opt)``). Here: ``ctx.reference`` (w_pre as finetuning
sees it) for the body, and the new head's own initialization for the head, copied when the optimizer's
groups are built (after every method's ``prepare``). Tensors in ``ctx.no_decay`` (LLRD's pooler and
head) are left out, as every decay of the lab does. SPD replaces weight decay in the reference (its
``weight_decay`` *is* λ; there is no other decay), so ``conf/regularizer/spd.yaml`` sets Devlin's
dropout 0.1 without Devlin's decay toward 0.

Settings: the reference gives no value (``AdamSPD(..., weight_decay=0)``) and no language-model GLUE
command: its paper tunes λ per benchmark (image classification, segmentation, LLaMA commonsense
reasoning and VQA with LoRA). The default λ = 1.0 is the full projection. ``lam`` ≥ 0.
Record: how many tensors the last step decayed, out of how many it looked at.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.base import Method, RunContext, register


@register
class SPD(Method):
    name = "spd"
    order = 90  # before_step after every other gradient edit; after_step on the optimizer's result

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("lam")
        self.lam = self.number("lam", default=1.0, lo=0.0)
        self._anchors: list[tuple[Tensor, Tensor]] = []  # (parameter, θ_pre)
        self._pending: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # (θ, θ_pre, c < 0, ‖θ − θ_pre‖)
        self._last: list[Tensor] = []  # the last step's c < 0 per tensor (summed only in record(): no sync per step)

    def settings(self) -> dict[str, Any]:
        return {"lam": self.lam}

    def label(self) -> str:
        return f"spd({self.lam:g})"

    def active(self) -> bool:
        return self.lam > 0

    @torch.no_grad()
    def param_groups(self, groups: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
        # After every prepare() and after ctx.reference is taken: the head's anchor is its init as finetuning sees it.
        self._anchors = []
        for name, p in ctx.model.named_parameters():
            if not p.requires_grad or name in ctx.no_decay:
                continue
            ref = ctx.reference.get(name)
            self._anchors.append((p, p.detach().clone() if ref is None else ref.to(p)))
        return groups

    @torch.no_grad()
    def before_step(self, step: int, lr: float, ctx: RunContext) -> None:
        self._pending = []
        for p, pre in self._anchors:
            if p.grad is None:
                continue
            deviation = p - pre
            selected = -torch.sum(torch.mul(p.grad, deviation)) < 0.0
            self._pending.append((p, pre, selected, torch.norm(deviation)))

    @torch.no_grad()
    def after_step(self, step: int, lr: float, ctx: RunContext) -> None:
        for p, pre, selected, prev_norm in self._pending:
            deviation = p - pre
            curr_norm = torch.norm(deviation)
            ratio = torch.nn.functional.hardtanh((curr_norm - prev_norm) / curr_norm, 0.0, 1.0)
            # where(), not a product: an unselected tensor that did not move has 0/0 = nan here.
            factor = torch.where(selected, self.lam * ratio, torch.zeros_like(ratio))
            p.sub_(factor * deviation)
        if self._pending:
            self._last = [selected for _, _, selected, _ in self._pending]
        self._pending = []

    def record(self) -> dict[str, Any]:
        decayed = int(torch.stack(self._last).sum()) if self._last else None
        return {"lam": self.lam, "last_decayed": decayed, "last_tensors": len(self._last) or None}
