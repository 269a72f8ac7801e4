"""The one run setup: everything between a run config and the first training step, written once.

The finetuning run (:func:`mixsweep.run.train.run`), the digits run (:mod:`mixsweep.digits.run`) and
``gpu-check`` (:mod:`mixsweep.gpucheck.prepare`) call these instead of repeating them, so a new
recipe knob lands here and in :mod:`mixsweep.config.schema` (whose declarations docs/settings.md renders).
In order, a finetuning run:

1. :func:`checked` — the config against the schema (planning did so too; ``rerun`` and HPO trials
   reach a run without planning);
2. :func:`runtime` — device, determinism, CPU threads; :func:`seeds` — the four seeds;
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
from mixsweep.errors import UserError
from mixsweep.models.pretrained import init_head, load_pretrained
from mixsweep.optim import build_optimizer, linear_warmup_decay
from mixsweep.regularizers import Method, RunContext, build_methods, head_module_names, lifecycle


def checked(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """``cfg`` (resolved, plain) after :func:`mixsweep.config.schema.validate`: raises one line per bad value."""
    schema.validate(cfg)
    return cfg


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


def runtime(cfg: Mapping[str, Any]) -> tuple[torch.device, dict]:
    """The run's device and determinism record; sets torch's CPU threads (``threads``, null = leave)."""
    device = resolve_device(str(cfg.get("device", "auto")))
    determinism = set_determinism(bool(cfg.get("deterministic", True)))
    if cfg.get("threads") is not None:
        torch.set_num_threads(int(cfg["threads"]))
    return device, determinism


def seed_noise(seed: int) -> None:
    """Seed every global RNG that dropout and mixout masks draw from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Seeds:
    """The restart index and the three sources of randomness it defaults (``init_seed: ${seed}``, ...)."""

    restart: int
    init: int
    data: int
    noise: int


def seeds(cfg: Mapping[str, Any]) -> Seeds:
    restart = int(cfg.get("seed", 0))
    return Seeds(restart, *(int(cfg.get(k, restart)) for k in ("init_seed", "data_seed", "noise_seed")))


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


def max_grad_norm(train: Mapping[str, Any]) -> float | None:
    """``train.max_grad_norm`` as the clipping norm; null = no clipping (0 is out of the schema)."""
    clip = train.get("max_grad_norm")
    return float(clip) if clip else None


def cadence(train: Mapping[str, Any], steps_per_epoch: int) -> Cadence:
    """Total steps = epochs × steps_per_epoch, capped at max_steps (null = no cap); dev evaluation every
    ``eval_every`` steps, or (null) every total // ``evals_per_run`` steps when that is set, or
    ``evals_per_epoch`` times per epoch, always after the last step; besides, at step 0 with
    ``eval_at_start`` and at each epoch's end with ``eval_at_epoch_end`` (both off when absent)."""
    total = int(train["epochs"]) * steps_per_epoch
    if train.get("max_steps"):
        total = min(total, int(train["max_steps"]))
    # evals_per_run is revisit-bert-finetuning's --num_loggings: logging_steps = t_total // N.
    per_run = int(train.get("evals_per_run") or 0)
    every = int(train.get("eval_every") or 0) or (
        max(1, total // per_run) if per_run else max(1, steps_per_epoch // int(train.get("evals_per_epoch") or 1)))
    return Cadence(total, every, max_grad_norm(train), eval_at_start=bool(train.get("eval_at_start")),
                   epoch_steps=steps_per_epoch if train.get("eval_at_epoch_end") else None)


# --- model, methods, optimizer -------------------------------------------------------------------


def new_model(model_cfg: Mapping[str, Any], num_labels: int, head_init_std: float, init_seed: int) -> nn.Module:
    """The pretrained model with its new head ~ N(0, head_init_std²), bias 0, drawn from ``init_seed``."""
    model = load_pretrained(model_cfg, num_labels)
    init_head(model, head_module_names(model), float(head_init_std), int(init_seed))
    return model


def regularize(methods: list[Method], ctx: RunContext, optimizer_cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Prepare ``methods`` on ``ctx.model`` (every dropout 0, then each method; ``ctx.reference`` = w_pre)
    and build the optimizer over their parameter groups; ``ctx.optimizer`` is set."""
    lifecycle.prepare(methods, ctx)
    optimizer = build_optimizer(lifecycle.param_groups(methods, ctx), optimizer_cfg)
    ctx.optimizer = optimizer
    return optimizer


@dataclass
class RunSetup:
    """A finetuning run ready for its first step."""

    model: nn.Module
    methods: list[Method]
    ctx: RunContext
    optimizer: torch.optim.Optimizer
    scheduler: Any
    cadence: Cadence


def finetune(cfg: Mapping[str, Any], num_labels: int, steps_per_epoch: int, device: torch.device) -> RunSetup:
    """Methods (validated before any work), model and head, the methods prepared, optimizer, schedule."""
    tr = cfg["train"]
    methods = build_methods(cfg["regularizer"])
    s = seeds(cfg)
    model = new_model(cfg["model"], num_labels, tr["head_init_std"], s.init)
    model.to(device)
    steps = cadence(tr, steps_per_epoch)
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=s.init, noise_seed=s.noise,
                     total_steps=steps.total_steps, device=device)
    optimizer = regularize(methods, ctx, cfg["optimizer"])
    scheduler = linear_warmup_decay(optimizer, steps.total_steps, float(tr["warmup_ratio"]))
    return RunSetup(model, methods, ctx, optimizer, scheduler, steps)
