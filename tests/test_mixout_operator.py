"""The functional mixout operator: Φ(w; u, M) = u + M/(1 − p) ⊙ (w − u), M ~ Bernoulli(1 − p)."""

from __future__ import annotations

import sys

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


# --- a 3 x 4 example worked out by hand -------------------------------------------------------------
# p = 0.75, so 1/(1 - p) = 4 and a kept entry is u + 4(w - u) = 4w - 3u; a mixed-out entry is u.
# Every expected number below was computed by hand from W, U, the literal masks and G.
P = 0.75
W = [[1.0, 2.0, 3.0, 4.0],
     [5.0, 6.0, 7.0, 8.0],
     [9.0, 10.0, 11.0, 12.0]]
U = [[0.0, 1.0, 2.0, 3.0],
     [1.0, 1.0, 1.0, 1.0],
     [10.0, 9.0, 10.0, 10.0]]
G = [[1.0, 2.0, 3.0, 4.0],          # the upstream gradient dL/dPhi
     [-1.0, 3.0, 1.0, 2.0],
     [0.5, 0.5, 0.5, 0.5]]
MASK = {
    "neuron": [[True, False, False, True]],          # one draw per input neuron (column), 1 x 4
    "element": [[True, False, True, False],          # one draw per weight
                [False, True, False, False],
                [True, True, False, True]],
}
MIXED = {
    # columns 0 and 3 kept (4w - 3u), columns 1 and 2 replaced by u
    "neuron": [[4.0, 1.0, 2.0, 7.0],
               [17.0, 1.0, 1.0, 29.0],
               [6.0, 9.0, 10.0, 18.0]],
    "element": [[4.0, 1.0, 6.0, 3.0],
                [1.0, 21.0, 1.0, 1.0],
                [6.0, 13.0, 10.0, 18.0]],
}
WEIGHT_GRAD = {
    # exact: 4 * M * G; official (bloodwass/mixout's backward): M * G
    ("neuron", "exact"): [[4.0, 0.0, 0.0, 16.0],
                          [-4.0, 0.0, 0.0, 8.0],
                          [2.0, 0.0, 0.0, 2.0]],
    ("neuron", "official"): [[1.0, 0.0, 0.0, 4.0],
                             [-1.0, 0.0, 0.0, 2.0],
                             [0.5, 0.0, 0.0, 0.5]],
    ("element", "exact"): [[4.0, 0.0, 12.0, 0.0],
                           [0.0, 12.0, 0.0, 0.0],
                           [2.0, 2.0, 0.0, 2.0]],
    ("element", "official"): [[1.0, 0.0, 3.0, 0.0],
                              [0.0, 3.0, 0.0, 0.0],
                              [0.5, 0.5, 0.0, 0.5]],
}
CASES = [(g, mode) for g in ("neuron", "element") for mode in ("exact", "official")]


def _literal_mask(monkeypatch, module, granularity: str) -> list:
    """Make ``module.keep_mask`` return the literal mask (recording the calls) instead of drawing one."""
    calls = []

    def fake(weight, p, gran="neuron", generator=None):
        calls.append((tuple(weight.shape), p, gran))
        return torch.tensor(MASK[granularity])

    monkeypatch.setattr(module, "keep_mask", fake)
    return calls


@pytest.mark.parametrize(("granularity", "grad"), CASES)
def test_hand_worked_example_forward_and_weight_gradient(monkeypatch, granularity, grad):
    calls = _literal_mask(monkeypatch, sys.modules[mixout.__module__], granularity)
    weight = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(U, dtype=torch.float64)
    mixed = mixout(weight, target, P, granularity=granularity, grad=grad)
    assert calls == [((3, 4), P, granularity)]
    assert mixed.tolist() == MIXED[granularity]
    mixed.backward(torch.tensor(G, dtype=torch.float64))
    assert weight.grad.tolist() == WEIGHT_GRAD[granularity, grad]


@pytest.mark.parametrize(("granularity", "grad"), CASES)
def test_hand_worked_example_through_mixlinear(monkeypatch, granularity, grad):
    """The fused layer: with x = I, y = x Phi^T + b is Phi^T + b, and dL/dW for dL/dy = G^T is the same."""
    from mixsweep.regularizers.mixlinear import MixLinear

    _literal_mask(monkeypatch, sys.modules[MixLinear.__module__], granularity)
    linear = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(W, dtype=torch.float64))
        linear.bias.copy_(torch.tensor([100.0, 200.0, 300.0], dtype=torch.float64))
    layer = MixLinear.from_linear(linear, P, target=torch.tensor(U, dtype=torch.float64),
                                  granularity=granularity, grad=grad).train()
    out = layer(torch.eye(4, dtype=torch.float64))
    expected = [[MIXED[granularity][r][c] + 100.0 * (r + 1) for r in range(3)] for c in range(4)]
    assert out.tolist() == expected
    out.backward(torch.tensor(G, dtype=torch.float64).t())
    assert layer.weight.grad.tolist() == WEIGHT_GRAD[granularity, grad]
    assert layer.bias.grad.tolist() == [10.0, 5.0, 2.0]  # row sums of G: the bias is never mixed


def test_hand_worked_zero_target_is_inverted_per_neuron_dropconnect(monkeypatch):
    _literal_mask(monkeypatch, sys.modules[mixout.__module__], "neuron")
    weight = torch.tensor(W, dtype=torch.float64)
    mixed = mixout(weight, torch.zeros(3, 4, dtype=torch.float64), P)
    assert mixed.tolist() == [[4.0, 0.0, 0.0, 16.0], [20.0, 0.0, 0.0, 32.0], [36.0, 0.0, 0.0, 48.0]]


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
