"""dropout(p): the ``dropout`` method, ``dropout: {p: 0.1, head: false}``.

A run's model starts with every dropout at 0; this method sets the hidden and attention-probability
dropout (every ``nn.Dropout`` and dropout attribute, see :func:`~mixsweep.regularizers.surgery.set_dropout`)
to p. ``head: false`` leaves the dropout on the new head's input at 0, so the output layer is
unregularized as in the paper's dropout(p) rows (Fig. 4, App. F), like the mixout rows they are
compared with; ``head: true`` sets it to p as well, as BERT does (Devlin et al., Table 1 row 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixsweep.regularizers.base import Method, RunContext, register
from mixsweep.regularizers.surgery import head_dropout_names, set_dropout


@register
class Dropout(Method):
    name = "dropout"
    order = 20

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        self.known_keys("p", "head")
        self.p = self.number("p", default=0.0, lo=0.0, hi=1.0)
        self.head = self.cfg.get("head", False)
        if not isinstance(self.head, bool):
            raise self.error("head", self.head, "true or false", "false")
        self.head_modules: list[str] = []

    def active(self) -> bool:
        return self.p > 0

    def settings(self) -> dict[str, Any]:
        return {"p": self.p, "head": self.head}

    def label(self) -> str:
        return f"dropout({self.p:g})"

    def family(self) -> tuple[str, float] | None:
        # The head setting is not part of the label either; runs that differ in it are told apart
        # by their configs (cell identity), not by the p-sweep family.
        return ("dropout", self.p)

    def prepare(self, ctx: RunContext) -> None:
        set_dropout(ctx.model, self.p)
        self.head_modules = head_dropout_names(ctx.model)
        if not self.head:
            for name in self.head_modules:
                ctx.model.get_submodule(name).p = 0.0
            config = getattr(ctx.model, "config", None)
            if config is not None and hasattr(config, "classifier_dropout"):
                config.classifier_dropout = 0.0  # a model rebuilt from its config agrees

    def record(self) -> dict[str, Any]:
        return {"p": self.p, "head_dropout": self.p if self.head else 0.0, "head_modules": self.head_modules}
