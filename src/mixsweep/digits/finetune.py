"""Finetuning setup of the digits MLP: the shared regularizer methods on this model, and how far the
weights moved from w_pre.

The paper (Sec. 4) replaces dropout(p) on the hidden layers by mixout(w_pre, p) "as in" its
dropout-equivalence: dropout on a hidden layer drops that layer's neurons, and mixout at neuron
level on the *next* linear layer mixes those same neurons' outgoing weights toward w_pre. So this
model's ``paper`` layer set (:func:`context`) is ``fc.1`` (300→100) and ``fc.2`` (100→10); ``fc.0``
(784→300) keeps its plain weights because dropout never touches the input pixels. The 10-way output
layer is reused from pretraining (both tasks have the same 10 digit classes; the paper does not say
so, this is our inference), so it is a pretrained layer and the MLP has no new head.

The regularizer block is read by the same methods as a finetuning run (:mod:`mixsweep.regularizers`):
``dropout: {p}`` sets the hidden dropout, ``mixout: {p, layers, granularity, grad}`` swaps layers for
MixLinear; the run starts with every dropout at 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mixsweep.digits.model import DigitsMLP, fed_by_dropout
from mixsweep.regularizers import RunContext, squared_distances


def context(model: DigitsMLP, *, total_steps: int, noise_seed: int, init_seed: int,
            device: torch.device) -> RunContext:
    """The methods' view of a digits run: no new head, mixout masks from their own generator, and the
    ``paper`` layer set = the layers dropout feeds."""
    return RunContext(
        model=model, head=[], init_seed=init_seed, noise_seed=noise_seed, total_steps=total_steps, device=device,
        noise_generator=torch.Generator(device).manual_seed(noise_seed),
        layer_presets={"paper": fed_by_dropout(model)},
    )


def squared_distance(model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """‖w − w_ref‖² per parameter tensor, over every trainable parameter (weights, biases, LayerNorm).

    MixLinear keeps the Linear parameter names and its target is a non-persistent buffer, so the
    names line up with w_pre's state_dict. The total over all entries is ``sum(result.values())``.
    """
    names = [name for name, _ in model.named_parameters()]
    return squared_distances(model, {name: reference[name] for name in names})
