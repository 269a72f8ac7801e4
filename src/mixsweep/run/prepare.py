"""The one run setup: everything between a run config and the first training step, written once.

The finetuning run (:func:`mixsweep.run.train.run`), the digits run (:mod:`mixsweep.digits.run`) and
``gpu-check`` (:mod:`mixsweep.gpucheck.prepare`) call these instead of repeating them, so a new
recipe knob lands here and in :mod:`mixsweep.config.settings` (whose declarations docs/settings.md renders).
In order, a finetuning run:

1. :func:`parsed` — the config against the schema, into the frozen settings
   (:class:`mixsweep.config.settings.Run`; planning checked it too; ``rerun`` and HPO trials reach a
   run without planning);
2. :func:`runtime` — device, determinism, CPU threads (the seeds are ``Run.seeds``);
3. :func:`cadence` — total optimizer steps, evaluation interval, clipping norm;
4. :func:`new_model` — the pretrained encoder with its new head ~ N(0, head_init_std²), bias 0;
5. :func:`regularize` — the regularizer's methods prepared on the model (w_pre kept), their
   parameter groups, the optimizer;
6. the linear warmup/decay schedule (:func:`finetune` does 3–6 in this order).

The digits run keeps its own optimizer and schedule (the paper's Section 4 recipe in
``task.finetune``, :func:`mixsweep.digits.train.fit`) and its own method context (no new head).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mixsweep.config import schema
from mixsweep.config.settings import Model, Optimizer, Run, Train, as_settings
from mixsweep.errors import UserError
from mixsweep.models.pretrained import init_head, load_pretrained
from mixsweep.optim import build_optimizer, linear_warmup_decay
from mixsweep.regularizers import Method, RunContext, build_methods, head_module_names, lifecycle


def parsed(cfg: Run | Mapping[str, Any]) -> Run:
    """``cfg`` (resolved, plain) as its frozen settings, after :func:`mixsweep.config.schema.validate` (which
    raises one line per bad value); a :class:`Run` is returned as it is."""
    return cfg if isinstance(cfg, Run) else schema.parsed(cfg)


# --- machine and randomness ---------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name} was requested but no CUDA GPU is visible: use device=auto or device=cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def set_determinism(enabled: bool) -> dict:
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
    return {"deterministic_algorithms": enabled, "cudnn_benchmark": not enabled}


def runtime(run: Run) -> tuple[torch.device, dict]:
    """The run's device and determinism record; sets torch's CPU threads (``threads``, null = leave)."""
    device = resolve_device(run.device)
    determinism = set_determinism(run.deterministic)
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    return device, determinism


def seed_noise(seed: int) -> None:
    """Seed every global RNG that dropout and mixout masks draw from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- the recipe's step arithmetic ----------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    total_steps: int               # min(epochs × steps_per_epoch, max_steps)
    eval_every: int                # train.eval_every, else total // evals_per_run, else steps_per_epoch // evals_per_epoch
    max_grad_norm: float | None    # None = no clipping
    eval_at_start: bool = False    # train.eval_at_start: also at step 0, before any update
    epoch_steps: int | None = None  # steps per epoch when train.eval_at_epoch_end: also at each epoch's end

    def evaluates(self, step: int) -> bool:
        """Whether the dev set is scored after ``step`` updates: step 0 when ``eval_at_start``; every
        ``eval_every`` steps; the last step. With ``epoch_steps`` (n), as Mosbach et al.'s
        run_finetuning.py: each epoch's end (step % n == 0), and no cadence point one step before it
        (step % n == n − 1; their mid-epoch evaluation runs before the update, on ``global_step``, only
        while the batch index is < n − 1, the epoch-end evaluation following one update later)."""
        if step == 0:
            return self.eval_at_start
        if step == self.total_steps:
            return True
        if self.epoch_steps is not None:
            if step % self.epoch_steps == 0:
                return True
            if step % self.epoch_steps == self.epoch_steps - 1:
                return False
        return step % self.eval_every == 0


def cadence(train: Train | Mapping[str, Any], steps_per_epoch: int) -> Cadence:
    """Total steps = epochs × steps_per_epoch, capped at max_steps (null = no cap); dev evaluation every
    ``eval_every`` steps, or (null) every total // ``evals_per_run`` steps when that is set, or
    ``evals_per_epoch`` times per epoch, always after the last step; besides, at step 0 with
    ``eval_at_start`` and at each epoch's end with ``eval_at_epoch_end`` (both off when absent)."""
    train = as_settings(Train, train, "train")
    total = train.epochs * steps_per_epoch
    if train.max_steps is not None:
        total = min(total, train.max_steps)
    # evals_per_run is revisit-bert-finetuning's --num_loggings: logging_steps = t_total // N.
    if train.eval_every is not None:
        every = train.eval_every
    elif train.evals_per_run is not None:
        every = max(1, total // train.evals_per_run)
    else:
        every = max(1, steps_per_epoch // train.evals_per_epoch)
    return Cadence(total, every, train.max_grad_norm, eval_at_start=train.eval_at_start,
                   epoch_steps=steps_per_epoch if train.eval_at_epoch_end else None)


# --- model, methods, optimizer -------------------------------------------------------------------


def new_model(model: Model | Mapping[str, Any], num_labels: int, head_init_std: float, init_seed: int) -> nn.Module:
    """The pretrained model with its new head ~ N(0, head_init_std²), bias 0, drawn from ``init_seed``."""
    net = load_pretrained(model, num_labels)
    init_head(net, head_module_names(net), head_init_std, init_seed)
    return net


def regularize(methods: list[Method], ctx: RunContext, optimizer: Optimizer) -> torch.optim.Optimizer:
    """Prepare ``methods`` on ``ctx.model`` (every dropout 0, then each method; ``ctx.reference`` = w_pre)
    and build the optimizer over their parameter groups; ``ctx.optimizer`` is set."""
    lifecycle.prepare(methods, ctx)
    built = build_optimizer(lifecycle.param_groups(methods, ctx), optimizer)
    ctx.optimizer = built
    return built


@dataclass
class RunSetup:
    """A finetuning run ready for its first step."""

    model: nn.Module
    methods: list[Method]
    ctx: RunContext
    optimizer: torch.optim.Optimizer
    scheduler: Any
    cadence: Cadence


def finetune(run: Run, num_labels: int, steps_per_epoch: int, device: torch.device) -> RunSetup:
    """Methods (validated before any work), model and head, the methods prepared, optimizer, schedule."""
    methods = build_methods(run.regularizer)
    s = run.seeds
    model = new_model(run.model, num_labels, run.train.head_init_std, s.init)
    model.to(device)
    steps = cadence(run.train, steps_per_epoch)
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=s.init, noise_seed=s.noise,
                     total_steps=steps.total_steps, device=device)
    optimizer = regularize(methods, ctx, run.optimizer)
    scheduler = linear_warmup_decay(optimizer, steps.total_steps, run.train.warmup_ratio)
    return RunSetup(model, methods, ctx, optimizer, scheduler, steps)
