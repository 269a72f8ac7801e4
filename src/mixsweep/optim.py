"""Optimizers and the learning-rate schedule of the paper's recipe."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from mixsweep.config.settings import Optimizer as OptimizerSettings
from mixsweep.config.settings import as_settings
from mixsweep.errors import UserError


class TransformersAdamW(Optimizer):
    """Adam as the stabilizers' reference code writes it (transformers' ``AdamW``, as copied into
    RecAdam.py and ChildTuningOptimizer.py, and fairseq's ``adam.py``), weight decay 0::

        m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − s · m / (√v + ε),
        s = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ) with ``correct_bias``, else s = lr (t: the parameter's step count).

    ε is added to the *uncorrected* √v; torch's AdamW adds it to √v / √(1 − β₂ᵗ), which differs where
    gradients are small (on a tiny BERT at lr 1e-3: up to 2e-3 in a parameter after 6 steps).
    """

    def __init__(self, params: Iterable, lr: float = 2e-5, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, correct_bias: bool = True) -> None:
        if lr < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid Adam hyperparameters lr={lr} betas={betas} eps={eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "correct_bias": correct_bias})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            adam_update_(params, [self.state[p] for p in params], lr=group["lr"], betas=group["betas"],
                         eps=group["eps"], correct_bias=group["correct_bias"])
        return loss


@torch.no_grad()
def adam_update_(params: Sequence[Tensor], states: Sequence[dict], *, lr: float, betas: tuple[float, float],
                 eps: float, correct_bias: bool, scale: Callable[[Tensor, int], float] | None = None) -> None:
    """:class:`TransformersAdamW`'s update of ``params`` in place, from their ``.grad`` and their optimizer
    ``states`` (``step``, ``exp_avg``, ``exp_avg_sq``; created on first use)::

        θ ← θ − c · s · m / (√v + ε),   c = scale(θ, t) (1 without ``scale``)

    with m, v and s as in the class. ``scale`` lets a method that owns the update weigh each parameter's
    step by its own step count t (RecAdam's λ(t)) without a second copy of Adam.
    """
    if not params:
        return
    grads = [p.grad for p in params]
    exp_avg, exp_avg_sq, steps = [], [], []
    for p, state in zip(params, states, strict=True):
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        exp_avg.append(state["exp_avg"])
        exp_avg_sq.append(state["exp_avg_sq"])
        steps.append(state["step"])
    beta1, beta2 = betas
    # foreach kernels: one launch per op for all tensors, as torch's own Adam does.
    torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sq)
    torch._foreach_add_(denom, eps)
    if scale is None and not correct_bias:
        torch._foreach_addcdiv_(params, exp_avg, denom, value=-lr)
        return
    sizes = [-lr * (math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if correct_bias else 1.0) for t in steps]
    if scale is not None:
        sizes = [size * scale(p, t) for size, p, t in zip(sizes, params, steps, strict=True)]
    torch._foreach_addcdiv_(params, exp_avg, denom, sizes)


class BertAdam(TransformersAdamW):
    """Adam *without* bias correction, as in Devlin et al.'s BERTAdam: :class:`TransformersAdamW` with
    ``correct_bias=False``, i.e. θ ← θ − lr · m / (√v + ε).

    Without the 1/(1−βᵗ) corrections the first steps are tiny for m and large relative to v's
    bias, which Zhang et al. (2021) and Mosbach et al. (2021) identify as the main driver of
    failed BERT finetuning runs, so the faithful Lee et al. profile needs it.
    """

    def __init__(self, params: Iterable, lr: float = 2e-5, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, correct_bias=False)


def bias_corrected(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` divides Adam's moments by 1 − βᵗ: a method that owns the update (RecAdam)
    takes the configured optimizer's choice, so ``optimizer=bertadam`` stays uncorrected under it."""
    if isinstance(optimizer, TransformersAdamW):
        return all(g["correct_bias"] for g in optimizer.param_groups)
    return True


def build_optimizer(params: Iterable, cfg: OptimizerSettings | Mapping[str, Any]) -> Optimizer:
    """The configured optimizer over ``params``: tensors, or parameter groups (dicts with ``params``
    and optionally ``lr`` (absolute) or ``lr_scale`` (× the optimizer's lr)). The schedule
    multiplies every group's initial lr by the same factor, so the ratios between groups hold."""
    cfg = as_settings(OptimizerSettings, cfg, "optimizer")
    name, lr, betas, eps = cfg.name, cfg.lr, cfg.betas, cfg.eps
    params = [_group(g, lr) if isinstance(g, Mapping) else g for g in params]
    if name == "bertadam":
        return BertAdam(params, lr=lr, betas=betas, eps=eps)
    if name == "adamw_hf":
        return TransformersAdamW(params, lr=lr, betas=betas, eps=eps, correct_bias=True)
    if name == "adamw":
        try:  # the fused kernel (CPU and CUDA) is what transformers.Trainer uses by default
            return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=0.0, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=0.0, foreach=True)
    raise UserError(f"unknown optimizer '{name}': choose bertadam, adamw or adamw_hf (conf/optimizer/*.yaml)")


def _group(group: Mapping[str, Any], lr: float) -> dict[str, Any]:
    g = dict(group)
    if "lr_scale" in g:
        if "lr" in g:
            raise ValueError("a parameter group sets both lr and lr_scale: give one")
        g["lr"] = lr * float(g["lr_scale"])
    return g


def linear_warmup_decay(optimizer: Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """lr × t/w for t < w, then lr × (T − t)/(T − w), with w = ⌊warmup_ratio · T⌋."""
    warmup = int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
