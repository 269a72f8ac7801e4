"""mixout(w_pre, p) on a model: the ``mixout`` method.

    mixout: {p: 0.9, layers: paper, granularity: neuron, grad: exact, head: {policy: none, p: null}}

``prepare`` swaps the selected pretrained ``nn.Linear`` layers for :class:`MixLinear` layers whose
target is their weight at that moment (w_pre), via :func:`~mixsweep.regularizers.surgery.apply_mixout`.
Dropout is not touched: a run starts with every dropout at 0, so mixout(w_pre, p) replaces dropout(p).

- ``layers``: ``paper`` (every pretrained Linear except the feed-forward up-projection; for a model
  that defines its own ``paper`` set, e.g. the digits MLP, that set), ``all_linear``, or a regex that
  fullmatches module names.
- ``granularity``: ``neuron`` (one draw per input neuron, the paper) or ``element`` (mixconnect).
- ``grad``: ``exact`` (autograd's derivative) or ``official`` (bloodwass/mixout's backward, (1 − p) ×
  exact; see docs/regularizers.md, "Recipe choices", on its interaction with gradient clipping).
- ``head.policy``: the new output layer is ``none`` (unregularized, the paper's main runs),
  ``mixout_init`` (mixout(w0, head.p) toward its own initialization, Table 3) or ``dropout``
  (dropout(head.p) on its input, Table 3); ``head.p: null`` means p.

This is the one place where these settings are validated; the layer and the surgery only assert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mixsweep.regularizers.base import Method, RunContext, register
from mixsweep.regularizers.mixout import GRADS, GRANULARITIES
from mixsweep.regularizers.surgery import HEAD_POLICIES, LAYER_PRESETS, apply_mixout

DEFAULTS = {"layers": "paper", "granularity": "neuron", "grad": "exact"}


@register
class Mixout(Method):
    name = "mixout"
    order = 10

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        self.known_keys("p", "layers", "granularity", "grad", "head")
        self.p = self.number("p", default=0.0, lo=0.0, hi=1.0)
        self.layers = self.cfg.get("layers", "paper")
        if not isinstance(self.layers, str) or not self.layers:
            raise self.error("layers", self.layers, f"a preset ({', '.join(LAYER_PRESETS)}) or a regex", "paper")
        if self.layers not in LAYER_PRESETS:
            try:
                re.compile(self.layers)
            except re.error as err:
                raise self.error("layers", self.layers,
                                 f"a preset ({', '.join(LAYER_PRESETS)}) or a valid regex ({err})", "paper") from None
        self.granularity = self.choice("granularity", GRANULARITIES, default="neuron")
        self.grad = self.choice("grad", GRADS, default="exact")
        head = self.cfg.get("head") or {}
        if not isinstance(head, Mapping) or set(head) - {"policy", "p"}:
            raise self.error("head", head, "a mapping with policy and p", "{policy: none, p: null}")
        self.policy = head.get("policy", "none")
        if self.policy not in HEAD_POLICIES:
            raise self.error("head.policy", self.policy, f"one of {', '.join(HEAD_POLICIES)}", "none")
        head_p = head.get("p")
        if head_p is not None:
            ok = isinstance(head_p, (int, float)) and not isinstance(head_p, bool) and 0.0 <= head_p <= 1.0
            if not ok:
                raise self.error("head.p", head_p, "null (= p) or a number in [0, 1]", 0.7)
        self.head_p = self.p if head_p is None else float(head_p)
        self.summary: dict[str, Any] = {}

    def active(self) -> bool:
        return self.p > 0 or self.policy != "none"

    def settings(self) -> dict[str, Any]:
        return {"p": self.p, "layers": self.layers, "granularity": self.granularity, "grad": self.grad,
                "head": {"policy": self.policy, "p": self.head_p}}

    def label(self) -> str:
        label = f"mixout(w_pre,{self.p:g})" if self.p > 0 else ""
        if self.policy == "mixout_init":
            label += f"|head:mixout(w0,{self.head_p:g})"
        elif self.policy == "dropout":
            label += f"|head:dropout({self.head_p:g})"
        qualifiers = []
        if self.p > 0 or self.policy == "mixout_init":
            if self.layers != DEFAULTS["layers"]:
                qualifiers.append(f"layers={self.layers}")
            if self.granularity != DEFAULTS["granularity"]:
                qualifiers.append(self.granularity)
            if self.grad != DEFAULTS["grad"]:
                qualifiers.append(f"grad={self.grad}")
        if qualifiers:
            label += "[" + ",".join(qualifiers) + "]"
        return label

    def family(self) -> tuple[str, float] | None:
        plain = self.policy == "none" and all(getattr(self, k) == v for k, v in DEFAULTS.items())
        return ("mixout", self.p) if plain else None

    def prepare(self, ctx: RunContext) -> None:
        summary = apply_mixout(
            ctx.model, self.p, layers=self.layers, output_layer=self.policy, output_p=self.head_p,
            granularity=self.granularity, grad=self.grad, head_names=ctx.head,
            generator=ctx.noise_generator, presets=ctx.layer_presets,
        )
        self.summary = {"layers": summary.replaced, "head": summary.head}

    def record(self) -> dict[str, Any]:
        return {"p": self.p, "head_p": self.head_p, **self.summary}
