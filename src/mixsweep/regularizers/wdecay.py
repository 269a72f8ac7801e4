"""wdecay(u, λ), the pull toward a reference u (w_pre or 0), and ‖w − w_pre‖² for logging.

Two forms; the paper defines the first and does not say which its experiments used:
- ``form="l2"``:        minimise L(w) + λ/2 · Σ ‖w − u‖²   (gradient λ(w − u), through the optimizer)
- ``form="decoupled"``: θ ← θ − lr·λ·(θ_old − u) on the *pre-update* θ_old, together with the
  optimizer's step. With u = 0 this is exactly BertAdam / Google BERT's ``AdamWeightDecayOptimizer``
  (update = m/(√v + ε) + λ·θ_old; θ ← θ − lr_t·update): Adam's own update does not depend on θ, so
  decaying θ just before ``optimizer.step()`` gives the same θ. With u = w_pre it is Zhang et al.'s
  PriorWD, which also decays before the Adam step. lr is each parameter group's current lr.
  ``placement="post_update"`` (decoupled only) decays the θ the optimizer just wrote instead,
  θ ← θ' − lr·λ·(θ' − u) with θ' = θ − lr·Adam step: Mosbach et al.'s mAdamW
  (uds-lsv/bert-stable-fine-tuning, examples/bert_stable_fine_tuning/adamw.py ``mAdamW.step``:
  ``p.data.addcdiv_(-step_size, exp_avg, denom)`` then ``p.data.add_(p.data, alpha=-lr·weight_decay)``),
  as transformers' AdamW of that time. The two differ by lr·λ·(the Adam step) per step. The L2 form
  has no placement (its gradient goes through the optimizer); the setting leaves it unchanged.

Decayed: every trainable parameter except biases, normalization (LayerNorm) weights and the names in
``keep_out`` (``ctx.no_decay``: LLRD's pooler and head). u is w_pre
(``target="pretrained"``) or 0 (``target="zero"``). The new head has no w_pre; it is decayed only if
asked: ``head="none"`` (not decayed), ``"zero"`` (u = 0), or ``"init"`` (u = its own initialisation
w0). Zhang et al.'s PriorWD pulled the head toward w0 by accident (revisit-bert-finetuning issue #4),
so that is never a default.

Cost: both forms run as a handful of fused ``torch._foreach_*`` kernels over all decayed tensors per
step. The L2 form adds λ(w − u) to the gradients after the backward pass (the exact gradient of the
term, before clipping, so the optimizer sees the same gradient as with the term in the loss) instead
of building an autograd graph over every parameter; its value is logged, not differentiated.

‖w − w_pre‖² sums over every trainable pretrained parameter (biases and LayerNorm included, the head
excluded). Memory: the pretrained reference is one copy of those parameters, and a ``MixLinear``
whose target still equals its weight lends its target buffer instead of a second copy.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register
from mixsweep.regularizers.mixlinear import MixLinear
from mixsweep.regularizers.surgery import head_module_names

TARGETS = ("pretrained", "zero")
FORMS = ("l2", "decoupled")
PLACEMENTS = ("pre_update", "post_update")  # which θ the decoupled decay scales: BertAdam's or mAdamW's
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


def squared_distances(model: nn.Module, reference: Mapping[str, Tensor]) -> dict[str, float]:
    """‖p − ref‖² per parameter name in ``reference``, each accumulated in float64."""
    params = dict(model.named_parameters())
    unknown = sorted(set(reference) - set(params))
    if unknown:
        raise ValueError(f"reference names parameters the model lacks, e.g. {unknown[:3]}")
    with torch.no_grad():
        return {name: float((params[name] - ref.to(params[name].device)).pow_(2).sum(dtype=torch.float64))
                for name, ref in reference.items()}


def squared_distance(model: nn.Module, reference: Mapping[str, Tensor]) -> float:
    """Σ ‖p − ref‖² over the parameter names in ``reference`` (see :func:`squared_distances`)."""
    return sum(squared_distances(model, reference).values())


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


_NORM_CHUNK = 1 << 16


def _norm_chunks(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Views of ``tensors`` in 64K-element chunks, for :func:`_sum_of_squares`."""
    return [c for t in tensors for c in t.reshape(-1).split(_NORM_CHUNK)]


def _sum_of_squares(chunks: Sequence[Tensor]) -> Tensor:
    """Σ‖c‖² over ``chunks`` (0-dim float64), from one fused norm per chunk: a float32 norm of one
    10M-element tensor is off by ~1e-3 relative, in 64K chunks it is ~1e-7 at the same cost."""
    if not chunks:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack(torch._foreach_norm(list(chunks))).double().pow_(2).sum()


@dataclass
class _Term:
    name: str
    param: nn.Parameter
    target: Tensor | None  # None means u = 0


TARGET_LABEL = {"pretrained": "w_pre", "zero": "0"}
# The form each target's recipe uses unless told otherwise: the paper's L2 for wdecay(w_pre, λ), and
# BertAdam's decoupled decay for wdecay(0, λ) (Devlin et al.). A label names the form only when it differs.
DEFAULT_FORM = {"pretrained": "l2", "zero": "decoupled"}


class WDecay:
    """wdecay(u, λ) on a model; see the module docstring for the forms, targets and head policies.

    Construct it right after loading w_pre and applying mixout: it snapshots u at construction. Pass
    ``reference`` (from :func:`pretrained_reference`) to share an existing copy of w_pre. A later
    ``model.to()`` is followed: shared MixLinear targets move with their layers, and any other u is
    moved once, at its first use. The settings are validated by the ``wdecay`` method (asserted here).
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
        keep_out: Collection[str] = (),
    ) -> None:
        assert lam >= 0 and target in TARGETS and form in FORMS and head in HEAD_DECAY, (lam, target, form, head)
        self.lam, self.target, self.form, self.head = float(lam), target, form, head
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
        self.keep_out = frozenset(keep_out)  # parameter names never decayed (LLRD's pooler and head)
        self.terms = self._build_terms(head_set)
        self._lists: tuple | None = None  # cached foreach operand lists, see _operands()
        self._diffs: list[Tensor] | None = None  # w − u buffers of the L2 form, see add_l2_grad_()
        self._flat: Tensor | None = None  # the one tensor behind _diffs, when there is one
        self._chunks: list[Tensor] | None = None  # views of w − u (and of w for u = 0) for the L2 value
        self._by_group: list[tuple[int, list[Tensor], list[Tensor], list[Tensor]]] | None = None

    def _build_terms(self, head_set: set[str]) -> list[_Term]:
        terms = []
        for module_name, param_name, module, param in _own_parameters(self.model):
            name = _qualified(module_name, param_name)
            if not is_decayed(param_name, module) or (module_name in head_set and self.head == "none"):
                continue
            if name in self.keep_out:
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
        if term.target is None:
            return None
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

    def _operands(self) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """(params with a target, their targets, params decayed toward 0), rebuilt when the model moved."""
        where = [(t.param.device, t.param.dtype) for t in self.terms]
        if self._lists is None or self._lists[0] != where:
            pulled = [(t.param, u) for t in self.terms if (u := self._target(t)) is not None]
            zero = [t.param for t in self.terms if t.target is None]
            self._lists = (where, [p for p, _ in pulled], [u for _, u in pulled], zero)
            self._by_group = self._diffs = self._flat = self._chunks = None
        return self._lists[1], self._lists[2], self._lists[3]

    def _diff_buffers(self, params: list[Tensor]) -> list[Tensor]:
        """Buffers like ``params`` for w − u, made on first use after :meth:`_operands` (re)built the
        lists; views of one flat tensor (``self._flat``) when every parameter has one dtype and device."""
        if self._diffs is None:  # _operands() drops them when a parameter moved
            first = params[0]
            if len({(p.dtype, p.device) for p in params}) == 1:
                sizes = [p.numel() for p in params]
                self._flat = torch.empty(sum(sizes), dtype=first.dtype, device=first.device)
                self._diffs = [v.view(p.shape) for v, p in zip(self._flat.split(sizes), params, strict=True)]
            else:
                self._flat = None
                self._diffs = [torch.empty_like(p) for p in params]
        return self._diffs

    @torch.no_grad()
    def add_l2_grad_(self) -> Tensor:
        """The L2 form's gradient λ(w − u), added to each decayed parameter's ``.grad`` in place with
        fused kernels (a ``None`` grad becomes the term's gradient); returns λ/2 · Σ ‖w − u‖² (0-dim).
        Call it after ``loss.backward()`` and before clipping: the result equals back-propagating the
        term. A no-op returning 0 for ``form="decoupled"``."""
        params, targets, zero = self._operands()
        if self.form != "l2" or self.lam == 0.0 or not self.terms:
            return torch.zeros((), device=self.terms[0].param.device if self.terms else None)
        if params:
            # w − u straight into buffers kept across steps (one pass, no copy): a fresh weight-sized
            # allocation every step costs more than the arithmetic on the CPU (page faults); the peak
            # memory is the same. ``out=`` has no foreach form, so it is one call per tensor.
            for d, p, u in zip(self._diff_buffers(params), params, targets, strict=True):
                torch.sub(p.detach(), u, out=d)
        diffs = list(self._diffs or []) + [p.detach() for p in zero]  # w − 0 is w itself; never written to
        if self._chunks is None:  # views, so they stay valid until _operands() rebuilds the lists
            self._chunks = _norm_chunks(([self._flat] if self._flat is not None else diffs[: len(params)])
                                        + diffs[len(params):])
        value = _sum_of_squares(self._chunks).mul_(0.5 * self.lam)
        decayed = params + zero
        with_grad = [(p.grad, d) for p, d in zip(decayed, diffs, strict=True) if p.grad is not None]
        if with_grad:
            torch._foreach_add_([g for g, _ in with_grad], [d for _, d in with_grad], alpha=self.lam)
        for p, d in zip(decayed, diffs, strict=True):
            if p.grad is None:
                p.grad = d.mul(self.lam)
        return value

    @torch.no_grad()
    def apply_decoupled(self, lr: float) -> None:
        """One decoupled-form decay at learning rate ``lr``, in place with fused kernels:
        θ ← θ − lr·λ·(θ − u) (θ·(1 − lr·λ) for u = 0). Call it just *before* ``optimizer.step()``, so that
        it acts on the pre-update θ as BertAdam does. A no-op for ``form="l2"``."""
        if self.form != "decoupled" or self.lam == 0.0:
            return
        assert lr >= 0, lr
        self._decay(*self._operands(), lr)

    @torch.no_grad()
    def apply_decoupled_groups(self, optimizer: torch.optim.Optimizer) -> None:
        """:meth:`apply_decoupled` with each parameter at the current ``lr`` of its optimizer group
        (groups with an ``lr_scale`` decay at their own rate, as their Adam step does)."""
        if self.form != "decoupled" or self.lam == 0.0:
            return
        params, targets, zero = self._operands()
        if self._by_group is None:
            group_of = {id(p): i for i, g in enumerate(optimizer.param_groups) for p in g["params"]}
            split: dict[int, tuple[list, list, list]] = {}
            for p, u in zip(params, targets, strict=True):
                entry = split.setdefault(group_of[id(p)], ([], [], []))
                entry[0].append(p)
                entry[1].append(u)
            for p in zero:
                split.setdefault(group_of[id(p)], ([], [], []))[2].append(p)
            self._by_group = [(i, *lists) for i, lists in sorted(split.items())]
        for i, p, u, z in self._by_group:
            self._decay(p, u, z, float(optimizer.param_groups[i]["lr"]))

    def _decay(self, params: list[Tensor], targets: list[Tensor], zero: list[Tensor], lr: float) -> None:
        step = lr * self.lam
        if params:
            torch._foreach_lerp_(params, targets, step)  # θ + step·(u − θ)
        if zero:
            torch._foreach_mul_(zero, 1.0 - step)

    def distance_sq(self) -> float:
        """‖w − w_pre‖² over the pretrained parameters (head excluded), for logging."""
        return squared_distance(self.model, self.current_reference())


@register
class WDecayMethod(Method):
    """``wdecay: {lam, target: pretrained|zero, form: l2|decoupled, head: none|zero|init}``.

    Label ``wdecay(w_pre,λ)`` / ``wdecay(0,λ)``; ``|head:wdecay(0,λ)`` when the head decays toward 0
    under a w_pre target; ``[l2]`` / ``[decoupled]`` when the form differs from the target's default
    (:data:`DEFAULT_FORM`), so the paper's labels stay as they are.
    """

    name = "wdecay"
    order = 30

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        self.known_keys("lam", "target", "form", "head", "placement")
        lam = self.cfg.get("lam", 0.0)
        ok = isinstance(lam, (int, float)) and not isinstance(lam, bool) and 0 <= lam < float("inf")
        if not ok:
            raise RegularizerError(f"{self.key('lam')}={lam!r} must be a finite number >= 0: pass e.g. "
                                   f"{self.key('lam')}=0.01 (0 turns weight decay off)")
        self.lam = float(lam)
        self.target = self.choice("target", TARGETS, default="pretrained")
        self.form = self.choice("form", FORMS, default=DEFAULT_FORM[self.target])
        self.head = self.choice("head", HEAD_DECAY, default="none")
        # Placement is the decoupled form's: the L2 form's gradient goes through the optimizer, which has
        # no before or after (a recipe that sets it, mosbach2021, leaves an L2 cell as it is).
        self.placement = self.choice("placement", PLACEMENTS, default="pre_update")
        if self.form != "decoupled":
            self.placement = "pre_update"
        self.wdecay: WDecay | None = None

    def active(self) -> bool:
        return self.lam > 0

    def settings(self) -> dict[str, Any]:
        settings = {"lam": self.lam, "target": self.target, "form": self.form, "head": self.head}
        if self.placement != "pre_update":  # only when set: runs stored before the key keep their ids
            settings["placement"] = self.placement
        return settings

    def label(self) -> str:
        label = f"wdecay({TARGET_LABEL[self.target]},{self.lam:g})"
        if self.target == "pretrained" and self.head == "zero":
            label += f"|head:wdecay(0,{self.lam:g})"
        if self.form != DEFAULT_FORM[self.target]:
            label += f"[{self.form}]"
        if self.placement != "pre_update":
            label += f"[{self.placement}]"
        return label

    def _ready(self, ctx: RunContext) -> WDecay:
        if self.wdecay is None:
            self.wdecay = WDecay(ctx.model, self.lam, target=self.target, form=self.form, head=self.head,
                                 head_names=ctx.head, reference=ctx.reference or None, keep_out=ctx.no_decay)
        return self.wdecay

    def param_groups(self, groups: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
        self._ready(ctx)  # after ctx.reference is taken: u = w_pre as finetuning sees it
        return groups

    def after_backward(self, step: int, ctx: RunContext) -> None:
        if self.form == "l2":
            ctx.penalties[self.name] = self._ready(ctx).add_l2_grad_()

    def _decay_now(self, lr: float, ctx: RunContext) -> None:
        if ctx.optimizer is not None:
            self._ready(ctx).apply_decoupled_groups(ctx.optimizer)
        else:
            self._ready(ctx).apply_decoupled(lr)

    def before_step(self, step: int, lr: float, ctx: RunContext) -> None:
        if self.form == "decoupled" and self.placement == "pre_update":
            self._decay_now(lr, ctx)

    def after_step(self, step: int, lr: float, ctx: RunContext) -> None:
        # after the update, before the scheduler steps: each group's lr is still this step's
        if self.form == "decoupled" and self.placement == "post_update":
            self._decay_now(lr, ctx)

    def record(self) -> dict[str, Any]:
        return {"form": self.form, "decayed": len(self.wdecay.terms) if self.wdecay else 0}
