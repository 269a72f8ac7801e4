"""SMART's smoothness-inducing adversarial regularizer (Jiang et al. 2020, "SMART: Robust and Efficient
Fine-Tuning for Pre-trained Natural Language Models through Principled Regularized Optimization", ACL).

The reference code is the specification: namisan/mt-dnn, ``mt_dnn/perturbation.py``
``SmartPerturbation.forward`` (with ``generate_noise`` and ``_norm_grad``), the losses ``stable_kl`` and
``SymKlCriterion`` / ``MseCriterion`` in ``mt_dnn/loss.py`` (chosen by ``adv_loss`` in
``experiments/glue/glue_task_def.yml``), added in ``mt_dnn/model.py`` ``MTDNNModel.update`` as
``loss + adv_alpha * adv_loss``. With f(x) the runner's pass (``ctx.outputs.logits``) and
E(x) = the body's embedding layer (word + position + token type, LayerNorm, dropout; mt-dnn's
``embed_encode``, a pass of its own)::

    δ₀ = σ · N(0, 1)                                   (``generate_noise``, σ = ``noise_var``)
    repeat K times:                                    (``adv_k``)
        g = ∇_δ ℓ_asc(f(E(x) + δ), sg f(x))            (gradient w.r.t. δ only)
        d = δ + η · g                                  (η = ``adv_step_size``)
        δ = sg[ d / (max_hidden |d| + ε) ]             (``_norm_grad``, p = inf: per token, unit ∞-norm)
    loss = L_task + α · ℓ_adv(f(x), f(E(x) + δ))       (α = ``adv_alpha``)

    ℓ_asc: ``stable_kl(adv, sg clean, reduce=False)`` = Σ 2·p·(r_p − r_y), p = softmax(adv),
           r_q = −log(1/(q + 1e-6) − 1 + 1e-6) with r_p, r_y detached (only p carries the gradient);
           regression: Σ (f(x̃) − sg f(x))²  (``F.mse_loss(..., reduction="sum")``)
    ℓ_adv: ``SymKlCriterion(clean, adv)`` = KL(sg P_adv ‖ P_clean) + KL(sg P_clean ‖ P_adv), each a batch
           mean (each half's gradient reaches one side only); regression: see ``regression`` below.

Where the perturbed pass enters: mt-dnn passes E(x) + δ as ``inputs_embeds`` to the encoder, whose
embedding layer adds the position and token-type embeddings and applies LayerNorm (and dropout) once
more. That is what the reference computes and what this does (``inputs_embeds=E(x) + δ``); the final
pass keeps E(x)'s graph, so the embedding tables also learn through it. The ∞-norm step is a
normalization, not the paper's projection onto ‖δ‖∞ ≤ ε: the reference's ``adv_epsilon`` (1e-6) is the
division's guard. Only ``adv_p_norm=inf`` with ``adv_norm_level=0`` runs in the reference (its l2, l1
and sentence-level branches end in an unbound ``eff_direction``), so that is the one form here. δ₀ is
drawn from a generator derived from ``noise_seed``; the perturbed passes run in the runner's forward
context (``ctx.forward_context``: bf16 autocast with ``bf16=true``, as R3F). A non-finite ‖g‖ makes the
reference return 0 (meant as: no adversarial term this step); here the step keeps its task loss and the
record counts it.

Regression (one output column, STS-B; ``adv_loss: MseCriterion``). The reference computes
``F.mse_loss(clean.squeeze(), adv)`` with shapes (B,) and (B, 1), which broadcasts to the mean over every
*pair* (i, j) of (f(x_j) − f(x̃_i))², i.e. Var(f(x)) + Var(f(x̃)) + (mean f(x) − mean f(x̃))²: a penalty on
the spread of the predictions across the batch, not a smoothness term (torch warns of the size mismatch).
``regression: mse`` (default; our choice, documented) is the evident intent, the batch mean of
(f(x_i) − f(x̃_i))² with the gradient through both; ``regression: broadcast`` reproduces the reference
literally.

Not reproduced: the paper's Bregman proximal point term (μ · D_Breg against a momentum teacher,
β-averaged parameters). mt-dnn does not implement it (``MTDNNModel.update`` adds only ``adv_alpha *
adv_loss``; the EMA of parameters its history had was for evaluation and was removed in Dec 2019, before
the perturbation code), so there is no authors' code to prove it against; see the README's stabilizer table.

Defaults: ``train.py``'s flags, which mt-dnn's README SMART command (``--adv_train --adv_opt 1``) leaves
as they are: α = 1 (``--adv_alpha``; the paper's λ_s), K = 1, η = 1e-5, σ = 1e-5, ε = 1e-6. The GLUE
script (``experiments/glue/run_glue_finetuning.sh``: adamax, lr 5e-5, 3 epochs, batch 16) is not copied:
the lab's recipe applies. Settings: ``alpha`` ≥ 0, ``k`` ≥ 1 (integer), ``step_size`` ≥ 0,
``noise_var`` ≥ 0, ``epsilon`` > 0, ``regression`` ∈ {mse, broadcast}. Record: the last step's adversarial
term (before α) and the number of steps skipped for a non-finite gradient.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register

REGRESSION = ("mse", "broadcast")


def stable_kl(logit: Tensor, target: Tensor, epsilon: float = 1e-6) -> Tensor:
    """mt-dnn's ``stable_kl(logit, target, reduce=False)``: Σ 2·p·(r_p − r_y) over the batch, with
    p = softmax(logit), y = softmax(target), r_q = −log(1/(q + ε) − 1 + ε) detached."""
    logit = logit.view(-1, logit.size(-1)).float()
    target = target.view(-1, target.size(-1)).float()
    p = F.log_softmax(logit, 1).exp()
    y = F.log_softmax(target, 1).exp()
    rp = -(1.0 / (p + epsilon) - 1 + epsilon).detach().log()
    ry = -(1.0 / (y + epsilon) - 1 + epsilon).detach().log()
    return (p * (rp - ry) * 2).sum()


def sym_kl_criterion(clean: Tensor, adv: Tensor) -> Tensor:
    """mt-dnn's ``SymKlCriterion(clean, adv)``: KL(sg P_adv ‖ P_clean) + KL(sg P_clean ‖ P_adv), batch means."""
    clean, adv = clean.float(), adv.float()
    return (F.kl_div(F.log_softmax(clean, dim=-1), F.softmax(adv.detach(), dim=-1), reduction="batchmean")
            + F.kl_div(F.log_softmax(adv, dim=-1), F.softmax(clean.detach(), dim=-1), reduction="batchmean"))


@register
class SMART(Method):
    name = "smart"
    order = 62

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("alpha", "k", "step_size", "noise_var", "epsilon", "regression")
        self.alpha = self.number("alpha", default=1.0, lo=0.0)
        self.k = self.number("k", default=1, lo=1, integer=True)
        self.step_size = self.number("step_size", default=1e-5, lo=0.0)
        self.noise_var = self.number("noise_var", default=1e-5, lo=0.0)
        self.epsilon = self.number("epsilon", default=1e-6, lo=0.0, open_lo=True)
        self.regression = self.choice("regression", REGRESSION, default="mse")
        self._gen: torch.Generator | None = None
        self.last_term: Tensor | None = None
        self.skipped = 0

    def settings(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "k": self.k, "step_size": self.step_size, "noise_var": self.noise_var,
                "epsilon": self.epsilon, "regression": self.regression}

    def label(self) -> str:
        extra = "" if self.regression == "mse" else ",broadcast"
        return f"smart({self.alpha:g},k={self.k},{self.step_size:g},{self.noise_var:g}{extra})"

    def active(self) -> bool:
        return self.alpha > 0

    def _noise(self, like: Tensor, ctx: RunContext) -> Tensor:
        """σ · N(0, 1) of ``like``'s shape (``generate_noise``), drawn in float32 from the method's stream."""
        if self._gen is None:
            self._gen = generator(ctx.noise_seed, self.name, like.device)
        z = torch.empty(like.shape, device=like.device, dtype=torch.float32).normal_(0.0, 1.0, generator=self._gen)
        return (z * self.noise_var).to(like.dtype)

    def _ascent_loss(self, adv: Tensor, clean: Tensor) -> Tensor:
        if clean.shape[-1] == 1:
            return F.mse_loss(adv.float(), clean.detach().float(), reduction="sum")
        return stable_kl(adv, clean.detach())

    def _adv_loss(self, clean: Tensor, adv: Tensor) -> Tensor:
        if clean.shape[-1] != 1:
            return sym_kl_criterion(clean, adv)
        clean, adv = clean.float(), adv.float()
        if self.regression == "broadcast":  # the reference's MseCriterion(clean, adv): (B,) against (B, 1)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Using a target size")
                return F.mse_loss(clean.squeeze(), adv)
        return F.mse_loss(clean.reshape(-1), adv.reshape(-1))

    def transform_loss(self, loss: Tensor, step: int, ctx: RunContext) -> Tensor:
        if ctx.batch is None or ctx.outputs is None or "input_ids" not in ctx.batch:
            raise RegularizerError("regularizer.smart needs the step's batch (with input_ids) and outputs "
                                   "in the run context: this runner does not provide them")
        embeddings = getattr(getattr(ctx.model, "base_model", None), "embeddings", None)
        if embeddings is None:
            raise RegularizerError(f"regularizer.smart perturbs the output of the encoder's embedding layer, and "
                                   f"{type(ctx.model).__name__} has none (base_model.embeddings): drop regularizer.smart")
        ids = ctx.batch["input_ids"]
        types = {"token_type_ids": ctx.batch["token_type_ids"]} if "token_type_ids" in ctx.batch else {}
        rest = {k: v for k, v in ctx.batch.items() if k not in ("labels", "input_ids")}
        clean = ctx.outputs.logits
        with ctx.forward_context():  # mt-dnn's embed_encode: its own pass through the embedding layer
            embed = embeddings(input_ids=ids, **types)
        noise = self._noise(embed, ctx)
        for _ in range(self.k):
            noise.requires_grad_()
            with ctx.forward_context():
                adv = ctx.model(inputs_embeds=embed.detach() + noise, **rest).logits
            (grad,) = torch.autograd.grad(self._ascent_loss(adv, clean), noise)
            if not torch.isfinite(grad.norm()):  # the reference's "return 0": no adversarial term this step
                self.skipped += 1
                return loss
            moved = noise.detach() + grad * self.step_size
            noise = (moved / (moved.abs().amax(-1, keepdim=True) + self.epsilon)).detach()
        with ctx.forward_context():
            adv = ctx.model(inputs_embeds=embed + noise, **rest).logits
        term = self._adv_loss(clean, adv)
        self.last_term = term.detach()
        return loss + self.alpha * term

    def record(self) -> dict[str, Any]:
        return {**self.settings(), "last_term": None if self.last_term is None else float(self.last_term),
                "skipped": self.skipped}
