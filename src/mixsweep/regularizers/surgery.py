"""Model surgery for Hugging Face models: which layers get mixout, dropout settings, the new head.

Layer presets for :func:`apply_mixout` (the new classification head is never in them):
- ``"paper"``: every pretrained ``nn.Linear`` except the feed-forward up-projection (BERT/RoBERTa/ELECTRA
  ``intermediate.dense``, DistilBERT ``ffn.lin1``). The author confirmed the paper skipped it because no
  dropout follows it (official repo, PR #13).
- ``"all_linear"``: every pretrained ``nn.Linear`` (Zhang et al.).
- anything else is a regular expression that must ``re.fullmatch`` the qualified module names.

The head is whatever lives outside the model's ``base_model`` (``bert``, ``roberta``, ...): BERT
``classifier``; RoBERTa/ELECTRA ``classifier.dense`` + ``classifier.out_proj``; DistilBERT
``pre_classifier`` + ``classifier``. A model without a separate base model has no new head.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mixsweep.regularizers.mixlinear import MixLinear
from mixsweep.regularizers.mixout import (
    GRADS,
    GRANULARITIES,
    RegularizerError,
    check_choice,
    check_probability,
)

LAYER_PRESETS = ("paper", "all_linear")
HEAD_POLICIES = ("none", "mixout_init", "dropout")
# Up-projections followed by an activation, not by dropout: skipped by the "paper" preset.
FFN_UP_PROJECTION = re.compile(r"(?:^|\.)(?:intermediate\.dense|ffn\.lin1)$")
# Config fields that hold a dropout probability in BERT/RoBERTa/ELECTRA/DistilBERT configs.
DROPOUT_CONFIG_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
    "attention_dropout",
    "seq_classif_dropout",
    "qa_dropout",
)
# Float attributes some attention modules read instead of an nn.Dropout module.
DROPOUT_MODULE_ATTRS = ("dropout", "dropout_prob", "dropout_p", "attention_dropout")


@dataclass
class MixoutSummary:
    """What :func:`apply_mixout` changed.

    ``replaced``: pretrained layers now MixLinear; ``head``: head modules the ``output_layer`` policy
    changed (MixLinear layers, or dropout modules); ``dropout_zeroed``: active dropouts set to 0.
    """

    replaced: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    dropout_zeroed: int = 0


def _body_prefixes(model: nn.Module) -> tuple[str, ...] | None:
    """Name prefixes of the pretrained body, or None if the model has no separate base model."""
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    if not isinstance(body, nn.Module) or body is model:
        return None
    return (prefix + ".",)


def _in_head(name: str, body_prefixes: tuple[str, ...] | None) -> bool:
    return body_prefixes is not None and not name.startswith(body_prefixes)


def head_module_names(model: nn.Module) -> list[str]:
    """Qualified names of the new (randomly initialised) head's ``nn.Linear`` modules."""
    body = _body_prefixes(model)
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and _in_head(n, body)]


def head_dropout_names(model: nn.Module) -> list[str]:
    """Qualified names of the ``nn.Dropout`` modules in the head (on the head's input)."""
    body = _body_prefixes(model)
    return [n for n, m in model.named_modules() if isinstance(m, nn.Dropout) and _in_head(n, body)]


def set_dropout(model: nn.Module, p: float) -> int:
    """Set every dropout probability of ``model`` to ``p``; return how many modules changed.

    Covers all ``nn.Dropout`` modules (hidden, attention-probability and classifier dropout: the
    transformers attention reads ``self.dropout.p``), float dropout attributes of other modules, and the
    config fields, so a re-built or saved model agrees.
    """
    p = check_probability(p, "dropout p")
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            changed += module.p != p
            module.p = p
            continue
        attrs = [a for a in DROPOUT_MODULE_ATTRS if type(getattr(module, a, None)) is float]
        changed += any(getattr(module, a) != p for a in attrs)
        for attr in attrs:
            setattr(module, attr, p)
    config = getattr(model, "config", None)
    for name in DROPOUT_CONFIG_FIELDS:
        if config is not None and hasattr(config, name):
            setattr(config, name, p)
    return changed


def select_layers(model: nn.Module, layers: str, head_names: Sequence[str]) -> list[str]:
    """Names of the pretrained ``nn.Linear`` modules that the ``layers`` preset or regex selects."""
    head = set(head_names)
    pretrained = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in head]
    if layers == "all_linear":
        return pretrained
    if layers == "paper":
        return [n for n in pretrained if not FFN_UP_PROJECTION.search(n)]
    try:
        pattern = re.compile(layers)
    except re.error as err:
        raise RegularizerError(
            f"mixout layers {layers!r} is neither a preset ({', '.join(LAYER_PRESETS)}) "
            f"nor a valid regex ({err})"
        ) from None
    chosen = [n for n in pretrained if pattern.fullmatch(n)]
    if not chosen:
        raise RegularizerError(
            f"mixout layers {layers!r} is not a preset ({', '.join(LAYER_PRESETS)}) and as a regex "
            f"matches no pretrained nn.Linear (e.g. {pretrained[:1]}): use a preset or a regex that "
            "fullmatches module names"
        )
    return chosen


def _wrap(model: nn.Module, names: Sequence[str], p: float, **options) -> None:
    for name in names:
        model.set_submodule(name, MixLinear.from_linear(model.get_submodule(name), p, **options))


def apply_mixout(
    model: nn.Module,
    p: float,
    layers: str = "paper",
    output_layer: str = "none",
    output_p: float | None = None,
    granularity: str = "neuron",
    grad: str = "exact",
    head_names: Sequence[str] | None = None,
    *,
    generator: torch.Generator | None = None,
) -> MixoutSummary:
    """Replace dropout by mixout(w_pre, p) on the ``layers`` of ``model`` (in place).

    Call it right after loading w_pre (and creating the head), before training: each wrapped layer's
    target is a copy of its weight at this moment. If any layer gets mixout, every dropout
    probability becomes 0 (mixout replaces dropout); ``p == 0`` leaves the pretrained layers, and then
    the dropout, as they are. The new head follows ``output_layer``: ``"none"`` (unregularized, the
    paper's main runs), ``"mixout_init"`` (mixout toward its own initialisation w0 with ``output_p``,
    default ``p``; Table 3's best row), or ``"dropout"`` (dropout(``output_p``) on the head's input).
    ``head_names`` overrides :func:`head_module_names`. ``generator`` draws all masks, for a separately
    seeded noise stream (it must live on the model's device).
    """
    p = check_probability(p)
    check_choice(output_layer, HEAD_POLICIES, "output_layer policy")
    head_p = p if output_p is None else check_probability(output_p, "output_p")
    options = dict(
        granularity=check_choice(granularity, GRANULARITIES, "mixout granularity"),
        grad=check_choice(grad, GRADS, "mixout grad mode"),
        generator=generator,
    )
    if not isinstance(layers, str):
        raise RegularizerError(
            f"mixout layers must be a preset ({', '.join(LAYER_PRESETS)}) or a regex string"
        )
    if any(isinstance(m, MixLinear) for m in model.modules()):
        raise RegularizerError("the model already contains MixLinear layers: apply mixout once per model")
    head = list(head_module_names(model) if head_names is None else head_names)
    selected = select_layers(model, layers, head)  # validated even when p == 0

    summary = MixoutSummary(replaced=selected if p > 0 else [])
    _wrap(model, summary.replaced, p, **options)
    if output_layer == "mixout_init":
        if not head:
            raise RegularizerError(
                "output_layer='mixout_init' needs a new head, but none was found: pass head_names"
            )
        _wrap(model, head, head_p, **options)
        summary.head = head
    if summary.replaced or summary.head:
        summary.dropout_zeroed = _zero_dropout(model)
    if output_layer == "dropout":
        summary.head = _set_head_dropout(model, head_p)
    return summary


def _zero_dropout(model: nn.Module) -> int:
    """Set every dropout to 0; return how many ``nn.Dropout`` modules were active."""
    active = sum(1 for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0)
    set_dropout(model, 0.0)
    return active


def _set_head_dropout(model: nn.Module, p: float) -> list[str]:
    names = head_dropout_names(model)
    if not names:
        raise RegularizerError(
            "output_layer='dropout' needs an nn.Dropout in the head, and this model has none"
        )
    for name in names:
        model.get_submodule(name).p = p
    return names
