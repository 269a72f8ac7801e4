"""wdecay(u, λ): L2 and decoupled forms, exclusions, head policies, and ‖w − w_pre‖²."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import tiny_bert
from mixsweep.regularizers import (
    RegularizerError,
    WDecay,
    apply_mixout,
    build_methods,
    pretrained_reference,
    squared_distance,
)

LAM = 0.1
HEAD = ("classifier.weight", "classifier.bias")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _perturb(model: nn.Module) -> None:
    """Move every parameter away from where it was, as finetuning would."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def _excluded(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name


def _pretrained_weights(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if not _excluded(n) and n not in HEAD]


def _grads_of_penalty(wdecay: WDecay, model: nn.Module) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    wdecay.penalty().backward()
    return {n: p.grad for n, p in model.named_parameters()}


def test_l2_gradient_is_lambda_times_distance_to_w_pre():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM)
    _perturb(model)
    grads = _grads_of_penalty(wdecay, model)
    params = dict(model.named_parameters())
    for name in _pretrained_weights(model):
        assert torch.allclose(grads[name], LAM * (params[name] - w_pre[name]), atol=1e-7)


def test_l2_penalty_value():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM)
    _perturb(model)
    params = _snapshot(model)
    expected = LAM / 2 * sum(float((params[n] - w_pre[n]).pow(2).sum()) for n in _pretrained_weights(model))
    assert wdecay.penalty().item() == pytest.approx(expected, rel=1e-5)


def test_l2_leaves_biases_layernorm_and_head_without_gradient():
    model = tiny_bert()
    wdecay = WDecay(model, LAM)
    _perturb(model)
    grads = _grads_of_penalty(wdecay, model)
    untouched = [n for n in grads if _excluded(n) or n in HEAD]
    assert untouched and all(grads[n] is None for n in untouched)


def test_zero_target_gradient_is_lambda_times_weight():
    model = tiny_bert()
    wdecay = WDecay(model, LAM, target="zero")
    grads = _grads_of_penalty(wdecay, model)
    params = dict(model.named_parameters())
    for name in _pretrained_weights(model):
        assert torch.allclose(grads[name], LAM * params[name])


def test_decoupled_step_moves_toward_w_pre():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM, form="decoupled")
    _perturb(model)
    before = _snapshot(model)
    lr = 0.5
    wdecay.apply_decoupled(lr)
    after = _snapshot(model)
    for name in _pretrained_weights(model):
        expected = before[name] - lr * LAM * (before[name] - w_pre[name])
        assert torch.allclose(after[name], expected, atol=1e-7)
    for name in after:
        if _excluded(name) or name in HEAD:
            assert torch.equal(after[name], before[name])


def test_decoupled_form_has_zero_penalty_and_l2_form_no_decoupled_step():
    model = tiny_bert()
    assert WDecay(model, LAM, form="decoupled").penalty().item() == 0.0
    l2 = WDecay(model, LAM)
    _perturb(model)
    before = _snapshot(model)
    l2.apply_decoupled(0.5)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_head_zero_decays_the_head_weight_toward_zero():
    model = tiny_bert()
    wdecay = WDecay(model, LAM, head="zero")
    grads = _grads_of_penalty(wdecay, model)
    assert torch.allclose(grads["classifier.weight"], LAM * model.classifier.weight)
    assert grads["classifier.bias"] is None


def test_head_init_pulls_toward_the_head_initialisation():
    model = tiny_bert()
    w0 = model.classifier.weight.detach().clone()
    wdecay = WDecay(model, LAM, head="init", form="decoupled")
    _perturb(model)
    before = model.classifier.weight.detach().clone()
    wdecay.apply_decoupled(1.0)
    assert torch.allclose(model.classifier.weight, before - LAM * (before - w0))


def test_head_none_is_the_default_and_never_decays_the_head():
    model = tiny_bert()
    wdecay = WDecay(model, LAM, target="zero")
    assert not any(name.startswith("classifier") for name in wdecay.decayed_names)


def test_distance_sq_is_over_pretrained_parameters_only():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM, target="zero")
    _perturb(model)
    params = _snapshot(model)
    body = [n for n in params if n not in HEAD]
    expected = sum(float((params[n] - w_pre[n]).double().pow(2).sum()) for n in body)
    assert wdecay.distance_sq() == pytest.approx(expected, rel=1e-6)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert wdecay.distance_sq() == pytest.approx(expected, rel=1e-6)


def test_squared_distance_is_zero_at_w_pre():
    model = tiny_bert()
    reference = pretrained_reference(model)
    assert squared_distance(model, reference) == 0.0
    _perturb(model)
    assert squared_distance(model, reference) > 0.0


def test_reference_shares_mixlinear_targets_instead_of_copying():
    model = tiny_bert()
    summary = apply_mixout(model, 0.7)
    reference = pretrained_reference(model)
    for name in summary.replaced:
        assert reference[f"{name}.weight"] is model.get_submodule(name).target


def test_reference_copies_a_mixlinear_target_that_is_not_w_pre():
    model = tiny_bert()
    apply_mixout(model, 0.7, layers=r"bert\.pooler\.dense")
    model.bert.pooler.dense.target = torch.zeros_like(model.bert.pooler.dense.target)
    reference = pretrained_reference(model)
    assert torch.equal(reference["bert.pooler.dense.weight"], model.bert.pooler.dense.weight)


def test_wdecay_follows_a_later_dtype_change():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM, form="decoupled")
    model.to(torch.float64)
    _perturb(model)
    before = _snapshot(model)
    wdecay.apply_decoupled(0.1)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    expected = before[name] - 0.1 * LAM * (before[name] - w_pre[name].double())
    assert torch.allclose(dict(model.named_parameters())[name], expected)


def test_shared_mixlinear_targets_follow_a_later_move_without_a_copy():
    model = tiny_bert()
    summary = apply_mixout(model, 0.7)
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM)
    model.to(torch.float64)
    _perturb(model)
    params = _snapshot(model)
    wdecay.penalty()
    assert (
        wdecay.current_reference()[f"{summary.replaced[0]}.weight"]
        is model.get_submodule(summary.replaced[0]).target
    )
    expected = sum(float((params[n] - w_pre[n].double()).pow(2).sum()) for n in params if n not in HEAD)
    assert wdecay.distance_sq() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"lam": -0.01}, r"regularizer\.wdecay\.lam=-0\.01 must be a finite number >= 0"),
        ({"lam": float("inf")}, r"regularizer\.wdecay\.lam=inf must be a finite number >= 0"),
        ({"lam": 0.01, "target": "pre"}, r"regularizer\.wdecay\.target='pre' is not one of pretrained, zero"),
        ({"lam": 0.01, "form": "adamw"}, r"regularizer\.wdecay\.form='adamw' is not one of l2, decoupled"),
        ({"lam": 0.01, "head": "w0"}, r"regularizer\.wdecay\.head='w0' is not one of none, zero, init"),
    ],
)
def test_invalid_settings_are_rejected_when_the_method_is_built(settings, message):
    with pytest.raises(RegularizerError, match=message):
        build_methods({"wdecay": settings})


def test_each_target_has_its_recipes_default_form():
    """wdecay(0, λ) is Devlin's BertAdam decay (decoupled); wdecay(w_pre, λ) the paper's L2 term."""
    (zero,) = build_methods({"wdecay": {"lam": 0.01, "target": "zero"}})
    (pre,) = build_methods({"wdecay": {"lam": 0.01, "target": "pretrained"}})
    assert (zero.form, pre.form) == ("decoupled", "l2")
    assert build_methods({"wdecay": {"lam": 0.0}}) == []


def test_fused_l2_gradient_adds_lambda_times_distance_and_returns_the_penalty():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM)
    _perturb(model)
    params = dict(model.named_parameters())
    names = _pretrained_weights(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    params[names[0]].grad = None  # a parameter the batch did not reach
    value = wdecay.add_l2_grad_()
    expected = LAM / 2 * sum(float((params[n].detach() - w_pre[n]).double().pow(2).sum()) for n in names)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        assert torch.allclose(params[names[0]].grad, LAM * (params[names[0]] - w_pre[names[0]]), atol=1e-7)
        for n in names[1:]:
            assert torch.allclose(params[n].grad, 1 + LAM * (params[n] - w_pre[n]), atol=1e-7)
    for n, p in params.items():
        if _excluded(n) or n in HEAD:
            assert torch.equal(p.grad, torch.ones_like(p))


def test_fused_l2_gradient_toward_zero_for_a_zero_target():
    model = tiny_bert()
    wdecay = WDecay(model, LAM, target="zero")
    params = dict(model.named_parameters())
    wdecay.add_l2_grad_()
    for n in _pretrained_weights(model):
        assert torch.allclose(params[n].grad, LAM * params[n].detach())


def test_decoupled_decay_uses_each_optimizer_groups_lr():
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM, form="decoupled")
    _perturb(model)
    before = _snapshot(model)
    names = _pretrained_weights(model)
    params = dict(model.named_parameters())
    first = {names[0]}
    optimizer = torch.optim.SGD([{"params": [params[n] for n in params if n in first], "lr": 0.5},
                                 {"params": [params[n] for n in params if n not in first], "lr": 0.1}], lr=0.1)
    wdecay.apply_decoupled_groups(optimizer)
    for n in names:
        lr = 0.5 if n in first else 0.1
        assert torch.allclose(params[n].detach(), before[n] - lr * LAM * (before[n] - w_pre[n]), atol=1e-7)


def test_zero_target_with_mixout_decays_toward_zero_not_toward_the_mixout_target():
    model = tiny_bert()
    summary = apply_mixout(model, 0.7)
    wdecay = WDecay(model, LAM, target="zero", form="decoupled", reference=pretrained_reference(model))
    name = f"{summary.replaced[0]}.weight"
    before = dict(model.named_parameters())[name].detach().clone()
    wdecay.apply_decoupled(1.0)
    assert torch.allclose(dict(model.named_parameters())[name], before * (1 - LAM))


def _l2_grads_after_fresh_step(wdecay: WDecay, model: nn.Module) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    value = float(wdecay.add_l2_grad_())
    return value, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fused_l2_gradient_is_right_again_after_the_weights_move_between_steps():
    """The w − u buffers are kept across steps; the second step must see the new weights, not the old."""
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM)
    names = _pretrained_weights(model)
    for _ in range(2):
        _perturb(model)
        now = _snapshot(model)
        value, grads = _l2_grads_after_fresh_step(wdecay, model)
        expected = LAM / 2 * sum(float((now[n] - w_pre[n]).double().pow(2).sum()) for n in names)
        assert value == pytest.approx(expected, rel=1e-5)
        for n in names:
            assert torch.allclose(grads[n], LAM * (now[n] - w_pre[n]), atol=1e-7), n


@pytest.mark.parametrize("moved", ["whole model to float64", "one layer to float64"])
def test_fused_l2_gradient_follows_a_dtype_change_after_its_first_step(moved):
    model = tiny_bert()
    w_pre = _snapshot(model)
    wdecay = WDecay(model, LAM)
    _l2_grads_after_fresh_step(wdecay, model)  # buffers made for float32
    if moved == "whole model to float64":
        model.to(torch.float64)
    else:  # parameters of two dtypes: no single flat buffer can hold w − u
        model.bert.encoder.layer[0].attention.self.query.to(torch.float64)
    _perturb(model)
    now = _snapshot(model)
    value, grads = _l2_grads_after_fresh_step(wdecay, model)
    names = _pretrained_weights(model)
    expected = LAM / 2 * sum(float((now[n].double() - w_pre[n].double()).pow(2).sum()) for n in names)
    assert value == pytest.approx(expected, rel=1e-5)
    for n in names:
        assert grads[n].dtype == now[n].dtype
        assert torch.allclose(grads[n], LAM * (now[n] - w_pre[n].to(now[n].dtype)), atol=1e-7), n
