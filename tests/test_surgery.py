"""apply_mixout / set_dropout / head_module_names on tiny BERT, RoBERTa, DistilBERT and ELECTRA models."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from mixsweep.regularizers import (
    MixLinear,
    RegularizerError,
    RunContext,
    apply_mixout,
    build_methods,
    head_module_names,
    lifecycle,
    set_dropout,
)

SIZES = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
LAYERS = (0, 1)


def bert() -> nn.Module:
    return BertForSequenceClassification(BertConfig(**SIZES))


def roberta() -> nn.Module:
    return RobertaForSequenceClassification(RobertaConfig(**SIZES))


def distilbert() -> nn.Module:
    return DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    )


def electra() -> nn.Module:
    return ElectraForSequenceClassification(ElectraConfig(embedding_size=32, **SIZES))


def _bert_style(prefix: str, pooler: bool) -> tuple[list[str], list[str]]:
    """(paper preset, FFN up-projections) names written out from the architecture, not from the code."""
    paper = [
        f"{prefix}.encoder.layer.{i}.{part}"
        for i in LAYERS
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "output.dense",
        )
    ]
    paper += [f"{prefix}.pooler.dense"] if pooler else []
    return paper, [f"{prefix}.encoder.layer.{i}.intermediate.dense" for i in LAYERS]


def _distilbert_names() -> tuple[list[str], list[str]]:
    paper = [
        f"distilbert.transformer.layer.{i}.{part}"
        for i in LAYERS
        for part in ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin2")
    ]
    return paper, [f"distilbert.transformer.layer.{i}.ffn.lin1" for i in LAYERS]


# RoBERTa's sequence classifier is built without a pooler (add_pooling_layer=False).
ARCHITECTURES = {
    "bert": (bert, _bert_style("bert", pooler=True), ["classifier"]),
    "roberta": (roberta, _bert_style("roberta", pooler=False), ["classifier.dense", "classifier.out_proj"]),
    "distilbert": (distilbert, _distilbert_names(), ["pre_classifier", "classifier"]),
}


def _dropout_ps(model: nn.Module) -> dict[str, float]:
    return {n: m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout)}


def _mixlinear_names(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if isinstance(m, MixLinear)}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_head_module_names(arch):
    build, _, head = ARCHITECTURES[arch]
    assert head_module_names(build()) == head


def test_head_module_names_electra():
    assert head_module_names(electra()) == ["classifier.dense", "classifier.out_proj"]


def test_model_without_a_separate_body_has_no_head():
    assert head_module_names(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))) == []


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_paper_preset_skips_the_ffn_up_projection(arch):
    build, (paper, _), _ = ARCHITECTURES[arch]
    model = build()
    summary = apply_mixout(model, 0.7)
    assert sorted(summary.replaced) == sorted(paper)
    assert _mixlinear_names(model) == set(paper)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_all_linear_preset_adds_the_ffn_up_projection_but_not_the_head(arch):
    build, (paper, up_projections), _ = ARCHITECTURES[arch]
    model = build()
    summary = apply_mixout(model, 0.7, layers="all_linear")
    assert sorted(summary.replaced) == sorted(paper + up_projections)
    assert _mixlinear_names(model) == set(paper + up_projections)


def test_regex_selects_matching_layers():
    model = bert()
    summary = apply_mixout(model, 0.5, layers=r"bert\.encoder\.layer\.0\.attention\..*")
    assert sorted(summary.replaced) == sorted(
        f"bert.encoder.layer.0.attention.{part}"
        for part in ("self.query", "self.key", "self.value", "output.dense")
    )


def test_wrapped_layers_target_the_pretrained_weights():
    model = bert()
    before = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    apply_mixout(model, 0.7)
    for name in _mixlinear_names(model):
        assert torch.equal(model.get_submodule(name).target, before[name])


def _start(model: nn.Module, reg: dict) -> None:
    """What a run does to the model before training (lifecycle.prepare), for the block ``reg``."""
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=1)
    lifecycle.prepare(build_methods(reg), ctx)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_dropout_is_zero_in_a_mixout_run(arch):
    build, _, _ = ARCHITECTURES[arch]
    model = build()
    assert any(p > 0 for p in _dropout_ps(model).values())
    _start(model, {"mixout": {"p": 0.7}})
    assert set(_dropout_ps(model).values()) == {0.0}
    assert _mixlinear_names(model)


def test_a_mixout_run_zeroes_the_attention_dropout_config():
    model = bert()
    _start(model, {"mixout": {"p": 0.7}})
    assert model.config.attention_probs_dropout_prob == 0.0
    assert model.config.hidden_dropout_prob == 0.0


def test_apply_mixout_itself_leaves_dropout_to_the_dropout_method():
    model = bert()
    set_dropout(model, 0.2)
    apply_mixout(model, 0.7)
    assert set(_dropout_ps(model).values()) == {0.2}


def test_head_policy_none_leaves_the_head_plain():
    model = bert()
    _start(model, {"mixout": {"p": 0.7, "head": {"policy": "none"}}})
    assert type(model.classifier) is nn.Linear
    assert model.dropout.p == 0.0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_head_policy_mixout_init_targets_the_head_initialisation(arch):
    build, _, head = ARCHITECTURES[arch]
    model = build()
    init = {name: model.get_submodule(name).weight.detach().clone() for name in head}
    summary = apply_mixout(model, 0.7, output_layer="mixout_init", output_p=0.3)
    assert summary.head == head
    for name in head:
        layer = model.get_submodule(name)
        assert isinstance(layer, MixLinear) and layer.p == 0.3
        assert torch.equal(layer.target, init[name])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_head_policy_dropout_drops_only_the_head_input(arch):
    build, _, _ = ARCHITECTURES[arch]
    model = build()
    summary = apply_mixout(model, 0.7, output_layer="dropout")
    assert summary.head and not any(name.startswith(("bert.", "roberta.", "distilbert.")) for name in summary.head)
    model = build()
    _start(model, {"mixout": {"p": 0.7, "head": {"policy": "dropout", "p": 0.7}}})
    ps = _dropout_ps(model)
    assert all(ps[name] == 0.7 for name in summary.head)
    assert all(p == 0.0 for name, p in ps.items() if name not in summary.head)


def test_p_zero_keeps_pretrained_layers_but_can_mix_the_head():
    model = bert()
    summary = apply_mixout(model, 0.0, output_layer="mixout_init", output_p=0.7)
    assert summary.replaced == [] and _mixlinear_names(model) == {"classifier"}


def test_p_zero_with_head_dropout_leaves_the_other_dropouts_alone():
    model = bert()
    set_dropout(model, 0.2)
    summary = apply_mixout(model, 0.0, output_layer="dropout", output_p=0.7)
    ps = _dropout_ps(model)
    assert summary.head == ["dropout"]
    assert ps.pop("dropout") == 0.7 and set(ps.values()) == {0.2}


def test_set_dropout_sets_every_dropout_and_the_config():
    model = distilbert()
    changed = set_dropout(model, 0.25)
    assert changed == len(_dropout_ps(model)) and set(_dropout_ps(model).values()) == {0.25}
    assert model.config.attention_dropout == 0.25 and model.config.seq_classif_dropout == 0.25
    assert set_dropout(model, 0.25) == 0


def test_set_dropout_zero_makes_training_forward_deterministic():
    model = bert().train()
    ids = torch.randint(0, 40, (2, 9))
    assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    set_dropout(model, 0.0)
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_apply_twice_raises():
    model = bert()
    apply_mixout(model, 0.7)
    with pytest.raises(ValueError, match="already"):
        apply_mixout(model, 0.7)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"p": 1.5}, r"regularizer\.mixout\.p=1\.5 must be a number in \[0, 1\]"),
        ({"p": 0.5, "head": {"policy": "mixout_init", "p": -1}}, r"regularizer\.mixout\.head\.p=-1 must be"),
        ({"p": 0.5, "layers": "("}, r"regularizer\.mixout\.layers='\(' must be a preset .* or a valid regex"),
        ({"p": 0.5, "head": {"policy": "mixout"}}, r"regularizer\.mixout\.head\.policy='mixout' must be one of"),
        ({"p": 0.5, "granularity": "row"}, r"regularizer\.mixout\.granularity='row' is not one of neuron, element"),
        ({"p": 0.5, "grad": "approx"}, r"regularizer\.mixout\.grad='approx' is not one of exact, official"),
        ({"p": 0.5, "prob": 0.5}, r"unknown setting regularizer\.mixout\.prob"),
    ],
)
def test_invalid_settings_are_rejected_when_the_method_is_built(settings, message):
    with pytest.raises(RegularizerError, match=message):
        build_methods({"mixout": settings})


def test_a_regex_that_matches_no_layer_is_rejected_when_the_model_is_known():
    with pytest.raises(RegularizerError, match="not a preset"):
        _start(bert(), {"mixout": {"p": 0.5, "layers": "papr"}})
