"""The one place the check turns a regularizer name into a regularized model.

It builds through the runner's own setup (:mod:`mixsweep.run.prepare`): the model with its new head
initialised (:func:`~mixsweep.run.prepare.new_model`), the regularizer of ``conf/regularizer/<name>.yaml``
prepared with the optimizer of the run config (:func:`~mixsweep.run.prepare.regularize`: one frozen copy
of w_pre, shared with mixout's targets and wdecay), and the run config's clipping. Only the
schedule differs: a constant lr, because the check times steps, not schedules.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mixsweep.config import settings
from mixsweep.records import cell_label
from mixsweep.regularizers import RunContext, build_methods, head_module_names
from mixsweep.regularizers.base import Method
from mixsweep.run import prepare
from mixsweep.run.step import optimizer_step, transform_loss


@functools.lru_cache(maxsize=32)
def _composed(overrides: tuple[str, ...]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from mixsweep.sweeping.compose import compose_run

    return OmegaConf.to_container(compose_run(list(overrides)), resolve=True)


def run_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved run config (``conf/config.yaml`` + overrides) as a plain dict (a fresh copy)."""
    return copy.deepcopy(_composed(tuple(overrides)))


def run_settings(overrides: Sequence[str] = ()) -> settings.Run:
    """The run config of ``overrides``, checked and parsed once into its frozen settings: the check's
    boundary; everything below it reads attributes."""
    return prepare.parsed(run_config(overrides))


@dataclass
class Prepared:
    """A regularized model ready to train, with the hooks the training step calls."""

    name: str                                   # conf/regularizer/<name>.yaml
    label: str                                  # the paper-style cell label
    model: nn.Module
    optimizer: torch.optim.Optimizer
    reference: dict[str, Tensor]                # frozen w_pre (shared with mixout targets)
    methods: list[Method]                       # the regularizer's methods, in hook order
    ctx: RunContext                             # what the methods act on
    scheduler: Any                              # constant lr: the check times steps, not schedules
    max_grad_norm: float | None                 # the run config's clipping, as the runner applies it

    def state_tensors(self) -> list[Tensor]:
        """Tensors the run keeps for its whole life: parameters, buffers, w_pre, optimizer state."""
        state = [t for s in self.optimizer.state.values() for t in s.values() if isinstance(t, Tensor)]
        return [*self.model.parameters(), *self.model.buffers(), *self.reference.values(), *state]


def load_model(model: settings.Model | Mapping[str, Any], num_labels: int = 2, init_seed: int = 0) -> nn.Module:
    """A fresh copy of the pretrained ``model`` (its settings, or a ``model`` block to parse) with the run
    config's new head (N(0, head_init_std²), seeded)."""
    model = settings.as_settings(settings.Model, model, "model")
    return prepare.new_model(model, num_labels, run_settings().train.head_init_std, init_seed)


def prepare_model(model: nn.Module, regularizer: str, device: torch.device,
                  overrides: Sequence[str] = ()) -> Prepared:
    """Apply ``conf/regularizer/<regularizer>.yaml`` (+ ``overrides``) to ``model``, as a run would."""
    run = run_settings([f"regularizer={regularizer}", *overrides])
    methods = build_methods(run.regularizer)
    model.to(device).train()
    seeds = run.seeds
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=seeds.init,
                     noise_seed=seeds.noise, total_steps=10**9, device=device)
    optimizer = prepare.regularize(methods, ctx, run.optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return Prepared(
        name=regularizer, label=cell_label(run.regularizer), model=model, optimizer=optimizer,
        reference=ctx.reference, methods=methods, ctx=ctx, scheduler=scheduler, max_grad_norm=run.train.max_grad_norm,
    )


def train_step(prep: Prepared, batch: dict[str, Tensor], amp: Any) -> Tensor:
    """One optimizer step as the runner takes it (:mod:`mixsweep.run.step`): the methods' loss terms, backward,
    their gradient hooks, clipping, the step and its hooks, zero_grad."""
    ctx = prep.ctx
    with amp:
        outputs = prep.model(**batch)
    ctx.batch, ctx.outputs = batch, outputs
    loss, _ = transform_loss(prep.methods, outputs.loss, 0, ctx)
    optimizer_step(prep.methods, ctx, loss, 0, prep.optimizer, prep.scheduler, prep.max_grad_norm)
    ctx.penalties.clear()
    ctx.batch = ctx.outputs = None
    return loss.detach()
