"""The one place the check turns a regularizer name into a regularized model.

It mirrors the runner's setup (``mixsweep.train.run``): the model with its new head initialised,
the regularizer of ``conf/regularizer/<name>.yaml`` applied, moved to the device, one frozen copy
of w_pre (shared with mixout's targets and wdecay), and the optimizer of the run config. When the
runner's regularizer setup changes, only this module follows it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mixsweep.models import init_head, load_pretrained
from mixsweep.optim import build_optimizer
from mixsweep.records import cell_label
from mixsweep.regularizers import head_module_names, pretrained_reference
from mixsweep.train import apply_noise_regularizer, build_wdecay


@functools.lru_cache(maxsize=32)
def _composed(overrides: tuple[str, ...]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from mixsweep.sweeping.compose import compose_run

    return OmegaConf.to_container(compose_run(list(overrides)), resolve=True)


def run_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved run config (``conf/config.yaml`` + overrides) as a plain dict (a fresh copy)."""
    return copy.deepcopy(_composed(tuple(overrides)))


@dataclass
class Prepared:
    """A regularized model ready to train, with the hooks the training step calls."""

    name: str                                   # conf/regularizer/<name>.yaml
    label: str                                  # the paper-style cell label
    model: nn.Module
    optimizer: torch.optim.Optimizer
    reference: dict[str, Tensor]                # frozen w_pre (shared with mixout targets)
    penalty: Callable[[], Tensor] | None        # added to the loss (wdecay's L2 form)
    after_step: Callable[[float], None] | None  # called with the lr after optimizer.step()

    def state_tensors(self) -> list[Tensor]:
        """Tensors the run keeps for its whole life: parameters, buffers, w_pre, optimizer state."""
        state = [t for s in self.optimizer.state.values() for t in s.values() if isinstance(t, Tensor)]
        return [*self.model.parameters(), *self.model.buffers(), *self.reference.values(), *state]


def load_model(model_cfg: dict[str, Any], num_labels: int = 2, init_seed: int = 0) -> nn.Module:
    """A fresh copy of the pretrained model with the paper's new head (N(0, 0.02²), seeded)."""
    model = load_pretrained(model_cfg, num_labels)
    init_head(model, head_module_names(model), 0.02, init_seed)
    return model


def prepare_model(model: nn.Module, regularizer: str, device: torch.device,
                  overrides: Sequence[str] = ()) -> Prepared:
    """Apply ``conf/regularizer/<regularizer>.yaml`` (+ ``overrides``) to ``model``, as a run would."""
    cfg = run_config([f"regularizer={regularizer}", *overrides])
    reg = cfg["regularizer"]
    head = head_module_names(model)
    apply_noise_regularizer(model, reg, head)
    model.to(device).train()
    reference = pretrained_reference(model, head)
    wdecay = build_wdecay(model, reg, head, reference)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg["optimizer"])
    return Prepared(
        name=regularizer, label=cell_label(reg), model=model, optimizer=optimizer, reference=reference,
        penalty=wdecay.penalty if wdecay is not None else None,
        after_step=wdecay.apply_decoupled if wdecay is not None else None,
    )


def train_step(prep: Prepared, batch: dict[str, Tensor], amp: Any, lr: float | None = None) -> Tensor:
    """One optimizer step as the runner takes it: loss (+ penalty), backward, step, hooks, zero_grad."""
    with amp:
        loss = prep.model(**batch).loss
    if prep.penalty is not None:
        loss = loss + prep.penalty()
    loss.backward()
    prep.optimizer.step()
    if prep.after_step is not None:
        prep.after_step(prep.optimizer.param_groups[0]["lr"] if lr is None else lr)
    prep.optimizer.zero_grad(set_to_none=True)
    return loss.detach()
