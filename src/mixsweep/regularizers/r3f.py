"""R3F (Aghajanyan et al. 2021, "Better Fine-Tuning by Reducing Representational Collapse", eq. 2).

The reference code is the specification: facebookresearch/fairseq,
``examples/rxf/rxf_src/sentence_prediction_r3f.py``, ``SentencePredictionR3F.forward``::

    loss = L_task(f(x)) + λ · KL_S(f(x) ‖ f(sg(e(x)) + z)),    z ~ U(−ε, ε) or N(0, ε²)
    KL_S(P ‖ Q) = [KL(P ‖ Q) + KL(Q ‖ P)] / batch,   P = softmax(f(x)), Q = softmax(f(x̃))

e(x) is the word (token) embedding lookup, before position/type embeddings are added, as fairseq's
``embed_tokens``; the noisy pass starts from ``e(x).detach().clone() + z`` (sg: no gradient reaches
the embedding table through the noisy pass; issue 14's version did not detach and was replaced,
issue 20). f(x) is the runner's forward pass (``ctx.outputs.logits``); f(x̃) a second pass of the same
batch with ``inputs_embeds``, in the runner's forward context (``ctx.forward_context``: its bf16
autocast with ``bf16=true``, so the KL never compares a bf16 pass with an fp32 one), so a step costs
about two forwards and two backwards. The rest of the
model receives gradients through both passes, as in fairseq.

Regression (one output column, STS-B): fairseq adds no R3F term (``regression_target``: plain MSE), and
neither do we by default (``regression: none``); such a cell would be the baseline's run under R3F's name,
so :meth:`R3F.inert_on` says so, planning runs no such cell and the analysis leaves out stored ones. ``regression: gaussian`` is our extension, off by
default: the output read as the mean of a unit-variance Gaussian, whose symmetric KL is (f(x) − f(x̃))²
averaged over the batch. z is drawn from a generator derived from ``noise_seed``.

Defaults (fairseq's options): λ = 1.0 (``--r3f-lambda``), ε = 1e-5 (``--eps``), uniform noise.
Settings: ``lam`` ≥ 0, ``eps`` > 0, ``noise`` ∈ {uniform, normal}, ``regression`` ∈ {none, gaussian}.
Record: the last step's KL_S.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register

NOISES = ("uniform", "normal")
REGRESSION = ("none", "gaussian")


def symmetric_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(P‖Q) + KL(Q‖P) of softmax distributions, averaged over the batch (rows); for one output
    column (regression) the unit-variance Gaussian case, (p − q)² averaged over the batch."""
    p, q = logits_p.float(), logits_q.float()
    if p.shape[-1] == 1:
        return (p - q).pow(2).sum() / p.shape[0]
    lp, lq = F.log_softmax(p, dim=-1), F.log_softmax(q, dim=-1)
    return ((lp.exp() - lq.exp()) * (lp - lq)).sum() / p.shape[0]


@register
class R3F(Method):
    name = "r3f"
    order = 60

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("lam", "eps", "noise", "regression")
        self.lam = self.number("lam", default=1.0, lo=0.0)
        self.eps = self.number("eps", default=1e-5, lo=0.0, open_lo=True)
        self.noise = self.choice("noise", NOISES, default="uniform")
        self.regression = self.choice("regression", REGRESSION, default="none")
        self._gen: torch.Generator | None = None
        self.last_kl: Tensor | None = None

    def settings(self) -> dict[str, Any]:
        return {"lam": self.lam, "eps": self.eps, "noise": self.noise, "regression": self.regression}

    def label(self) -> str:
        extra = ("" if self.noise == "uniform" else ",normal") + ("" if self.regression == "none" else ",gaussian")
        return f"r3f({self.lam:g},{self.eps:g}{extra})"

    def active(self) -> bool:
        return self.lam > 0

    def inert_on(self, task) -> str | None:
        if task.is_regression and self.regression == "none":
            return ("fairseq's R3F adds no term on a regression target (sentence_prediction_r3f.py: plain MSE), so "
                    "its runs would be the baseline's; regularizer.r3f.regression=gaussian is our extension that adds one")
        return None

    def _noise(self, like: Tensor, ctx: RunContext) -> Tensor:
        if self._gen is None:
            self._gen = generator(ctx.noise_seed, self.name, like.device)
        z = torch.empty(like.shape, device=like.device, dtype=torch.float32)
        if self.noise == "uniform":
            z.uniform_(-self.eps, self.eps, generator=self._gen)
        else:
            z.normal_(0.0, self.eps, generator=self._gen)
        return z.to(like.dtype)

    def transform_loss(self, loss: Tensor, step: int, ctx: RunContext) -> Tensor:
        if ctx.batch is None or ctx.outputs is None or "input_ids" not in ctx.batch:
            raise RegularizerError("regularizer.r3f needs the step's batch (with input_ids) and outputs "
                                   "in the run context: this runner does not provide them")
        if ctx.outputs.logits.shape[-1] == 1 and self.regression == "none":
            return loss  # fairseq: no R3F term on a regression target
        batch = {k: v for k, v in ctx.batch.items() if k not in ("labels", "input_ids")}
        with torch.no_grad():  # fairseq's token_embeddings.detach().clone()
            embeds = ctx.model.get_input_embeddings()(ctx.batch["input_ids"])
        with ctx.forward_context():  # the runner's autocast: both passes in one precision (bf16 or fp32)
            noised = ctx.model(inputs_embeds=embeds + self._noise(embeds, ctx), **batch).logits
        kl = symmetric_kl(ctx.outputs.logits, noised)
        self.last_kl = kl.detach()
        return loss + self.lam * kl

    def record(self) -> dict[str, Any]:
        return {"lam": self.lam, "eps": self.eps, "noise": self.noise, "regression": self.regression,
                "last_kl": None if self.last_kl is None else float(self.last_kl)}
