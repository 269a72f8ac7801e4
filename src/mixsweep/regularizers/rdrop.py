"""R-Drop (Liang et al. 2021, "R-Drop: Regularized Dropout for Neural Networks", NeurIPS, eq. 3).

The reference code is the specification: dropreg/R-Drop, ``huggingface_transformer_src/src/transformers/
models/bert/modeling_bert.py``, ``BertForSequenceClassification.bert_kl`` (what its ``forward`` calls; run by
``huggingface_transformer_src/bert_rdrop/run_glue.py`` and ``run.sh``). The same batch goes through the model
twice, one pass after the other (``for i in range(2)``, not a doubled batch), each with its own dropout
masks; with P₁, P₂ the two passes' softmax outputs::

    loss = CE(f₁(x), y) + CE(f₂(x), y) + α · [KL(P₂ ‖ P₁) + KL(P₁ ‖ P₂)] / 2
    KL summed over classes *and* over the batch (``kl_div(..., reduction='none').sum()``), CE a batch mean

Regression (one output column, STS-B): ``MSE(f₁, y) + MSE(f₂, y) + w · MSE(f₁, f₂)`` with w = 1.0 in the
reference (``mse_weight``). f₁ is the runner's forward pass (``ctx.outputs``, whose loss is the task loss
the run logs), f₂ a second pass of the same batch in the runner's forward context; both passes draw
dropout masks from the global stream in that order, as the reference's two passes. The reference's
``alpha = 1.0`` weights the CE terms (kept at 1); the KL factor 0.5 is hard-coded there, so α = 0.5 is our
default. Evaluation is one pass (the reference's eval logits are its first pass, without dropout the same).

R-Drop needs dropout: without it both passes are equal and the term is 0. The reference keeps BERT's
0.1 (hidden, attention and classifier dropout); ``conf/regularizer/rdrop.yaml`` sets ``dropout`` to it, and
a run with every dropout at 0 is refused. The reference has no few-sample setting; its GLUE commands
(README: lr 1e-5, batch 8 for RTE, 2036 updates, ``--adam_beta2 0.98``, polynomial decay) are not copied:
the lab's recipe applies (α and the loss form are the method).

Settings: ``alpha`` ≥ 0, ``mse_weight`` ≥ 0. Record: the last step's KL (or MSE) term before its weight.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register


def rdrop_kl(logits1: Tensor, logits2: Tensor) -> Tensor:
    """KL(P₂‖P₁) + KL(P₁‖P₂) of the two passes' softmax outputs, summed over classes and batch, over 2."""
    p, q = F.log_softmax(logits1.float(), dim=-1), F.log_softmax(logits2.float(), dim=-1)
    # kl_div(log P, Q) = Σ Q·(log Q − log P) = KL(Q‖P)
    return (F.kl_div(p, q.exp(), reduction="sum") + F.kl_div(q, p.exp(), reduction="sum")) / 2.0


@register
class RDrop(Method):
    name = "rdrop"
    order = 58

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("alpha", "mse_weight")
        self.alpha = self.number("alpha", default=0.5, lo=0.0)
        self.mse_weight = self.number("mse_weight", default=1.0, lo=0.0)
        self.last_term: Tensor | None = None

    def settings(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "mse_weight": self.mse_weight}

    def label(self) -> str:
        return f"rdrop({self.alpha:g}{'' if self.mse_weight == 1.0 else f',mse={self.mse_weight:g}'})"

    def prepare(self, ctx: RunContext) -> None:
        if not any(isinstance(m, nn.Dropout) and m.p > 0 for m in ctx.model.modules()):
            raise RegularizerError("regularizer.rdrop needs dropout (both passes would be equal and the term 0): "
                                   "add regularizer.dropout.p=0.1, or use regularizer=rdrop, which sets it")

    def transform_loss(self, loss: Tensor, step: int, ctx: RunContext) -> Tensor:
        if ctx.batch is None or ctx.outputs is None or getattr(ctx.outputs, "loss", None) is None:
            raise RegularizerError("regularizer.rdrop needs the step's batch (with labels) and outputs in the "
                                   "run context: this runner does not provide them")
        with ctx.forward_context():  # the runner's autocast: both passes in one precision
            second = ctx.model(**ctx.batch)
        first_logits, second_logits = ctx.outputs.logits, second.logits
        if first_logits.shape[-1] == 1:
            term = F.mse_loss(first_logits.reshape(-1).float(), second_logits.reshape(-1).float())
            weight = self.mse_weight
        else:
            term = rdrop_kl(first_logits, second_logits)
            weight = self.alpha
        self.last_term = term.detach()
        return loss + second.loss + weight * term

    def record(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "mse_weight": self.mse_weight,
                "last_term": None if self.last_term is None else float(self.last_term)}
