"""LoRA and BitFit as stabilizers (Chen et al. 2022, arXiv 2202.07962): the trainable sets typed from the
tiny BERT's dimensions, LoRA's step against an own re-implementation of W x + (α/r)·B A x, BitFit's
step against plain Adam on the BitFit rule's parameters, and a whole tiny run of each.

Deviations reintroduced to see these tests fail (then reverted):
- LoRA's scaling α instead of α/r (``LoraConfig(lora_alpha=alpha * r)``): all four cases of
  ``test_lora_matches_w_x_plus_alpha_over_r_b_a_x`` fail at step 1 (B's gradient is scaled, and clipping
  mixes it with the head's).
- LoRA's A drawn from torch's global RNG as peft leaves it (no seeding from init_seed): init_seed 3 and 4
  give one A (``test_lora_init_is_kaiming_uniform_a_and_zero_b_drawn_from_init_seed``); without the fork,
  the same test sees the global stream moved.
- BitFit leaving LayerNorm biases frozen (``is_bias`` false for ``LayerNorm.bias``):
  ``test_bitfit_trains_every_bias_and_the_head`` and ``test_bitfit_matches_plain_adam_on_the_bias_terms`` fail.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import tiny_bert, tiny_overrides
from mixsweep.regularizers import head_module_names, lifecycle
from mixsweep.regularizers.base import RegularizerError, RunContext, build_methods
from test_stabilizers_reference import (
    K,
    assert_same,
    fixed_batches,
    hf_adam_,
    reference_loop,
    run_harness,
    snapshot,
)

# tiny_bert(): vocab 40, hidden 32, 2 layers, 2 heads, intermediate 64, 512 positions, 2 token types, 2 labels.
H, F, L, V, P, T, C = 32, 64, 2, 40, 512, 2, 2  # F: feed-forward (intermediate) width
EMBEDDINGS = V * H + P * H + T * H + 2 * H          # word, position, token type, LayerNorm γ β: 17 792
LAYER = 3 * (H * H + H) + (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H  # 8 544
POOLER, HEAD = H * H + H, H * C + C                 # 1 056, 66
TOTAL = EMBEDDINGS + L * LAYER + POOLER + HEAD      # 36 002

LAYER_BIASES = ["attention.self.query.bias", "attention.self.key.bias", "attention.self.value.bias",
                "attention.output.dense.bias", "attention.output.LayerNorm.bias", "intermediate.dense.bias",
                "output.dense.bias", "output.LayerNorm.bias"]
BITFIT = (["bert.embeddings.LayerNorm.bias"]
          + [f"bert.encoder.layer.{i}.{b}" for i in range(L) for b in LAYER_BIASES]
          + ["bert.pooler.dense.bias", "classifier.weight", "classifier.bias"])
LORA_R, LORA_ALPHA = 4, 16.0  # scaling 4: α, α/r and α/√r give three different updates
LORA_ADAPTERS = [f"bert.encoder.layer.{i}.attention.self.{m}.lora_{ab}.default.weight"
                 for i in range(L) for m in ("query", "value") for ab in ("A", "B")]


def context(model, seed: int = 0) -> RunContext:
    return RunContext(model=model, head=head_module_names(model), init_seed=seed, noise_seed=seed, total_steps=K)


def prepared(reg, seed: int = 0, model=None):
    model = tiny_bert() if model is None else model
    methods = build_methods(reg)
    ctx = context(model, seed)
    lifecycle.prepare(methods, ctx)
    return model, methods, ctx


def trainable(model) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


# -- the trainable sets -------------------------------------------------------------------------------

@pytest.mark.parametrize("pooler", [True, False])
def test_lora_trains_the_adapters_and_the_head(pooler):
    model, methods, ctx = prepared({"lora": {"r": LORA_R, "alpha": LORA_ALPHA, "pooler": pooler}})
    pooler_names = ["bert.pooler.dense.weight", "bert.pooler.dense.bias"] if pooler else []
    assert trainable(model) == sorted(LORA_ADAPTERS + pooler_names + ["classifier.weight", "classifier.bias"])
    adapters = L * 2 * (LORA_R * H + H * LORA_R)  # per layer query and value: A (r × 32) and B (32 × r)
    record = methods[0].record()
    assert record["trainable"] == adapters + HEAD + (POOLER if pooler else 0) == (2146 if pooler else 1090)
    assert record["total"] == TOTAL + adapters == 37026
    assert record["scaling"] == LORA_ALPHA / LORA_R and len(record["adapted"]) == 4
    assert sorted(ctx.reference) == sorted(LORA_ADAPTERS + pooler_names)  # w_pre of what trains, head aside


@pytest.mark.parametrize("pooler", [False, True])
def test_bitfit_trains_every_bias_and_the_head(pooler):
    model, methods, ctx = prepared({"bitfit": {"pooler": pooler}})
    expected = BITFIT + (["bert.pooler.dense.weight"] if pooler else [])
    assert trainable(model) == sorted(expected)
    biases = H + L * (7 * H + F) + H  # embeddings' LayerNorm β, 7 of width 32 and 1 of 64 per layer, pooler
    record = methods[0].record()
    assert record["trainable"] == biases + HEAD + (H * H if pooler else 0) == (1730 if pooler else 706)
    assert record["total"] == TOTAL == 36002
    assert record["tensors"] == len(expected)


def test_one_method_chooses_the_trainable_set():
    with pytest.raises(RegularizerError, match="bitfit and lora each choose which parameters train"):
        build_methods({"lora": {}, "bitfit": {}})


@pytest.mark.parametrize("method,cfg,message", [
    ("lora", {"r": 0}, "regularizer.lora.r=0 must be an integer"),
    ("lora", {"r": 2.5}, "regularizer.lora.r=2.5 must be an integer"),
    ("lora", {"alpha": 0}, r"regularizer.lora.alpha=0 must be a number in \(0, inf\)"),
    ("lora", {"dropout": 1.0}, r"regularizer.lora.dropout=1.0 must be a number in \[0, 1\)"),
    ("lora", {"targets": "query"}, "regularizer.lora.targets='query' must be a non-empty list"),
    ("lora", {"targets": []}, "regularizer.lora.targets=\\[\\] must be a non-empty list"),
    ("lora", {"pooler": "yes"}, "regularizer.lora.pooler='yes' must be true or false"),
    ("lora", {"rank": 8}, "unknown setting regularizer.lora.rank"),
    ("bitfit", {"pooler": 1}, "regularizer.bitfit.pooler=1 must be true or false"),
    ("bitfit", {"bias": "all"}, "unknown setting regularizer.bitfit.bias"),
])
def test_bad_settings_name_the_key(method, cfg, message):
    with pytest.raises(RegularizerError, match=message):
        build_methods({method: cfg})


def test_lora_without_peft_installed_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(RegularizerError, match=r"regularizer.lora needs the package peft: run `make setup`"):
        build_methods({"lora": {}})


def test_lora_targets_the_model_lacks_are_a_one_line_error():
    with pytest.raises(RegularizerError, match=r"regularizer.lora.targets=\['q_lin'\] names no linear layer"):
        prepared({"lora": {"targets": ["q_lin"]}})


# -- LoRA: init, step 0, the update -------------------------------------------------------------------

def lora_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" in n}


def test_lora_init_is_kaiming_uniform_a_and_zero_b_drawn_from_init_seed():
    model = tiny_bert()
    rng = torch.random.get_rng_state()
    a = lora_weights(prepared({"lora": {"r": LORA_R}}, seed=3, model=model)[0])
    assert torch.equal(torch.random.get_rng_state(), rng)  # the global stream (dropout masks) is untouched
    b = lora_weights(prepared({"lora": {"r": LORA_R}}, seed=3)[0])
    c = lora_weights(prepared({"lora": {"r": LORA_R}}, seed=4)[0])
    bound = 1 / H ** 0.5  # kaiming_uniform_(a=√5): gain √(2/(1+5)), bound gain·√(3/fan_in) = 1/√fan_in
    for name, w in a.items():
        assert torch.equal(w, b[name])  # one seed, one init
        if ".lora_A." in name:
            assert w.shape == (LORA_R, H)
            assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.8 * bound
            assert not torch.equal(w, c[name])  # another init_seed, another A
        else:
            assert w.shape == (H, LORA_R) and not w.any()


def test_lora_output_at_step_0_is_the_pretrained_models():
    plain = tiny_bert().eval()
    model = prepared({"lora": {"r": LORA_R, "alpha": LORA_ALPHA}}, model=copy.deepcopy(plain))[0].eval()
    batch = {k: v for k, v in fixed_batches()[0].items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, plain(**batch).logits)  # B = 0: the adapter adds exact zeros


class RefLoRA(nn.Module):
    """LoRA written from the paper (Hu et al. 2022, eq. 3) and loralib's ``Linear.forward``, not from peft:
    h = W x + b + (α/r)·B A x, W and b frozen. Names as peft's, so trajectories compare by name."""

    def __init__(self, base: nn.Linear, a0: torch.Tensor, b0: torch.Tensor, alpha: float, r: int):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.ModuleDict({"default": nn.Linear(base.in_features, r, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(r, base.out_features, bias=False)})
        with torch.no_grad():
            self.lora_A["default"].weight.copy_(a0)
            self.lora_B["default"].weight.copy_(b0)
        self.scale = alpha / r

    def forward(self, x):
        a, b = self.lora_A["default"].weight, self.lora_B["default"].weight
        return x @ self.base_layer.weight.T + self.base_layer.bias + self.scale * ((x @ a.T) @ b.T)


@pytest.mark.parametrize("pooler", [True, False])
@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_lora_matches_w_x_plus_alpha_over_r_b_a_x(optimizer, correct_bias, pooler):
    lr, seed = 1e-2, 5
    plain = tiny_bert()
    reg = {"lora": {"r": LORA_R, "alpha": LORA_ALPHA, "pooler": pooler}}
    start = lora_weights(prepared(reg, seed=seed, model=copy.deepcopy(plain))[0])  # the same A₀, B₀ = 0
    ref = copy.deepcopy(plain).eval()
    for i, layer in enumerate(ref.bert.encoder.layer):
        for m in ("query", "value"):
            name = f"bert.encoder.layer.{i}.attention.self.{m}"
            base = getattr(layer.attention.self, m)
            setattr(layer.attention.self, m, RefLoRA(base, start[f"{name}.lora_A.default.weight"],
                                                     start[f"{name}.lora_B.default.weight"], LORA_ALPHA, LORA_R))
    trains = set(LORA_ADAPTERS) | {"classifier.weight", "classifier.bias"}
    trains |= {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} if pooler else set()
    for n, p in ref.named_parameters():
        p.requires_grad_(n in trains)
    before = snapshot(ref)
    state: dict = {}
    expected = reference_loop(
        ref, fixed_batches(), lr=lr, max_norm=1.0,
        update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters() if p.requires_grad], correct_bias))
    got = run_harness(copy.deepcopy(plain), reg, fixed_batches(), optimizer=optimizer, lr=lr, max_norm=1.0, seed=seed)
    assert sorted(got[0]) == sorted(expected[0])
    assert_same(got, expected)
    for name, w in before.items():
        if name not in trains:
            assert all(torch.equal(step[name], w) for step in got), f"{name} moved"  # frozen: bit-identical
    still = [n for n in trains if torch.equal(got[-1][n], before[n])]
    assert not still, f"{still} did not move"  # every trained tensor moved (A slowly: its gradient is ∝ B, from 0)


def test_lora_with_a_pull_toward_w_pre_decays_only_what_trains():
    """wdecay(w_pre) on the wrapped model: its reference is A₀, B₀ = 0 (and the pooler); the frozen W never moves."""
    plain = tiny_bert()
    got = run_harness(copy.deepcopy(plain), {"lora": {"r": LORA_R}, "wdecay": {"lam": 0.1, "target": "pretrained"}},
                      fixed_batches(), lr=1e-2, max_norm=1.0)
    w = "bert.encoder.layer.0.attention.self.query.base_layer.weight"
    assert torch.equal(got[-1][w], plain.bert.encoder.layer[0].attention.self.query.weight.detach())
    assert float(got[-1]["bert.encoder.layer.0.attention.self.query.lora_B.default.weight"].abs().max()) > 0


# -- BitFit -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_bitfit_matches_plain_adam_on_the_bias_terms(optimizer, correct_bias):
    """benzakenelad/BitFit glue_evaluator.py ``_deactivate_relevant_gradients`` (``--bias-terms all``):
    every parameter frozen, then names containing "bias" or "classifier" train; Adam on those."""
    lr = 1e-2
    plain = tiny_bert()
    ref = copy.deepcopy(plain).eval()
    for n, p in ref.named_parameters():
        p.requires_grad_("bias" in n or "classifier" in n)
    before = snapshot(ref)
    state: dict = {}
    expected = reference_loop(
        ref, fixed_batches(), lr=lr, max_norm=1.0,
        update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters() if p.requires_grad], correct_bias))
    got = run_harness(copy.deepcopy(plain), {"bitfit": {}}, fixed_batches(), optimizer=optimizer, lr=lr, max_norm=1.0)
    assert_same(got, expected)
    for name, w in before.items():
        if name in BITFIT:  # the key biases barely move: softmax ignores a shift of every key (gradient ~0)
            assert ".key.bias" in name or float((got[-1][name] - w).abs().max()) > 1e-5, f"{name} did not move"
        else:
            assert all(torch.equal(step[name], w) for step in got), f"{name} moved"


# -- whole runs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["rte", "stsb"])
@pytest.mark.parametrize("setting,trained,total", [("lora.r=4", 2146, 37026), ("bitfit.pooler=false", 706, 36002)])
def test_a_tiny_run_with_each_method_records_what_trained(tmp_path, setting, trained, total, task):
    """A devlin cell plus the method on model=tiny: tiny_bert()'s shape with the MiniLM tokenizer's vocabulary,
    so the total counts its word embeddings instead of tiny_bert()'s 40 rows; no embedding trains."""
    from mixsweep.models.pretrained import load_tokenizer
    from mixsweep.run.train import run
    from mixsweep.sweeping.compose import compose_run

    reg = setting.split(".")[0]
    result = run(compose_run([*tiny_overrides(tmp_path, task), "regularizer=devlin", f"+regularizer.{setting}",
                              "train.max_steps=3"]))
    if task == "stsb":  # one output: the head is 32 + 1 wide, not 32·2 + 2
        trained, total = trained - (H + 1), total - (H + 1)
    assert result["status"] == "ok", result
    record = result["extra"]["methods"][reg]
    assert record["trainable"] == trained
    assert record["total"] == total + (load_tokenizer("tiny").vocab_size - V) * H
    assert result["distance_sq"] is not None and result["distance_sq"] > 0
    reps = result["outputs"].representations  # the record's default capture: head and layer states, fp16
    assert {"rep_head", "rep_layer_2"} <= set(reps) and reps["rep_head"].shape[1] == reps["rep_layer_2"].shape[1] == H
