"""Layer-wise learning-rate decay, LLRD (Zhang et al. 2021, §5.3; after Howard & Ruder 2018).

With L transformer layers numbered l = 1 (bottom) … L (top) and the optimizer's learning rate η::

    layer l:             η · ξ^(L − l)
    embeddings:          η · ξ^L
    pooler, new head:    η

Any other parameter outside the layers and the embeddings (pooler, head) keeps η. The schedule
(warmup, decay) multiplies every group alike. Each incoming optimizer group is split by depth and its
``lr_scale`` (or absolute ``lr``) multiplied by the factor above, so LLRD composes with any method
that shapes the groups before or after it.

Note: common LLRD code (``lr *= ξ`` at the top of a loop over the layers, top first, as in scripts
derived from asappresearch/revisit-bert-finetuning; not checked against that repository itself) gives
every layer and the embeddings one factor ξ more (top layer η·ξ). We follow the paper's formula, under
which the top layer trains at η like the head.

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
        """id(parameter) → learning-rate factor, for the embeddings and every layer."""
        model = ctx.model
        layers = encoder_layers(model, self.name)
        n = len(layers)
        out: dict[int, float] = {}
        self.scales = {}
        embeddings = optional_module(model, "embeddings")
        if embeddings:
            self.scales[embeddings] = self.xi ** n
            out.update({id(p): self.xi ** n for p in model.get_submodule(embeddings).parameters()})
        for i, name in enumerate(layers):  # i = l - 1
            scale = self.xi ** (n - (i + 1))
            self.scales[name] = scale
            out.update({id(p): scale for p in model.get_submodule(name).parameters()})
        return out

    def param_groups(self, groups: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
        scale_of = self.depth_scales(ctx)
        out: list[dict[str, Any]] = []
        for group in groups:
            by_scale: dict[float, list] = {}
            for p in group["params"]:
                by_scale.setdefault(scale_of.get(id(p), 1.0), []).append(p)
            for scale, params in sorted(by_scale.items(), reverse=True):
                g = {**group, "params": params}
                if "lr" in group:
                    g["lr"] = group["lr"] * scale
                else:
                    g["lr_scale"] = group.get("lr_scale", 1.0) * scale
                out.append(g)
        return out

    def record(self) -> dict[str, Any]:
        return {"xi": self.xi, "lr_scale": self.scales}
