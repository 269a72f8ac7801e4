"""MixLinear: a drop-in nn.Linear with mixout on its weight and a non-persistent target buffer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import tiny_bert
from mixsweep.regularizers import MixLinear, apply_mixout, mixout

IN, OUT = 8, 5


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN, OUT)


def test_from_linear_shares_the_parameters():
    linear = _linear()
    layer = MixLinear.from_linear(linear, 0.5)
    assert layer.weight is linear.weight and layer.bias is linear.bias
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]


def test_default_target_is_a_frozen_copy_of_the_weight():
    linear = _linear()
    layer = MixLinear.from_linear(linear, 0.5)
    assert torch.equal(layer.target, linear.weight)
    assert layer.target.data_ptr() != linear.weight.data_ptr()
    assert not layer.target.requires_grad


def test_target_is_a_buffer_outside_parameters_and_state_dict():
    layer = MixLinear.from_linear(_linear(), 0.5)
    assert "target" in dict(layer.named_buffers())
    assert all(p is not layer.target for p in layer.parameters())
    assert set(layer.state_dict()) == {"weight", "bias"}


def test_target_follows_to():
    layer = MixLinear.from_linear(_linear(), 0.5).to(torch.float64)
    assert layer.target.dtype == torch.float64 and layer.weight.dtype == torch.float64


def test_given_target_is_used():
    target = torch.zeros(OUT, IN)
    layer = MixLinear.from_linear(_linear(), 0.5, target=target)
    assert torch.equal(layer.target, target)


def test_eval_mode_is_the_plain_linear():
    linear = _linear()
    x = torch.randn(3, IN)
    layer = MixLinear.from_linear(linear, 0.9).eval()
    assert torch.equal(layer(x), linear(x))


def test_bias_is_never_mixed():
    linear = _linear()
    layer = MixLinear.from_linear(linear, 1.0, target=torch.zeros(OUT, IN)).train()
    assert torch.equal(layer(torch.randn(4, IN)), linear.bias.detach().expand(4, OUT))


@pytest.mark.parametrize("granularity", ["neuron", "element"])
@pytest.mark.parametrize("grad", ["exact", "official"])
def test_fused_layer_matches_the_functional_operator(granularity, grad):
    linear = _linear().double()
    target = torch.randn(OUT, IN, dtype=torch.float64)
    x = torch.randn(2, 3, IN, dtype=torch.float64)
    layer = MixLinear.from_linear(linear, 0.4, target=target, granularity=granularity, grad=grad)
    layer.generator = torch.Generator().manual_seed(9)

    x_fused = x.clone().requires_grad_(True)
    layer(x_fused).pow(2).sum().backward()
    fused = (x_fused.grad, linear.weight.grad.clone(), linear.bias.grad.clone())

    linear.zero_grad()
    x_ref = x.clone().requires_grad_(True)
    mixed = mixout(
        linear.weight,
        target,
        0.4,
        granularity=granularity,
        grad=grad,
        generator=torch.Generator().manual_seed(9),
    )
    F.linear(x_ref, mixed, linear.bias).pow(2).sum().backward()
    reference = (x_ref.grad, linear.weight.grad, linear.bias.grad)

    for got, want in zip(fused, reference, strict=True):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_fused_layer_saves_no_mixed_weight_for_backward():
    layer = MixLinear.from_linear(_linear(), 0.5, target=torch.randn(OUT, IN))
    resident = {layer.weight.data_ptr(), layer.target.data_ptr()}
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(torch.randn(3, IN))
    weight_sized = [t for t in saved if t.shape == (OUT, IN) and t.data_ptr() not in resident]
    assert saved and not weight_sized


def test_extra_repr_shows_p_and_granularity():
    text = repr(MixLinear.from_linear(_linear(), 0.7, granularity="element"))
    assert "p=0.7" in text and "granularity=element" in text


def test_wrapping_twice_raises():
    layer = MixLinear.from_linear(_linear(), 0.5)
    with pytest.raises(ValueError, match="already"):
        MixLinear.from_linear(layer, 0.5)


def test_invalid_p_is_an_internal_assertion():
    # A run's p is validated once, by the mixout method (test_surgery); the layer only asserts.
    with pytest.raises(AssertionError, match="p must be"):
        MixLinear.from_linear(_linear(), 1.2)


def test_a_supplied_target_is_a_copy_never_the_trained_weight():
    """Issue 12 item 5: target=linear.weight must not alias (the official code's pitfall)."""
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    layer = MixLinear.from_linear(linear, 0.5, target=linear.weight)
    assert layer.target.data_ptr() != linear.weight.data_ptr()
    with torch.no_grad():
        layer.weight.add_(10.0)  # training moves the weight ...
    assert layer.weight[0, 0].item() == 11.0
    assert layer.target.tolist() == [[1.0, 2.0], [3.0, 4.0]]  # ... never the target


def test_trained_state_dict_loads_into_a_plain_bert():
    model = tiny_bert()
    apply_mixout(model, 0.7, output_layer="mixout_init")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = {"input_ids": torch.randint(0, 40, (4, 6)), "labels": torch.tensor([0, 1, 0, 1])}
    model.train()
    model(**batch).loss.backward()
    optimizer.step()

    plain = tiny_bert().eval()
    with torch.no_grad():
        untrained = plain(input_ids=batch["input_ids"]).logits
        plain.load_state_dict(model.state_dict(), strict=True)
        loaded = plain(input_ids=batch["input_ids"]).logits
        trained = model.eval()(input_ids=batch["input_ids"]).logits
    assert torch.equal(loaded, trained) and not torch.equal(loaded, untrained)
