"""BitFit as a stabilizer (Ben Zaken et al. 2022, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models", ACL; in the stability study of Chen et al. 2022, EMNLP,
arXiv 2202.07962).

The rule is the BitFit code's (benzakenelad/BitFit ``glue_evaluator.py``
``GLUEvaluator._deactivate_relevant_gradients`` with ``--bias-terms all``, its README's full BitFit):
every parameter is frozen, then a parameter trains if its name contains ``bias`` (``BIAS_TERMS_DICT['all']``)
or ``classifier``. So *every* bias of the body trains: query, key, value, attention output, intermediate,
output, the pooler's, and the LayerNorm biases (β of the embeddings' and of both LayerNorms of each
layer; BitFit counts them, its Table 5 lists ``b_LN1``, ``b_LN2``). LayerNorm gains (γ), weight matrices
and embeddings stay frozen. The new head trains whole (``classifier``: weight and bias). Here a bias is
a parameter whose own name is ``bias`` (the same set on BERT, without matching a module that happens to
be called so).

Chen et al.'s BitFit (guanzhchen/PETuning ``tasks/glue/get_trainer.py``: freeze ``roberta.*`` names
without "bias") is the same rule on RoBERTa, whose new head has a dense + tanh layer before the output
projection, all of it trained; on BERT that layer is the pretrained pooler, whose weight BitFit's own
BERT code freezes. ``pooler: false`` (default) follows BitFit; ``pooler: true`` trains the pooler's
weight too, as Chen et al.'s head.

Settings: BitFit's README trains with lr 1e-3 (Chen et al.: 1e-3 on RTE and MRPC, 5e-4 on CoLA and
STS-B); the recipe's lr is the cell's (``optimizer.lr``), not this method's. ``pooler`` (true/false).
Record: the trainable and total parameter counts and how many tensors train.
"""

from __future__ import annotations

from typing import Any

from mixsweep.regularizers.anatomy import optional_module
from mixsweep.regularizers.base import Method, RunContext, register
from mixsweep.regularizers.trainable import parameter_counts, train_only, under


def is_bias(name: str) -> bool:
    """A bias term: the parameter's own name (after the last dot) is ``bias`` (LayerNorm's β included)."""
    return name.rsplit(".", 1)[-1] == "bias"


@register
class BitFit(Method):
    name = "bitfit"
    order = 25  # after re-init, mixout and NoisyTune (they act on every weight), before wdecay's reference
    sets_trainable = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("pooler")
        self.pooler = self.cfg.get("pooler", False)
        if not isinstance(self.pooler, bool):
            raise self.error("pooler", self.pooler, "true or false", "false")
        self.counts: dict[str, Any] = {}

    def settings(self) -> dict[str, Any]:
        return {"pooler": self.pooler}

    def label(self) -> str:
        return "bitfit" + ("(pooler)" if self.pooler else "")

    def prepare(self, ctx: RunContext) -> None:
        pooler = optional_module(ctx.model, "pooler") if self.pooler else None
        whole = [*ctx.head, *([pooler] if pooler else [])]
        train_only(ctx.model, lambda n: is_bias(n) or under(n, whole))
        self.counts = {**parameter_counts(ctx.model),
                       "tensors": sum(p.requires_grad for p in ctx.model.parameters())}

    def record(self) -> dict[str, Any]:
        return {**self.settings(), **self.counts}
