"""The trainable set of a parameter-efficient method (LoRA, BitFit): which parameters the optimizer sees.

A method that chooses the trainable set freezes every other parameter (``requires_grad = False``) in its
``prepare()``; the runner then builds the optimizer's groups, ``ctx.reference`` (w_pre) and every
decay from the parameters that still require a gradient, so a frozen tensor is never updated, decayed
or pulled. At most one method of a run chooses the set (:attr:`Method.sets_trainable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn


def under(name: str, modules: Iterable[str]) -> bool:
    """True when the parameter ``name`` belongs to one of the ``modules`` (qualified module names)."""
    return any(name.startswith(f"{m}.") for m in modules)


def train_only(model: nn.Module, keep: Callable[[str], bool]) -> None:
    """``requires_grad`` = ``keep(name)`` for every parameter of ``model``, by qualified name."""
    for name, p in model.named_parameters():
        p.requires_grad_(bool(keep(name)))


def parameter_counts(model: nn.Module) -> dict[str, int | float]:
    """``{"trainable", "total", "fraction"}``: parameter elements that require a gradient, all parameter
    elements of the model as it trains (adapters included), and trainable / total."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"trainable": trainable, "total": total, "fraction": trainable / total if total else 0.0}
