"""RecAdam (Chen et al. 2020, "Recall and Learn"): Adam with an annealed pull toward θ_pre.

The reference code (Sanyuan-Chen/RecAdam, ``RecAdam.py``, ``RecAdam.step``) is the specification; it
is an optimizer, so this method owns the update (``owns_update``, see :mod:`.base`). Per parameter θ
with gradient g (after clipping), its own step count t = 1, 2, … and the group's current lr η::

    m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²,   s = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ)  (s = η uncorrected)
    θ ← θ − s·λ(t)·m/(√v + ε)                        (the Adam step, scaled by λ)
    θ ← θ − η·(1 − λ(t))·γ·(θ − θ_pre)               (the pull, on the θ just updated, outside Adam)
    λ(t) = 1 / (1 + exp(−k·(t − t₀)))                (``anneal_function``, 'sigmoid', weight 1)

The moments see the raw task gradient only. The Adam part is the project's one Adam,
:func:`mixsweep.optim.adam_update_` (:class:`~mixsweep.optim.TransformersAdamW`'s update), with λ(t) as its
per-parameter scale. Parameters without θ_pre (the new head; the reference's
groups without ``args.model_type`` in the name, ``anneal_w = 0``) take the plain Adam step
θ ← θ − s·m/(√v + ε). θ_pre is ``ctx.reference`` (every pretrained parameter, pooler included, as the
reference's "bert" name filter). Betas, ε and η come from the configured optimizer's groups (the
reference's ``--adam_epsilon`` and schedule); bias correction follows the configured optimizer
(``optim.bias_corrected``: on for adamw, as ``correct_bias=True`` in the reference; off for bertadam).
Reference weight decay is 0 by default (``--weight_decay``) and is not reproduced here.

An earlier formula (issue 14: λ(t)·L + (1 − λ(t))·γ/2·‖θ − θ_pre‖² as a loss through Adam's moments)
differs from the reference and was replaced (issue 20): Adam's scale invariance made λ·L a no-op until
the gradient fell below ε, and the pull went through the moments.

The starting point, ``init`` (issue 32 item 3). ``run_glue_with_RecAdam.py`` loads the pretrained
weights into the trained model only with ``--start_from_pretrain``; otherwise ``new_model =
model_class(config=config)`` starts from a random init and is pulled toward θ_pre (a separate
``pretrained_model``) -- the paper's "pretraining simulation". Neither README command passes the flag, so
the default here is theirs, ``init: random``: in ``prepare`` (first of all methods) θ_pre is copied, then
the pretrained body is re-initialized with the model's own init (BERT's ``_init_weights``, as
``model_class(config)``: N(0, initializer_range²) for Linear and Embedding weights, biases 0, LayerNorm
1 and 0; drawn from ``init_seed``'s own stream); the new head keeps the runner's init. The pull goes
toward the copied θ_pre; every other method (and ``ctx.reference``) sees the random init as the point
finetuning starts from. ``init: pretrained`` is ``--start_from_pretrain``: start from θ_pre. Memory: one
more copy of the body's parameters under ``init: random``.

Ours, not the reference's: bias correction off (``optimizer=bertadam``, the lab's ``recadam@bertadam``);
the reference always corrects bias (``RecAdam.step``: ``correct_bias=True``). The reference's other run
settings are not the lab's recipe: ``--adam_epsilon`` 1e-8 (the lab: 1e-6) and no warmup in the README's
BERT command (the lab: 10%).

Defaults: γ = 5000 (``--recadam_pretrain_cof``), k = 0.5 and t₀ = 250 (``run_glue_with_RecAdam.py``).
t₀ is in steps: a 3-epoch RTE run at batch 32 has only ~234, so the studies set t₀ for their budget. The
README's grids: k ∈ {0.05, 0.1, 0.2, 0.5, 1}; t₀ ∈ {100, 250, 500} for ALBERT's small tasks,
{250, 500, 1000} for BERT-base (whose runs it lengthened to 7,800-61,360 steps).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mixsweep.optim import adam_update_, bias_corrected
from mixsweep.regularizers.anatomy import base_prefix, generator
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register
from mixsweep.regularizers.reinit import reinit_module
from mixsweep.regularizers.wdecay import pretrained_reference

INITS = ("random", "pretrained")  # run_glue_with_RecAdam.py without / with --start_from_pretrain


def anneal(step: float, k: float, t0: float) -> float:
    """λ(t) = 1 / (1 + exp(−k (t − t₀))), computed without overflow."""
    z = -k * (step - t0)
    if z >= 0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


@register
class RecAdam(Method):
    name = "recadam"
    order = 5
    owns_update = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("gamma", "k", "t0", "init")
        self.gamma = self.number("gamma", default=5000.0, lo=0.0)
        self.k = self.number("k", default=0.5, lo=0.0, open_lo=True)
        self.t0 = self.number("t0", default=250.0, lo=0.0)
        self.init = self.choice("init", INITS, default="random")
        self._pretrained: dict[str, Tensor] | None = None  # θ_pre copied before a random init
        self._refs: dict[int, Tensor] | None = None
        self.last_lambda: float | None = None

    def settings(self) -> dict[str, Any]:
        # init=pretrained is what every run stored before the setting existed did: it hashes as they did
        # (no key), so those runs keep their ids; the random start is a new experiment with new ids.
        return {"gamma": self.gamma, "k": self.k, "t0": self.t0, **({"init": "random"} if self.init == "random" else {})}

    def label(self) -> str:
        return f"recadam({self.gamma:g},{self.k:g},{self.t0:g})" + ("[pretrained]" if self.init == "pretrained" else "")

    @torch.no_grad()
    def prepare(self, ctx: RunContext) -> None:
        if self.init != "random":
            return
        self._pretrained = pretrained_reference(ctx.model, ctx.head)
        body = base_prefix(ctx.model)
        std = float(getattr(getattr(ctx.model, "config", None), "initializer_range", 0.02))
        reinit_module(ctx.model.get_submodule(body) if body else ctx.model, std, generator(ctx.init_seed, self.name))

    def _references(self, ctx: RunContext) -> dict[int, Tensor]:
        """id(parameter) → θ_pre, for every parameter that has one (the copy taken before a random init)."""
        if self._refs is None:
            named = dict(ctx.model.named_parameters())
            pre = self._pretrained if self._pretrained is not None else ctx.reference
            self._refs = {id(named[n]): ref.to(named[n]) for n, ref in pre.items() if n in named}
        return self._refs

    @torch.no_grad()
    def update(self, optimizer: Any, step: int, ctx: RunContext) -> None:
        """The project's Adam update (:func:`optim.adam_update_`) with each pretrained parameter's step
        scaled by λ(t), then the pull toward θ_pre; the optimizer's own ``step`` is not called."""
        refs = self._references(ctx)
        correct = bias_corrected(optimizer)
        for group in optimizer.param_groups:
            if "betas" not in group or "eps" not in group:
                raise RegularizerError("regularizer.recadam is an Adam variant and needs an Adam optimizer: "
                                       "use optimizer=adamw or optimizer=bertadam")
            lr = float(group["lr"])
            params = [p for p in group["params"] if p.grad is not None]
            states = [optimizer.state[p] for p in params]
            adam_update_(params, states, lr=lr, betas=group["betas"], eps=float(group["eps"]), correct_bias=correct,
                         scale=lambda p, t: anneal(t, self.k, self.t0) if id(p) in refs else 1.0)
            for p, state in zip(params, states, strict=True):
                ref = refs.get(id(p))
                if ref is None:
                    continue
                lam = anneal(state["step"], self.k, self.t0)
                self.last_lambda = lam
                # The pull reads θ after the Adam step, as the reference's in-place order does.
                p.add_(p - ref, alpha=-lr * (1.0 - lam) * self.gamma)

    def record(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "k": self.k, "t0": self.t0, "init": self.init, "last_lambda": self.last_lambda}
