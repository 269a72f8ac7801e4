"""CWGNC: component-wise gradient norm clipping (Yang & Ma 2022, "Improving Stability of Fine-Tuning
Pretrained Language Models via Component-Wise Gradient Norm Clipping", EMNLP).

The reference code is the specification: yangalan123/FineTuningStability,
``CustomToolBox/GroupGradClip/GradClipTrainer.py``, ``GradValueClipTrainer.training_step`` (branch
``use_group_grad_norm_clip``), run by ``run_glue.py`` with ``--use_clip_trainer True
--use_group_grad_norm_clip True --max_clip_value c``. A *component* is one parameter tensor: right after
``loss.backward()``, for every ``(name, param)`` of ``model.named_parameters()`` with a gradient (embeddings,
every weight and bias, LayerNorm, pooler and the new head alike), ``torch.nn.utils.clip_grad_norm_(param, c)``::

    g_p ← g_p · min(1, c / (‖g_p‖₂ + 1e-6))       for each parameter tensor p, one threshold c for all

**What replaces the global clip**: nothing. ``run_glue.py`` sets ``training_args.max_grad_norm = -1`` whenever
the per-tensor clip is on ("we need to handle max_grad_norm by ourselves"), so transformers' Trainer clips no
global norm; here the method owns the clipping (``owns_clipping``) and ``train.max_grad_norm`` is not applied in
a CWGNC run (the record keeps the value it replaced). The order against the optimizer is the reference's:
after the backward pass (and after every method's ``after_backward``, where the harness adds gradients that
are loss terms), before the optimizer step, in the slot of the global clip. The step still records the global
gradient norm before this clipping (``train_loss.grad_norm``).

Settings: ``max_norm`` = c > 0. The reference's ``run.sh`` sweeps c ∈ {0.01, 0.05, 0.1, 0.5, 1, 5, 1e5} over
30 seeds (BERT, GLUE, lr 2e-5, batch 16, 3 epochs, max length 128, transformers' defaults otherwise: no warmup,
AdamW with bias correction, weight decay 0); the default 1.0 is the point of that grid equal to the global
threshold it replaces (the harness's and transformers' ``max_grad_norm``), so a cell differs from its baseline
only in clipping per tensor. (``run.sh`` as published lacks a line continuation after
``--use_group_grad_norm_clip True``, so its ``--max_clip_value`` never reaches ``run_glue.py``; the grid is
read as intended.) Under ``--fp16`` the reference would clip the loss-scaled gradient (its clip comes before the
scaler unscales); its scripts run fp32, and here the clip always sees the true gradient. Record: c, the tensors
clipped in the last step and the global threshold not applied.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixsweep.regularizers.base import Method, RunContext, register

EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s: c / (‖g‖ + 1e-6)


@register
class CWGNC(Method):
    name = "cwgnc"
    owns_clipping = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("max_norm")
        self.max_norm = self.number("max_norm", default=1.0, lo=0.0, open_lo=True)
        self.replaced: float | None = None
        self.tensors = 0
        self.clipped: Tensor | None = None

    def settings(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm}

    def label(self) -> str:
        return f"cwgnc({self.max_norm:g})"

    @torch.no_grad()
    def clip(self, ctx: RunContext, max_grad_norm: float | None) -> None:
        self.replaced = max_grad_norm
        clipped = []
        for _, p in ctx.model.named_parameters():  # the reference's loop: one clip per parameter tensor
            if p.grad is None:
                continue
            norm = torch.nn.utils.clip_grad_norm_(p, self.max_norm)
            clipped.append(norm + EPS > self.max_norm)
        self.tensors = len(clipped)
        # Kept as a tensor: reading it here would synchronize a GPU every step.
        self.clipped = torch.stack(clipped).sum() if clipped else None

    def record(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm, "tensors": self.tensors,
                "clipped_last_step": None if self.clipped is None else int(self.clipped),
                "global_clip_not_applied": self.replaced}
