"""Re-init top-k (Zhang et al. 2021, "Revisiting few-sample BERT fine-tuning", §5.2).

Before finetuning, the pooler and the top ``k`` transformer blocks are re-initialized with the
model's own pretraining init (BERT's ``_init_weights``)::

    nn.Linear, nn.Embedding:  W ~ N(0, initializer_range²),  b = 0
    nn.LayerNorm:             γ = 1,  β = 0

``initializer_range`` is read from the model's config (0.02 for BERT). The draws come from their
own generator, derived from ``init_seed`` (not from torch's global RNG as in
asappresearch/revisit-bert-finetuning), so re-init is reproducible per restart and does not shift
the other random streams.

Targets of the other methods. Every reference that another method pulls toward (mixout's target u,
wdecay(w_pre)'s and RecAdam's θ_pre, ‖w − w_pre‖²) is the point finetuning *starts* from: for a
re-initialized layer that is its new init, not the discarded pretrained weights. Zhang et al.
re-initialize the top layers because their pretrained weights hurt transfer; pulling toward them
would undo the re-init. The runner takes ``ctx.reference`` after every ``prepare``, so wdecay and
RecAdam get this for free; a layer that is already a ``MixLinear`` (whatever the hook order) has its
``target`` buffer reset to the new weights here.

Settings: ``k`` ∈ {1, …, 6} (Zhang et al.'s range; at most the model's number of layers).
Record: the qualified names of the re-initialized modules.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mixsweep.regularizers.anatomy import encoder_layers, generator, optional_module
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register

K_MAX = 6


@torch.no_grad()
def reinit_module(module: nn.Module, std: float, gen: torch.Generator) -> list[str]:
    """Re-initialize every Linear/Embedding/LayerNorm under ``module`` as BERT's ``_init_weights``
    does; return the relative names of the modules changed (in ``named_modules`` order)."""
    changed = []
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            w = torch.empty(m.weight.shape, dtype=torch.float32).normal_(0.0, std, generator=gen)
            m.weight.copy_(w)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.zero_()
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
            target = getattr(m, "target", None)  # a MixLinear: its target follows the new init
            if isinstance(target, torch.Tensor) and target.shape == m.weight.shape:
                target.copy_(m.weight)
            changed.append(name)
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                m.weight.fill_(1.0)
            if m.bias is not None:
                m.bias.zero_()
            changed.append(name)
    return changed


@register
class ReInit(Method):
    name = "reinit"
    order = 10  # before every other prepare(): mixout's targets and NoisyTune's noise see the new init

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("k")
        self.k = self.number("k", default=3, lo=1, hi=K_MAX, integer=True)
        self.modules: list[str] = []

    def settings(self) -> dict[str, Any]:
        return {"k": self.k}

    def label(self) -> str:
        return f"reinit({self.k})"

    def prepare(self, ctx: RunContext) -> None:
        layers = encoder_layers(ctx.model, self.name)
        if self.k > len(layers):
            raise RegularizerError(
                f"{self.key('k')}={self.k} exceeds the model's {len(layers)} transformer layers: "
                f"pass {self.key('k')} in [1, {min(K_MAX, len(layers))}]")
        std = float(getattr(getattr(ctx.model, "config", None), "initializer_range", 0.02))
        gen = generator(ctx.init_seed, self.name)
        pooler = optional_module(ctx.model, "pooler")
        targets = layers[-self.k:] + ([pooler] if pooler else [])
        self.modules = []
        for top in targets:
            for rel in reinit_module(ctx.model.get_submodule(top), std, gen):
                self.modules.append(f"{top}.{rel}" if rel else top)

    def record(self) -> dict[str, Any]:
        return {"k": self.k, "modules": self.modules}
