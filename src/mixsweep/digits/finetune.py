"""Finetuning setup: which regularizer goes where, and how far the weights moved from w_pre.

The paper (Sec. 4) replaces dropout(p) on the hidden layers by mixout(w_pre, p) "as in" its
dropout-equivalence: dropout on a hidden layer drops that layer's neurons, and mixout at neuron
level on the *next* linear layer mixes those same neurons' outgoing weights toward w_pre. So with
mixout the dropout probability is 0 and ``fc.1`` (300→100) and ``fc.2`` (100→10) become MixLinear
layers; ``fc.0`` (784→300) keeps its plain weights because dropout never touches the input pixels.
The 10-way output layer is reused from pretraining (both tasks have the same 10 digit classes; the
paper does not say so, this is our inference), so it is a pretrained layer and is mixed like the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mixsweep.digits.model import DigitsMLP, fed_by_dropout
from mixsweep.errors import UserError
from mixsweep.regularizers.mixlinear import MixLinear


@dataclass(frozen=True)
class FinetunePlan:
    dropout: float  # on the hidden layers; 0 whenever mixout is on (mixout replaces it)
    mixout_p: float
    mixout_layers: tuple[str, ...]  # names in DigitsMLP, e.g. ("fc.1", "fc.2"); () when mixout is off
    granularity: str = "neuron"
    grad: str = "exact"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dropout": self.dropout,
            "mixout_p": self.mixout_p,
            "mixout_layers": list(self.mixout_layers),
            "granularity": self.granularity,
            "grad": self.grad,
        }


def plan_regularizer(reg: Mapping[str, Any], model: DigitsMLP, model_dropout: float) -> FinetunePlan:
    """Turn a regularizer block (conf/regularizer/*.yaml) into what finetuning applies to ``model``.

    ``dropout: null`` keeps the model's own dropout (``model_dropout``, the pretraining value).
    ``mixout.layers``: ``paper`` = the layers dropout fed, ``all_linear`` = every linear layer,
    anything else is a regular expression that must fully match layer names (``fc.0`` … ``fc.2``).
    """
    mix = reg.get("mixout") or {}
    p = float(mix.get("p") or 0.0)
    dropout = model_dropout if reg.get("dropout") is None else float(reg["dropout"])
    _reject_unsupported(reg)
    if p == 0.0:
        return FinetunePlan(dropout=dropout, mixout_p=0.0, mixout_layers=())
    return FinetunePlan(
        dropout=0.0,
        mixout_p=p,
        mixout_layers=_select_layers(str(mix.get("layers", "paper")), model),
        granularity=str(mix.get("granularity", "neuron")),
        grad=str(mix.get("grad", "exact")),
    )


def apply_plan(model: DigitsMLP, plan: FinetunePlan, noise: torch.Generator | None = None) -> DigitsMLP:
    """Set dropout and swap the planned layers for MixLinear toward their current (pretrained) weights."""
    model.set_dropout(plan.dropout)
    for name in plan.mixout_layers:
        i = int(name.split(".")[1])
        model.fc[i] = MixLinear.from_linear(
            model.fc[i], plan.mixout_p, granularity=plan.granularity, grad=plan.grad, generator=noise
        )
    return model


def squared_distance(model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """‖w − w_ref‖² per parameter tensor, over every trainable parameter (weights, biases, LayerNorm).

    MixLinear keeps the Linear parameter names and its target is a non-persistent buffer, so the
    names line up with w_pre's state_dict. The total over all entries is ``sum(result.values())``.
    """
    with torch.no_grad():
        return {
            name: float((param.detach().cpu() - reference[name].cpu()).pow(2).sum())
            for name, param in model.named_parameters()
        }


def _select_layers(spec: str, model: DigitsMLP) -> tuple[str, ...]:
    if spec == "paper":
        return tuple(fed_by_dropout(model))
    names = model.linear_names()
    if spec == "all_linear":
        return tuple(names)
    try:
        chosen = tuple(n for n in names if re.fullmatch(spec, n))
    except re.error as err:
        raise UserError(f"mixout.layers {spec!r} is not a valid regex ({err}): use paper, all_linear or a regex") from err
    if not chosen:
        raise UserError(f"mixout.layers {spec!r} matches no digits layer ({', '.join(names)}): use paper or all_linear")
    return chosen


def _reject_unsupported(reg: Mapping[str, Any]) -> None:
    if float((reg.get("wdecay") or {}).get("lam") or 0.0) > 0:
        raise UserError(
            "the digits experiment finetunes without weight decay (paper Sec. 4): use a regularizer with wdecay.lam: 0"
        )
    if (reg.get("head") or {}).get("policy", "none") != "none":
        raise UserError(
            "the digits MLP reuses its pretrained output layer, so head policies do not apply: set head.policy: none"
        )
