"""wdecay(u, λ), the pull toward a reference u (w_pre or 0), and ‖w − w_pre‖² for logging.

Two forms; the paper defines the first and does not say which its experiments used:
- ``form="l2"``:        minimise L(w) + λ/2 · Σ ‖w − u‖²   (gradient λ(w − u), through the optimizer)
- ``form="decoupled"``: θ ← θ − lr·λ·(θ − u) after every optimizer step (REVISIT's PriorWD; with
  u = 0 this is AdamW-style decay).

Decayed: every trainable parameter except biases and normalization (LayerNorm) weights. u is w_pre
(``target="pretrained"``) or 0 (``target="zero"``). The new head has no w_pre; it is decayed only if
asked: ``head="none"`` (not decayed), ``"zero"`` (u = 0), or ``"init"`` (u = its own initialisation
w0). Zhang et al.'s PriorWD pulled the head toward w0 by accident (revisit-bert-finetuning issue #4),
so that is never a default.

‖w − w_pre‖² sums over every trainable pretrained parameter (biases and LayerNorm included, the head
excluded). Memory: the pretrained reference is one copy of those parameters, and a ``MixLinear``
whose target still equals its weight lends its target buffer instead of a second copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mixsweep.regularizers.mixlinear import MixLinear
from mixsweep.regularizers.mixout import RegularizerError, check_choice
from mixsweep.regularizers.surgery import head_module_names

TARGETS = ("pretrained", "zero")
FORMS = ("l2", "decoupled")
HEAD_DECAY = ("none", "zero", "init")
_NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def is_decayed(param_name: str, module: nn.Module) -> bool:
    """Devlin et al.'s rule: no decay for biases and normalization weights."""
    is_norm = isinstance(module, _NORM_LAYERS) or "norm" in type(module).__name__.lower()
    return param_name != "bias" and not is_norm


def _own_parameters(model: nn.Module) -> Iterator[tuple[str, str, nn.Module, nn.Parameter]]:
    """(module name, parameter name, module, parameter) for each trainable parameter, once."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:
                seen.add(id(param))
                yield module_name, param_name, module, param


def _qualified(module_name: str, param_name: str) -> str:
    return f"{module_name}.{param_name}" if module_name else param_name


def pretrained_reference(model: nn.Module, head_names: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Frozen w_pre for every trainable parameter outside the head, keyed like ``named_parameters``.

    Call it after :func:`apply_mixout` (so MixLinear targets are shared, not copied) and after
    ``model.to(device)`` (the dict holds tensors, which do not follow a later ``.to()``).
    """
    head = set(head_module_names(model) if head_names is None else head_names)
    reference: dict[str, Tensor] = {}
    for module_name, param_name, module, param in _own_parameters(model):
        if module_name in head:
            continue
        shares_target = isinstance(module, MixLinear) and param_name == "weight"
        if shares_target and torch.equal(module.target, param.detach()):
            reference[_qualified(module_name, param_name)] = module.target
        else:
            reference[_qualified(module_name, param_name)] = param.detach().clone()
    return reference


def squared_distance(model: nn.Module, reference: Mapping[str, Tensor]) -> float:
    """Σ ‖p − ref‖² over the parameter names in ``reference``, accumulated in float64."""
    params = dict(model.named_parameters())
    unknown = sorted(set(reference) - set(params))
    if unknown:
        raise ValueError(f"reference names parameters the model lacks, e.g. {unknown[:3]}")
    total = 0.0
    with torch.no_grad():
        for name, ref in reference.items():
            param = params[name]
            total += float((param - ref.to(param.device)).pow_(2).sum(dtype=torch.float64))
    return total


class _HalfSquaredDistance(torch.autograd.Function):
    """Half the squared distance of two tensors; backward recomputes the difference rather than keep it."""

    @staticmethod
    def forward(ctx, weight: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(weight, target)
        return (weight - target).pow_(2).sum().mul_(0.5)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, target = ctx.saved_tensors
        return (weight - target).mul_(grad), None


@dataclass
class _Term:
    name: str
    param: nn.Parameter
    target: Tensor | None  # None means u = 0


class WDecay:
    """wdecay(u, λ) on a model; see the module docstring for the forms, targets and head policies.

    Construct it right after loading w_pre and applying mixout: it snapshots u at construction. Pass
    ``reference`` (from :func:`pretrained_reference`) to share an existing copy of w_pre. A later
    ``model.to()`` is followed: shared MixLinear targets move with their layers, and any other u is
    moved once, at its first use.
    """

    def __init__(
        self,
        model: nn.Module,
        lam: float,
        target: str = "pretrained",
        form: str = "l2",
        head: str = "none",
        head_names: Sequence[str] | None = None,
        reference: Mapping[str, Tensor] | None = None,
    ) -> None:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
            raise RegularizerError(f"wdecay lambda must be a finite number >= 0, got {lam!r}: pass e.g. 0.01")
        self.lam = float(lam)
        self.target = check_choice(target, TARGETS, "wdecay target")
        self.form = check_choice(form, FORMS, "wdecay form")
        self.head = check_choice(head, HEAD_DECAY, "wdecay head policy")
        self.model = model
        head_set = set(head_module_names(model) if head_names is None else head_names)
        self.reference = (
            dict(reference) if reference is not None else pretrained_reference(model, list(head_set))
        )
        # Reference entries that are a MixLinear's target buffer: read through the layer, so they follow .to().
        self._owners: dict[str, MixLinear] = {
            f"{n}.weight": m
            for n, m in model.named_modules()
            if isinstance(m, MixLinear) and self.reference.get(f"{n}.weight") is m.target
        }
        self.terms = self._build_terms(head_set)

    def _build_terms(self, head_set: set[str]) -> list[_Term]:
        terms = []
        for module_name, param_name, module, param in _own_parameters(self.model):
            name = _qualified(module_name, param_name)
            if not is_decayed(param_name, module) or (module_name in head_set and self.head == "none"):
                continue
            if module_name in head_set:
                terms.append(_Term(name, param, param.detach().clone() if self.head == "init" else None))
            elif self.target == "zero":
                terms.append(_Term(name, param, None))
            elif name in self.reference:
                terms.append(_Term(name, param, self.reference[name]))
            else:
                raise ValueError(f"the pretrained reference lacks {name!r}: build it from this model")
        return terms

    def _target(self, term: _Term) -> Tensor | None:
        """u for ``term`` on its parameter's device and dtype (None for u = 0)."""
        if term.name in self._owners:
            return self._owners[term.name].target
        u = term.target
        if u is not None and (u.device != term.param.device or u.dtype != term.param.dtype):
            moved = u.to(term.param)
            if self.reference.get(term.name) is u:  # keep one copy, not a stale one on the old device
                self.reference[term.name] = moved
            term.target = u = moved
        return u

    def current_reference(self) -> dict[str, Tensor]:
        """w_pre by parameter name, with shared MixLinear targets read from their layers."""
        return {n: self._owners[n].target if n in self._owners else t for n, t in self.reference.items()}

    @property
    def decayed_names(self) -> list[str]:
        return [t.name for t in self.terms]

    def penalty(self) -> Tensor:
        """The L2 form's term to add to the loss; a 0-dim zero when ``form="decoupled"`` or λ = 0."""
        if self.form != "l2" or self.lam == 0.0 or not self.terms:
            device = self.terms[0].param.device if self.terms else None
            return torch.zeros((), device=device)
        total = sum(
            _HalfSquaredDistance.apply(t.param, u)
            if (u := self._target(t)) is not None
            else t.param.pow(2).sum().mul(0.5)
            for t in self.terms
        )
        return total * self.lam

    @torch.no_grad()
    def apply_decoupled(self, lr: float) -> None:
        """One decoupled-form step, in place (no-op for ``form="l2"``); call it after ``optimizer.step()``."""
        if lr < 0:
            raise RegularizerError(f"learning rate must be >= 0, got {lr!r}")
        if self.form != "decoupled" or self.lam == 0.0:
            return
        step = lr * self.lam
        for term in self.terms:
            u = self._target(term)
            if u is None:
                term.param.mul_(1.0 - step)
            else:
                term.param.lerp_(u, step)  # θ + step·(u − θ)

    def distance_sq(self) -> float:
        """‖w − w_pre‖² over the pretrained parameters (head excluded), for logging."""
        return squared_distance(self.model, self.current_reference())
