"""Layer-wise learning-rate decay, LLRD (Zhang et al. 2021, §5.3; after Howard & Ruder 2018).

The reference code is the specification: asappresearch/revisit-bert-finetuning, ``run_glue.py``,
``get_optimizer_grouped_parameters``. It walks [embeddings] + layers in reverse (top layer first) and
lowers the rate *before* each assignment (``lr *= ξ``). With L layers numbered l = 1 (bottom) … L (top)
and the optimizer's learning rate η::

    layer l:             η · ξ^(L − l + 1)      (top layer η·ξ)
    embeddings:          η · ξ^(L + 1)
    pooler, new head:    η, weight decay 0

Any other parameter outside the layers and the embeddings keeps η. Issue 14's formula (layer l at
η·ξ^(L − l), top layer at η) is one factor of ξ off the reference everywhere and was replaced (issue 20).
The schedule (warmup, decay) multiplies every group alike. Each incoming optimizer group is split by
depth and its ``lr_scale`` (or absolute ``lr``) multiplied by the factor above, so LLRD composes with
any method that shapes the groups before or after it.

Weight decay 0 for the pooler and the head, as the reference's first group: the lab's decay is the
``wdecay`` method (``devlin``'s wdecay(0, 0.01) decays the head too), not a group's ``weight_decay``, so
:meth:`LLRD.prepare` names every parameter outside the embeddings and the layers in ``ctx.no_decay`` and
wdecay decays none of them, in any form (issue 32 item 4: before, only a group carrying a
``weight_decay`` key lost it, and the runner builds none). A group that carries ``weight_decay`` still
gets 0 for them too.

Settings: ``xi`` ∈ (0, 1] (ξ = 1 is plain finetuning). Record: the scale of every depth.
"""

from __future__ import annotations

from typing import Any

from mixsweep.regularizers.anatomy import encoder_layers, optional_module
from mixsweep.regularizers.base import Method, RunContext, register


@register
class LLRD(Method):
    name = "llrd"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("xi")
        self.xi = self.number("xi", default=0.95, lo=0.0, hi=1.0, open_lo=True)
        self.scales: dict[str, float] = {}

    def settings(self) -> dict[str, Any]:
        return {"xi": self.xi}

    def label(self) -> str:
        return f"llrd({self.xi:g})"

    def depth_scales(self, ctx: RunContext) -> dict[int, float]:
        """id(parameter) → learning-rate factor, for the embeddings and every layer; the rest is at 1."""
        model = ctx.model
        layers = encoder_layers(model, self.name)
        n = len(layers)
        out: dict[int, float] = {}
        self.scales = {}
        embeddings = optional_module(model, "embeddings")
        if embeddings:
            self.scales[embeddings] = self.xi ** (n + 1)
            out.update({id(p): self.xi ** (n + 1) for p in model.get_submodule(embeddings).parameters()})
        for i, name in enumerate(layers):  # i = l - 1
            scale = self.xi ** (n - i)
            self.scales[name] = scale
            out.update({id(p): scale for p in model.get_submodule(name).parameters()})
        return out

    def prepare(self, ctx: RunContext) -> None:
        deep = set(self.depth_scales(ctx))
        ctx.no_decay |= {name for name, p in ctx.model.named_parameters() if id(p) not in deep}

    def param_groups(self, groups: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
        scale_of = self.depth_scales(ctx)
        out: list[dict[str, Any]] = []
        for group in groups:
            by_scale: dict[tuple[float, bool], list] = {}  # (scale, in the embeddings or a layer)
            for p in group["params"]:
                by_scale.setdefault((scale_of.get(id(p), 1.0), id(p) in scale_of), []).append(p)
            for (scale, deep), params in sorted(by_scale.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
                g = {**group, "params": params}
                if "weight_decay" in group and not deep:
                    g["weight_decay"] = 0.0  # pooler and head: the reference's no-decay group
                if "lr" in group:
                    g["lr"] = group["lr"] * scale
                else:
                    g["lr_scale"] = group.get("lr_scale", 1.0) * scale
                out.append(g)
        return out

    def record(self) -> dict[str, Any]:
        return {"xi": self.xi, "lr_scale": self.scales}
