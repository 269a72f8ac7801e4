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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mixsweep.regularizers.base import RegularizerError
from mixsweep.regularizers.mixlinear import MixLinear
from mixsweep.regularizers.mixout import GRADS, GRANULARITIES

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
    changed (MixLinear layers, or dropout modules).
    """

    replaced: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)


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
    assert 0.0 <= p <= 1.0, f"dropout p must be in [0, 1], got {p!r}"
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


def select_layers(model: nn.Module, layers: str, head_names: Sequence[str],
                  presets: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Names of the pretrained ``nn.Linear`` modules that the ``layers`` preset or regex selects.
    ``presets`` (model-specific layer sets) take precedence over the built-in presets."""
    if presets and layers in presets:
        return list(presets[layers])
    head = set(head_names)
    pretrained = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in head]
    if layers == "all_linear":
        return pretrained
    if layers == "paper":
        return [n for n in pretrained if not FFN_UP_PROJECTION.search(n)]
    pattern = re.compile(layers)  # the mixout method has checked that it compiles
    chosen = [n for n in pretrained if pattern.fullmatch(n)]
    if not chosen:
        raise RegularizerError(
            f"regularizer.mixout.layers={layers!r} is not a preset ({', '.join(LAYER_PRESETS)}) and as a "
            f"regex matches no pretrained nn.Linear of this model (e.g. {pretrained[:1]}): use a preset or a "
            "regex that fullmatches module names"
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
    presets: Mapping[str, Sequence[str]] | None = None,
) -> MixoutSummary:
    """Put mixout(w_pre, p) on the ``layers`` of ``model`` (in place).

    Call it right after loading w_pre (and creating the head), before training: each wrapped layer's
    target is a copy of its weight at this moment. Dropout is left as it is: a run starts with every
    dropout at 0 and only the ``dropout`` method sets it, so mixout(w_pre, p) *replaces* dropout(p).
    ``p == 0`` leaves the pretrained layers as they are. The new head follows ``output_layer``:
    ``"none"`` (unregularized, the paper's main runs), ``"mixout_init"`` (mixout toward its own
    initialisation w0 with ``output_p``, default ``p``; Table 3's best row), or ``"dropout"``
    (dropout(``output_p``) on the head's input). ``head_names`` overrides :func:`head_module_names`;
    ``presets`` adds model-specific layer sets. ``generator`` draws all masks, for a separately seeded
    noise stream (it must live on the model's device).

    The settings are validated once, by the ``mixout`` method that reads them from a run's config;
    here they are only asserted. Which layers a regex selects depends on the model, so that is
    checked here (:func:`select_layers`).
    """
    head_p = p if output_p is None else output_p
    assert 0.0 <= p <= 1.0 and 0.0 <= head_p <= 1.0, (p, output_p)
    assert output_layer in HEAD_POLICIES and granularity in GRANULARITIES and grad in GRADS, (
        output_layer, granularity, grad)
    assert isinstance(layers, str), layers
    options = dict(granularity=granularity, grad=grad, generator=generator)
    if any(isinstance(m, MixLinear) for m in model.modules()):
        raise ValueError("the model already contains MixLinear layers: apply mixout once per model")
    head = list(head_module_names(model) if head_names is None else head_names)
    selected = select_layers(model, layers, head, presets)  # validated even when p == 0

    summary = MixoutSummary(replaced=selected if p > 0 else [])
    _wrap(model, summary.replaced, p, **options)
    if output_layer == "mixout_init":
        if not head:
            raise RegularizerError(
                "regularizer.mixout.head.policy=mixout_init needs a new head, but this model has none: "
                "use head.policy=none"
            )
        _wrap(model, head, head_p, **options)
        summary.head = head
    if output_layer == "dropout":
        summary.head = set_head_dropout(model, head_p)
    return summary


def set_head_dropout(model: nn.Module, p: float) -> list[str]:
    """Set the dropout on the new head's input to ``p``; return the modules changed."""
    names = head_dropout_names(model)
    if not names:
        raise RegularizerError(
            "a head dropout was asked for (regularizer.mixout.head.policy=dropout), but this model's head "
            "has no nn.Dropout: use head.policy=none"
        )
    for name in names:
        model.get_submodule(name).p = p
    return names
