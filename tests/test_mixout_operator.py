"""The functional mixout operator: Φ(w; u, M) = u + M/(1 − p) ⊙ (w − u), M ~ Bernoulli(1 − p)."""

from __future__ import annotations

import pytest
import torch

from mixsweep.regularizers import mixout
from mixsweep.regularizers.mixout import keep_mask

OUT, IN = 6, 10


def _pair(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(OUT, IN, generator=gen, dtype=dtype)
    target = torch.randn(OUT, IN, generator=gen, dtype=dtype)
    return weight, target


def _kept_columns(mixed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bool per column: True where the column was kept (differs from the target)."""
    return (mixed != target).any(dim=0)


def test_monte_carlo_mean_is_the_weight():
    weight, target = _pair()
    p, draws = 0.7, 4000
    gen = torch.Generator().manual_seed(0)
    mean = sum(mixout(weight, target, p, generator=gen) for _ in range(draws)) / draws
    # Var Φ = (w − u)² p/(1 − p) per element; allow 5 standard errors.
    std_err = (weight - target).abs() * (p / (1 - p) / draws) ** 0.5
    assert torch.all((mean - weight).abs() <= 5 * std_err)


def test_p_zero_returns_the_weight_itself():
    weight, target = _pair()
    assert mixout(weight, target, 0.0) is weight


def test_eval_mode_returns_the_weight_itself():
    weight, target = _pair()
    assert mixout(weight, target, 0.9, training=False) is weight


def test_p_one_returns_the_target():
    weight, target = _pair()
    assert torch.equal(mixout(weight, target, 1.0), target)


def test_neuron_mask_replaces_whole_columns():
    weight, target = _pair()
    p = 0.5
    mixed = mixout(weight, target, p, generator=torch.Generator().manual_seed(3))
    kept = _kept_columns(mixed, target)
    assert 0 < int(kept.sum()) < IN, "the seed should give both kept and mixed columns"
    assert torch.equal(mixed[:, ~kept], target[:, ~kept])
    assert torch.allclose(mixed[:, kept], (target + (weight - target) / (1 - p))[:, kept])


def test_element_mask_is_per_element():
    weight, target = _pair()
    mixed = mixout(weight, target, 0.5, granularity="element", generator=torch.Generator().manual_seed(3))
    replaced = mixed == target
    partly_replaced_columns = replaced.any(dim=0) & ~replaced.all(dim=0)
    assert bool(partly_replaced_columns.any())


def test_mask_is_drawn_on_the_input_neurons():
    weight, _ = _pair()
    assert keep_mask(weight, 0.5, "neuron").shape == (1, IN)
    assert keep_mask(weight, 0.5, "element").shape == (OUT, IN)
    assert keep_mask(weight, 0.5, "neuron").dtype == torch.bool


@pytest.mark.parametrize("granularity", ["neuron", "element"])
def test_exact_gradient_matches_finite_differences(granularity):
    weight, target = _pair()
    weight.requires_grad_(True)
    gen = torch.Generator()

    def fixed_mask_mixout(w: torch.Tensor) -> torch.Tensor:
        return mixout(w, target, 0.6, granularity=granularity, generator=gen.manual_seed(5))

    assert torch.autograd.gradcheck(fixed_mask_mixout, (weight,))


def test_exact_gradient_is_mask_over_keep_probability():
    weight, target = _pair()
    weight.requires_grad_(True)
    p = 0.6
    mixed = mixout(weight, target, p, generator=torch.Generator().manual_seed(5))
    upstream = torch.randn(OUT, IN, dtype=torch.float64)
    mixed.backward(upstream)
    kept = _kept_columns(mixed.detach(), target).to(torch.float64)
    assert torch.allclose(weight.grad, upstream * kept / (1 - p))


@pytest.mark.parametrize("granularity", ["neuron", "element"])
def test_official_gradient_is_one_minus_p_times_exact(granularity):
    weight, target = _pair()
    p, upstream = 0.75, torch.randn(OUT, IN, dtype=torch.float64)
    grads = {}
    for mode in ("exact", "official"):
        w = weight.clone().requires_grad_(True)
        mixout(
            w, target, p, granularity=granularity, grad=mode, generator=torch.Generator().manual_seed(3)
        ).backward(upstream)
        grads[mode] = w.grad
    assert grads["exact"].abs().sum() > 0
    assert torch.allclose(grads["official"], (1 - p) * grads["exact"])


def test_official_mode_has_the_same_forward():
    weight, target = _pair()
    exact = mixout(weight, target, 0.4, generator=torch.Generator().manual_seed(2))
    official = mixout(weight, target, 0.4, grad="official", generator=torch.Generator().manual_seed(2))
    assert torch.equal(exact, official)


def test_zero_target_is_inverted_per_neuron_dropconnect():
    weight, _ = _pair()
    p = 0.3
    mixed = mixout(weight, torch.zeros_like(weight), p, generator=torch.Generator().manual_seed(11))
    keep = keep_mask(weight, p, "neuron", generator=torch.Generator().manual_seed(11))
    assert torch.allclose(mixed, weight * keep / (1 - p), rtol=1e-12, atol=0)


def test_zero_target_keeps_a_neuron_with_probability_one_minus_p():
    weight, _ = _pair()
    p, draws = 0.3, 3000
    gen = torch.Generator().manual_seed(0)
    zero = torch.zeros_like(weight)
    kept = torch.stack([_kept_columns(mixout(weight, zero, p, generator=gen), zero) for _ in range(draws)])
    n = kept.numel()
    assert abs(kept.double().mean().item() - (1 - p)) <= 5 * (p * (1 - p) / n) ** 0.5


def test_forward_saves_only_the_neuron_mask_for_backward():
    weight, target = _pair(torch.float32)
    weight.requires_grad_(True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        mixout(weight, target, 0.5)
    assert saved and all(t.numel() <= IN for t in saved)


def test_generator_makes_masks_reproducible():
    weight, target = _pair()
    first = mixout(weight, target, 0.5, generator=torch.Generator().manual_seed(4))
    second = mixout(weight, target, 0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, second)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5"])
def test_invalid_p_raises_value_error(p):
    weight, target = _pair()
    with pytest.raises(ValueError, match="p must be a number in"):
        mixout(weight, target, p)


def test_shape_mismatch_raises_value_error():
    weight, target = _pair()
    with pytest.raises(ValueError, match="shape"):
        mixout(weight, target[:, :-1], 0.5)


@pytest.mark.parametrize("kwargs", [{"granularity": "column"}, {"grad": "approx"}])
def test_unknown_mode_raises_value_error(kwargs):
    weight, target = _pair()
    with pytest.raises(ValueError, match="choose one of"):
        mixout(weight, target, 0.5, **kwargs)
