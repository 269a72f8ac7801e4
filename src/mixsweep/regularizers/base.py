"""The regularizer-method interface: one module per method, registered by name.

A run's ``regularizer`` config block is a mapping from method names to their settings, plus an
optional ``name`` (the yaml's own name, display only)::

    regularizer:
      name: mixout_wdecay
      mixout: {p: 0.9, layers: paper, granularity: neuron, grad: exact}
      wdecay: {lam: 0.01, target: pretrained, form: l2}

Every key other than ``name`` selects the registered :class:`Method` of that name; a method that
is absent is off. Combinations are just several keys. The model starts with every dropout at 0;
a method that wants dropout (``dropout``) sets it. Adding a method is one module in this package
(auto-discovered) and one yaml in ``conf/regularizer/``: the runner, the label code and the
analysis never name a method.

The runner calls the hooks in this order, each method in ``order`` (ascending):

1. ``Method(cfg)`` validates the settings; a bad value raises :class:`RegularizerError` naming
   ``regularizer.<method>.<key>`` and the valid range. Planning builds every cell's methods, so a
   bad value is caught before anything is launched.
2. ``prepare(ctx)`` changes the model before training (surgery, re-initialization, noise). It runs
   after the new head is initialized and the model is on its device, before ``ctx.reference`` is
   taken, so ``ctx.reference`` is w_pre as finetuning sees it. A method that sets ``sets_trainable``
   (LoRA, BitFit) freezes every parameter outside its trainable set here
   (:mod:`~mixsweep.regularizers.trainable`): the groups, ``ctx.reference`` and every decay then hold only
   what still requires a gradient. At most one method of a run chooses the set.
3. ``param_groups(groups, ctx)`` reshapes the optimizer's parameter groups (per-layer learning
   rates); each group is a dict with ``params`` and optionally ``lr`` (absolute) or
   ``lr_scale`` (multiplies the optimizer's lr).
4. For every step: ``transform_loss(loss, step)`` (add a penalty or reweight the task loss),
   ``after_backward(step)`` (edit gradients, before clipping), ``before_step(step, lr)`` (after
   clipping: a gradient edit here is what the optimizer's step reads, i.e. an edit *inside* the step,
   as Child-Tuning's mask), the update, and ``after_step(step, lr)``. The update is
   ``optimizer.step()``, unless a method sets ``owns_update``: then its ``update(optimizer, step, ctx)``
   replaces it (an optimizer-level rule such as RecAdam's, which is an Adam variant in its reference
   code). It reads the optimizer's groups (lr after the schedule, betas, eps) and may keep its state in
   ``optimizer.state``. At most one method of a run may own the update. Likewise the clipping is
   ``clip_grad_norm_`` of the global norm at ``train.max_grad_norm``, unless a method sets
   ``owns_clipping``: then its ``clip(ctx, max_grad_norm)`` replaces it (CWGNC's per-tensor clipping,
   which turns the global clip off as its reference does). At most one method of a run may own it.
5. ``record()`` returns what the method did (JSON-serializable), stored in the run's record
   under ``extra["methods"][<name>]``.

Both runners (finetuning, digits) share this sequence through :mod:`mixsweep.regularizers.lifecycle`
(before the first step; every dropout starts at 0 there) and :mod:`mixsweep.run.step` (each step). ``settings()`` (defaults filled in) is what the run id hashes;
``family()`` tells the analysis whether a cell is a point of a one-knob p-sweep.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mixsweep.errors import UserError


class RegularizerError(UserError, ValueError):
    """A regularizer setting is out of range or unknown; the message names the key and the fix.
    A ``ValueError`` for library code, a one-line ``UserError`` (exit 2) for the CLI."""


@dataclass
class RunContext:
    """What a method may look at or change during one run."""

    model: nn.Module
    head: list[str]                      # module names of the new, randomly initialized head
    init_seed: int                       # draws that belong to initialization (re-init, NoisyTune)
    noise_seed: int                      # draws that belong to training noise (masks)
    total_steps: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # Frozen w_pre of every trainable non-head parameter, keyed like named_parameters(); set by the
    # runner after prepare(). Methods share it instead of keeping copies of their own.
    reference: dict[str, Tensor] = field(default_factory=dict)
    # The current step's inputs and outputs, set by the runner before transform_loss().
    batch: Mapping[str, Tensor] | None = None
    outputs: Any = None
    # The optimizer, set by the runner after param_groups(); a hook that acts per parameter group
    # (decoupled decay at each group's own lr) reads the groups' current "lr" from it.
    optimizer: Any = None
    # Draws masks when set (the digits run gives mixout its own generator); None = the global RNG.
    noise_generator: torch.Generator | None = None
    # Model-specific named layer sets that override the built-in presets of the same name
    # (the digits MLP's "paper" = the layers fed by dropout).
    layer_presets: dict[str, list[str]] = field(default_factory=dict)
    # Penalty values a method adds to the objective outside the autograd graph this step (e.g. wdecay's
    # fused L2 gradient), by method name; the runner logs them next to the task loss and clears them.
    penalties: dict[str, Tensor] = field(default_factory=dict)
    # Qualified names of parameters that no decay may touch, filled in prepare() (LLRD: the pooler and the
    # head, revisit-bert-finetuning's weight_decay 0.0 group); wdecay leaves them out of every form.
    no_decay: set[str] = field(default_factory=set)
    # The context the runner's own forward pass runs in (its bf16 autocast), set by the runner: a method
    # that runs another forward pass (R3F's noisy one) enters it too, so both passes share one precision.
    forward_context: Callable[[], AbstractContextManager] = nullcontext


class Method:
    """Base class of a regularization / stabilization method. Subclasses set ``name`` and
    override only the hooks they need; the defaults do nothing."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 50  # hook and label order: lower first
    owns_update: ClassVar[bool] = False  # True: update() replaces optimizer.step() (one method at most)
    sets_trainable: ClassVar[bool] = False  # True: prepare() chooses which parameters train (one method at most)
    owns_clipping: ClassVar[bool] = False  # True: clip() replaces the global norm clip (one method at most)

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = dict(cfg or {})

    # -- identity -------------------------------------------------------------------------
    def label(self) -> str | None:
        """Paper-style piece of the cell label, e.g. ``mixout(w_pre,0.9)``; None adds nothing."""
        return None

    def active(self) -> bool:
        """False when the settings make the method a no-op (e.g. p = 0)."""
        return True

    def settings(self) -> dict[str, Any]:
        """Every setting with its defaults filled in: what the run id hashes, so a setting left to
        its default and the same value written out are one run. Override when ``__init__`` fills
        defaults; the base returns the settings as given."""
        return dict(self.cfg)

    def inert_on(self, task: Any) -> str | None:
        """Why the method, with these settings, changes nothing on ``task`` (a :class:`~mixsweep.data.tasks.TaskSpec`),
        or None where it acts. A cell whose method is inert on a task would train the baseline's run under
        the method's name, so planning leaves it out there and the analysis leaves out any stored one."""
        return None

    # -- hooks ----------------------------------------------------------------------------
    def prepare(self, ctx: RunContext) -> None:
        pass

    def param_groups(self, groups: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
        return groups

    def transform_loss(self, loss: Tensor, step: int, ctx: RunContext) -> Tensor:
        return loss

    def after_backward(self, step: int, ctx: RunContext) -> None:
        pass

    def before_step(self, step: int, lr: float, ctx: RunContext) -> None:
        pass

    def clip(self, ctx: RunContext, max_grad_norm: float | None) -> None:
        """The gradient clipping in place of the global norm clip at ``max_grad_norm`` (``train.max_grad_norm``,
        None = off); called only when ``owns_clipping``, after ``after_backward`` and before ``before_step``."""
        raise NotImplementedError(f"{type(self).__name__} sets owns_clipping but has no clip()")

    def update(self, optimizer: Any, step: int, ctx: RunContext) -> None:
        """The parameter update in place of ``optimizer.step()``; called only when ``owns_update``."""
        raise NotImplementedError(f"{type(self).__name__} sets owns_update but has no update()")

    def after_step(self, step: int, lr: float, ctx: RunContext) -> None:
        pass

    def record(self) -> dict[str, Any]:
        return {}

    def family(self) -> tuple[str, float] | None:
        """``(family, p)`` when this method alone is a point of a one-knob p-sweep (Fig. 2/4, App. F:
        plain ``dropout(p)`` or ``mixout(w_pre,p)``); None otherwise. Analysis reads it instead of
        parsing labels."""
        return None

    # -- validation helpers ---------------------------------------------------------------
    def key(self, k: str) -> str:
        return f"regularizer.{self.name}.{k}"

    def number(self, k: str, *, default: Any = None, lo: float | None = None, hi: float | None = None,
               integer: bool = False, open_lo: bool = False) -> Any:
        """``cfg[k]`` checked to be a number in [lo, hi] (``open_lo``: (lo, hi])."""
        v = self.cfg.get(k, default)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
        if ok and integer:
            ok = float(v).is_integer()
        if ok and lo is not None:
            ok = v > lo if open_lo else v >= lo
        if ok and hi is not None:
            ok = v <= hi
        if not ok:
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            kind = "an integer" if integer else "a number"
            rng = f"{'(' if open_lo or lo is None else '['}{lo_s}, {hi_s}{']' if hi is not None else ')'}"
            raise RegularizerError(f"{self.key(k)}={v!r} must be {kind} in {rng}: pass e.g. {self.key(k)}=<value>")
        return int(v) if integer else float(v)

    def choice(self, k: str, choices: Sequence[str], *, default: Any = None) -> str:
        v = self.cfg.get(k, default)
        if v not in choices:
            raise RegularizerError(f"{self.key(k)}={v!r} is not one of {', '.join(map(str, choices))}: "
                                   f"pass e.g. {self.key(k)}={choices[0]}")
        return v

    def error(self, k: str, value: Any, expected: str, example: Any) -> RegularizerError:
        """The one-line error for a bad ``cfg[k]``, naming the key, what it must be and an example."""
        return RegularizerError(f"{self.key(k)}={value!r} must be {expected}: pass e.g. {self.key(k)}={example}")

    def known_keys(self, *keys: str) -> None:
        unknown = sorted(set(self.cfg) - set(keys))
        if unknown:
            raise RegularizerError(f"unknown setting {self.key(unknown[0])}: {self.name} takes "
                                   f"{', '.join(keys) or 'no settings'}")


_REGISTRY: dict[str, type[Method]] = {}
_DISCOVERED = False
META_KEYS = ("name",)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` selectable as ``regularizer.<cls.name>``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"two regularizer methods are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of this package once, so that their @register decorators run."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    pkg = importlib.import_module("mixsweep.regularizers")
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"mixsweep.regularizers.{info.name}")
    _DISCOVERED = True


def registry() -> dict[str, type[Method]]:
    _discover()
    return dict(_REGISTRY)


def build_methods(reg: Mapping[str, Any] | None) -> list[Method]:
    """The methods a ``regularizer`` block selects, validated and sorted by ``order``.
    Inactive methods (no-ops by their settings) are dropped."""
    methods = registry()
    out: list[Method] = []
    for key, settings in (reg or {}).items():
        if key in META_KEYS:
            continue
        if key not in methods:
            raise RegularizerError(f"unknown regularizer method {key!r}: choose from {', '.join(sorted(methods))}")
        if settings is not None and not isinstance(settings, Mapping):
            raise RegularizerError(f"regularizer.{key}={settings!r} must be a mapping of settings: "
                                   f"set one setting at a time, e.g. regularizer.{key}.p=0.1")
        m = methods[key](settings or {})
        if m.active():
            out.append(m)
    for flag, what in (("owns_update", "replace the optimizer's update"),
                       ("owns_clipping", "replace the gradient clipping"),
                       ("sets_trainable", "choose which parameters train")):
        owners = sorted(m.name for m in out if getattr(m, flag))
        if len(owners) > 1:
            raise RegularizerError(f"regularizer methods {' and '.join(owners)} each {what}: "
                                   f"keep one of them in the regularizer block")
    return sorted(out, key=lambda m: (m.order, m.name))


def inert_methods(reg: Mapping[str, Any] | None, task: Any) -> dict[str, str]:
    """``{method: why}`` for each active method of ``reg`` that is inert on ``task`` (:meth:`Method.inert_on`)."""
    return {m.name: why for m in build_methods(reg) if (why := m.inert_on(task))}


def label_of(methods: Sequence[Method]) -> str:
    """Paper-style label of a combination: the methods' pieces joined by ``+`` (``none`` if empty).
    A piece that starts with ``|`` or ``[`` is appended without a ``+`` (head parts, qualifiers);
    if it comes first, it follows ``none`` (e.g. ``none|head:dropout(0.7)``)."""
    label = ""
    for m in methods:
        piece = m.label()
        if not piece:
            continue
        if not label and piece[0] in "|[":
            label = "none" + piece
        elif piece[0] in "|[" or not label:
            label += piece
        else:
            label += "+" + piece
    return label or "none"
