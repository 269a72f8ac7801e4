"""Differential tests of CWGNC and DPS, Dense and Mix (issue 33), in the style of ``test_stabilizers_reference.py``
(whose harness-side runner and reference-side Adam, clipping and schedule they reuse): K steps of a tiny BERT
through the runner's own step path beside a re-implementation of the authors' update written here from their
source; every parameter equal to 1e-6 after every step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixsweep.regularizers import head_module_names, lifecycle
from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, build_methods
from mixsweep.run.step import optimizer_step
from test_stabilizers_reference import (
    K,
    _train_without_dropout,
    assert_same,
    clip_,
    fixed_batches,
    hf_adam_,
    linear_lr,
    models,
    reference_loop,
    run_harness,
    snapshot,
)

OPTIMIZERS = [("bertadam", False), ("adamw_hf", True)]  # adamw_hf: both references' transformers AdamW


# -- CWGNC -------------------------------------------------------------------------------------------

def _clip_each_tensor_(model: nn.Module, c: float) -> list[bool]:
    """yangalan123/FineTuningStability: CustomToolBox/GroupGradClip/GradClipTrainer.py
    ``GradValueClipTrainer.training_step``, ``use_group_grad_norm_clip`` branch: for every ``(name, param)`` of
    ``model.named_parameters()`` with a gradient, ``clip_grad_norm_(param, max_clip_value)`` (here written out:
    g · c / (‖g‖ + 1e-6) when that factor is < 1). Returns, per tensor, whether it was clipped."""
    clipped = []
    for _, param in model.named_parameters():
        if param.grad is not None:
            norm = math.sqrt(float((param.grad.double() ** 2).sum()))
            coef = c / (norm + 1e-6)
            if coef < 1:
                param.grad.mul_(coef)
            clipped.append(coef < 1)
    return clipped


def _cwgnc_reference(ref, batches, *, c, lr, correct_bias, per_tensor=True):
    """The reference's loop: forward, backward, the per-tensor clip and no global one (run_glue.py sets
    ``max_grad_norm = -1`` with --use_group_grad_norm_clip), transformers' AdamW, linear schedule.
    ``per_tensor=False``: one global clip at c instead (the deviation the test must see)."""
    state: dict = {}
    traj, clipped = [], []
    for step, batch in enumerate(batches):
        ref(**batch).loss.backward()
        if per_tensor:
            clipped.append(_clip_each_tensor_(ref, c))
        else:
            clip_(ref.parameters(), c)
        hf_adam_(state, [(p, linear_lr(lr, step, len(batches))) for p in ref.parameters()], correct_bias)
        for p in ref.parameters():
            p.grad = None
        traj.append(snapshot(ref))
    return traj, clipped


@pytest.mark.parametrize("optimizer,correct_bias", OPTIMIZERS)
def test_cwgnc_matches_the_reference_training_step(optimizer, correct_bias):
    """yangalan123/FineTuningStability: GradClipTrainer.py ``GradValueClipTrainer.training_step`` (per-tensor
    ``clip_grad_norm_`` right after backward) with run_glue.py's ``max_grad_norm = -1``. The harness runs with a
    global clip configured (0.05, active on its own) that CWGNC must replace; c = 0.05 clips some tensors and
    not others, so both a global clip at c and the per-tensor clip on top of the global one would show."""
    c, lr = 0.05, 1e-3
    model, ref = models()
    batches = fixed_batches()
    expected, clipped = _cwgnc_reference(ref, batches, c=c, lr=lr, correct_bias=correct_bias)
    assert any(clipped[0]) and not all(clipped[0])  # the threshold separates tensors
    got = run_harness(model, {"cwgnc": {"max_norm": c}}, batches, optimizer=optimizer, lr=lr, max_norm=0.05)
    assert_same(got, expected)


def test_cwgnc_differs_from_one_global_clip_at_the_same_threshold():
    """The setting above is discriminating: clipping the global norm at c gives another trajectory."""
    c, lr = 0.05, 1e-3
    _, ref_a = models()
    _, ref_b = models()
    batches = fixed_batches()
    per_tensor, _ = _cwgnc_reference(ref_a, batches, c=c, lr=lr, correct_bias=True)
    global_clip, _ = _cwgnc_reference(ref_b, batches, c=c, lr=lr, correct_bias=True, per_tensor=False)
    with pytest.raises(AssertionError, match="differs"):
        assert_same(per_tensor, global_clip)


def test_the_step_under_cwgnc_returns_the_global_norm_before_clipping_and_records_the_replaced_clip():
    model, ref = models()
    batch = fixed_batches()[0]
    ref(**batch).loss.backward()
    expected = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in ref.parameters() if p.grad is not None))
    methods = build_methods({"cwgnc": {"max_norm": 0.01}})
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=1)
    lifecycle.prepare(methods, ctx)
    opt = torch.optim.SGD(lifecycle.param_groups(methods, ctx), lr=0.0)
    ctx.optimizer = opt
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    model.train()
    norm = optimizer_step(methods, ctx, model(**batch).loss, 0, opt, scheduler, 1.0)
    assert norm == pytest.approx(expected, rel=1e-5)
    assert expected > 0.01 * math.sqrt(sum(1 for _ in model.parameters()))  # clipping changed the gradient
    rec = methods[0].record()
    assert rec["global_clip_not_applied"] == 1.0
    assert rec["tensors"] == sum(1 for _ in model.parameters())
    assert 0 < rec["clipped_last_step"] <= rec["tensors"]


def test_two_methods_that_replace_the_clipping_are_refused(monkeypatch):
    from mixsweep.regularizers import base

    class OtherClip(Method):
        name = "other_clip"
        owns_clipping = True

    base.registry()
    monkeypatch.setitem(base._REGISTRY, "other_clip", OtherClip)
    with pytest.raises(RegularizerError, match="cwgnc and other_clip each replace the gradient clipping: keep one"):
        build_methods({"other_clip": {}, "cwgnc": {}})


# -- DPS-Dense ---------------------------------------------------------------------------------------

class _GradsOps(torch.autograd.Function):
    """ZhangHaojie077/DPS: transformers/DPSDense/grads_ops.py ``Grads_Ops`` ported line by line (classmethods on
    class-level state become staticmethods on ``_GradsOps``'s attributes; ``hadle_stategy``/``target``/``inplace``,
    unused by DPSDense, dropped). ``steps`` is a stack pointer shared by every DPSDense layer: forward pushes,
    backward pops, so ``grads_mask[-steps]`` is the layer's own entry when backward runs in reverse order."""

    steps = 0
    grads_mask: list = []
    noise_mask: list = []

    @staticmethod
    def forward(ctx, input, p, steps, update_steps, training):
        cls = _GradsOps
        ctx.p, ctx.training, ctx.cur_steps, ctx.update_steps = p, training, steps, update_steps
        output = input.clone()
        if ctx.p == 0.0 or not ctx.training:
            return output
        if steps == 1:
            cls.steps = 0
            cls.grads_mask = []
            cls.noise_mask = []
        elif math.ceil(steps / update_steps) % 2 == 1:
            cls.steps += 1
        elif math.ceil(steps / update_steps) % 2 == 0 and (steps - 1) % update_steps == 0:
            cls.steps += 1
            assert input.size() == cls.grads_mask[-cls.steps].size()
            index_list = cls.grads_mask[-cls.steps].view(-1)
            sorted_num, _ = torch.sort(index_list, descending=True)
            tar_num = torch.index_select(sorted_num, -1,
                                         torch.tensor([math.ceil(index_list.size()[0] * (1 - ctx.p)) - 1]))
            ctx.noise = torch.where((cls.grads_mask[-cls.steps]) >= tar_num, 1, 0)
            cls.noise_mask[-cls.steps] = ctx.noise.clone()
        else:
            cls.steps += 1
            assert input.size() == cls.grads_mask[-cls.steps].size()
            ctx.noise = cls.noise_mask[-cls.steps]
        return output

    @staticmethod
    def backward(ctx, grad_output):
        cls, epsilon = _GradsOps, 1e3
        if ctx.p > 0 and ctx.training:
            if ctx.cur_steps == 1:
                cls.grads_mask.append(grad_output.clone() ** 2 / epsilon)
                cls.noise_mask.append(grad_output.clone() ** 2 / epsilon)
            elif math.ceil(ctx.cur_steps / ctx.update_steps) % 2 == 1 and (ctx.cur_steps - 1) % ctx.update_steps == 0:
                cls.grads_mask[-cls.steps] = grad_output.clone() ** 2 / epsilon
                cls.steps -= 1
            elif math.ceil(ctx.cur_steps / ctx.update_steps) % 2 == 0:
                cls.steps -= 1
            else:
                cls.grads_mask[-cls.steps] += grad_output.clone() ** 2 / epsilon
                cls.steps -= 1
            if math.ceil(ctx.cur_steps / ctx.update_steps) % 2 == 0:
                return grad_output * ctx.noise, None, None, None, None
            return grad_output, None, None, None, None
        return grad_output, None, None, None, None


def _dps_dense(model: nn.Module, p: float, max_steps: int, update_ratio: float) -> None:
    """DPS's modeling_bert.py with ``generalization_type`` dense: every Linear becomes a ``DPSDense``
    (transformers/DPSDense/moudle.py ``DPSDense.forward``: count a training forward, then
    ``F.linear(input, grads_ops(weight, p, steps, int(max_steps*update_ratio), ...), bias)``)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.steps = 0

            def forward(input, m=module):
                if m.training:
                    m.steps += 1
                return F.linear(input, _GradsOps.apply(m.weight, p, m.steps, int(max_steps * update_ratio),
                                                       m.training), m.bias)
            module.forward = forward


@pytest.mark.parametrize("update_ratio", [0.34, 0.17], ids=["u=2", "u=1"])
@pytest.mark.parametrize("optimizer,correct_bias", OPTIMIZERS)
def test_dps_dense_matches_the_reference_grads_ops(update_ratio, optimizer, correct_bias):
    """ZhangHaojie077/DPS: transformers/DPSDense/grads_ops.py ``Grads_Ops.forward``/``backward`` on every Linear
    weight (moudle.py ``DPSDense.forward``), run_trainer.py's Trainer (transformers' AdamW, global clip after the
    backward, here 0.05 so the mask's place before it shows). K = 6 steps, u = int(6 · ratio): u = 2 runs
    accumulate (steps 1–2, summed), update (3–4, one mask reused), accumulate afresh (5–6); u = 1 alternates.
    Three classes: with two, the classifier's rows get gradients equal and opposite up to rounding, so g² ties
    at the threshold are decided by the last bit, which two correct implementations need not share."""
    p, lr, max_norm = 0.3, 1e-3, 0.05
    model, ref = models(num_labels=3)
    _train_without_dropout(ref)
    _dps_dense(ref, p, K, update_ratio)
    batches = fixed_batches(num_labels=3)
    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=max_norm,
                              update=lambda s, lr_t: hf_adam_(state, [(q, lr_t) for q in ref.parameters()],
                                                              correct_bias))
    got = run_harness(model, {"dps": {"reserve_p": p, "update_ratio": update_ratio}}, batches, optimizer=optimizer,
                      lr=lr, max_norm=max_norm)
    assert_same(got, expected)


def test_dps_masks_the_least_accumulated_fraction_in_update_phases():
    """Worked by hand on one 2×5 weight, u = 1, reserve_p = 0.3: k = ⌈10 · 0.7⌉ = 7 entries keep their gradient
    in step 2, the 3 with the smallest step-1 gradient² are zeroed; step 3 accumulates afresh and is unmasked."""
    lin = nn.Linear(5, 2)
    ctx = RunContext(model=lin, head=[], init_seed=0, noise_seed=0, total_steps=4)
    (dps,) = build_methods({"dps": {"reserve_p": 0.3, "update_ratio": 0.25}})
    dps.prepare(ctx)
    g1 = torch.tensor([[0.5, -0.1, 0.3, 0.0, 0.9], [-0.2, 0.05, -0.8, 0.4, 0.6]])
    lin.weight.grad = g1.clone()
    dps.after_backward(0, ctx)
    assert torch.equal(lin.weight.grad, g1)
    g2 = torch.arange(10, dtype=torch.float32).reshape(2, 5) + 1
    lin.weight.grad = g2.clone()
    dps.after_backward(1, ctx)
    keep = torch.tensor([[1, 0, 1, 0, 1], [1, 0, 1, 1, 1]], dtype=torch.float32)  # 0.0, 0.05, -0.1 dropped
    assert torch.equal(lin.weight.grad, g2 * keep)
    lin.weight.grad = g2.clone()
    dps.after_backward(2, ctx)
    assert torch.equal(lin.weight.grad, g2)
    assert dps.record()["update_steps"] == 1 and dps.record()["masked_steps"] == 1
    assert dps.record()["kept_last_selection"] == pytest.approx(0.7)


def test_dps_with_a_phase_shorter_than_one_step_is_refused():
    model, _ = models()
    methods = build_methods({"dps": {"update_ratio": 0.05}})
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=10)
    with pytest.raises(RegularizerError, match=r"regularizer.dps.update_ratio=0.05 gives a phase of int\(10 × 0.05\)"):
        lifecycle.prepare(methods, ctx)


def test_dps_settings_are_checked():
    with pytest.raises(RegularizerError, match=r"regularizer.dps.reserve_p=1.0 must be a number in \[0, 1\)"):
        build_methods({"dps": {"reserve_p": 1.0}})
    with pytest.raises(RegularizerError, match="unknown setting regularizer.dps.p"):
        build_methods({"dps": {"p": 0.3}})
    with pytest.raises(RegularizerError, match="regularizer.dps.variant='sparse' is not one of dense, mix"):
        build_methods({"dps": {"variant": "sparse"}})
    assert build_methods({"dps": {"reserve_p": 0.0}}) == []  # the reference's p = 0: plain finetuning


# -- DPS-Mix -----------------------------------------------------------------------------------------

class _MixGradsOps(torch.autograd.Function):
    """ZhangHaojie077/DPS: transformers/DPSMix/grads_ops.py ``Grads_Ops`` ported line by line (class-level state
    on ``_MixGradsOps``; the Bernoulli draw ``ctx.noise[0].bernoulli_(1 - ctx.p)`` takes the test's generator,
    the stream the harness draws from, in the same forward order)."""

    steps = 0
    grads_mask: list = []
    noise_mask: list = []
    accum_mask: list = []
    gen: torch.Generator | None = None

    @staticmethod
    def _draw(input, p):
        noise = input.new().resize_as_(input)
        noise[0].bernoulli_(1 - p, generator=_MixGradsOps.gen)
        return noise[0].repeat(input.size()[0], *([1] * (len(input.size()) - 1)))

    @staticmethod
    def forward(ctx, input, target, p, steps, update_steps, training):
        cls = _MixGradsOps
        ctx.p, ctx.training, ctx.cur_steps, ctx.update_steps = p, training, steps, update_steps
        output = input.clone()
        if ctx.p == 0.0 or not ctx.training:
            return output
        if steps == 1:
            cls.steps = 0
            cls.grads_mask, cls.noise_mask, cls.accum_mask = [], [], []
            ctx.noise = cls._draw(input, ctx.p)
        elif math.ceil(steps / update_steps) % 2 == 1:
            cls.steps += 1
            ctx.noise = cls._draw(input, ctx.p)
        elif math.ceil(steps / update_steps) % 2 == 0 and (steps - 1) % update_steps == 0:
            cls.steps += 1
            assert input.size() == cls.grads_mask[-cls.steps].size()
            accum_mask = torch.where(cls.accum_mask[-cls.steps] > 0, cls.accum_mask[-cls.steps], 1)
            if update_steps < 50:
                grads_norm = (cls.grads_mask[-cls.steps] / accum_mask)
            else:
                grads_norm = (cls.grads_mask[-cls.steps] / accum_mask) * torch.exp(-accum_mask / update_steps)
            index_list = (grads_norm).view(-1)
            sorted_num, _ = torch.sort(index_list, descending=True)
            tar_num = torch.index_select(sorted_num, -1,
                                         torch.tensor([math.ceil(index_list.size()[0] * (1 - ctx.p)) - 1]))
            ctx.noise = torch.where((grads_norm) >= tar_num, 1, 0)
            cls.noise_mask[-cls.steps] = ctx.noise.clone()
        else:
            cls.steps += 1
            assert input.size() == cls.grads_mask[-cls.steps].size()
            ctx.noise = cls.noise_mask[-cls.steps]
        output = ((1 - ctx.noise) * target + ctx.noise * output - ctx.p * target) / (1 - ctx.p)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        cls, epsilon = _MixGradsOps, 1e3
        if ctx.p > 0 and ctx.training:
            if ctx.cur_steps == 1:
                cls.grads_mask.append((grad_output.clone() ** 2) * ctx.noise / epsilon)
                cls.noise_mask.append((grad_output.clone() ** 2) * ctx.noise / epsilon)
                cls.accum_mask.append(ctx.noise.long())
            elif (ctx.cur_steps != 1 and math.ceil(ctx.cur_steps / ctx.update_steps) % 2 == 1
                  and (ctx.cur_steps - 1) % ctx.update_steps == 0):
                cls.grads_mask[-cls.steps] = (grad_output.clone() ** 2) * ctx.noise / epsilon
                cls.accum_mask[-cls.steps] = ctx.noise.long()
                cls.steps -= 1
            elif math.ceil(ctx.cur_steps / ctx.update_steps) % 2 == 0:
                cls.steps -= 1
            else:
                cls.grads_mask[-cls.steps] += (grad_output.clone() ** 2) * ctx.noise / epsilon
                cls.accum_mask[-cls.steps] += ctx.noise.long()
                cls.steps -= 1
            return grad_output * ctx.noise, None, None, None, None, None
        return grad_output, None, None, None, None, None


def _dps_mix(model: nn.Module, p: float, max_steps: int, update_ratio: float) -> None:
    """DPS's modeling_bert.py with ``generalization_type`` mix: every Linear a ``DPSMix``
    (transformers/DPSMix/moudle.py ``DPSMix.forward``: target and pretrain_weight at the first training
    forward, target again at the first step of each even phase; the pretrained weights in odd phases)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.steps, module.update_steps = 0, int(max_steps * update_ratio)
            module.target = module.pretrain_weight = None

            def forward(input, m=module):
                if m.training:
                    m.steps += 1
                    if m.steps == 1:
                        m.target = m.weight.data.clone()
                        m.pretrain_weight = m.weight.data.clone()
                    elif math.ceil(m.steps / m.update_steps) % 2 == 0 and (m.steps - 1) % m.update_steps == 0:
                        m.target = m.weight.data.clone()
                    cur_target = m.pretrain_weight if math.ceil(m.steps / m.update_steps) % 2 == 1 else m.target
                else:
                    cur_target = m.target
                return F.linear(input, _MixGradsOps.apply(m.weight, cur_target, p, m.steps, m.update_steps,
                                                          m.training), m.bias)
            module.forward = forward


@pytest.mark.parametrize("update_ratio", [0.34, 0.17], ids=["u=2", "u=1"])
@pytest.mark.parametrize("optimizer,correct_bias", OPTIMIZERS)
def test_dps_mix_matches_the_reference_grads_ops(update_ratio, optimizer, correct_bias):
    """ZhangHaojie077/DPS: transformers/DPSMix/grads_ops.py ``Grads_Ops`` on every Linear weight (moudle.py
    ``DPSMix.forward``), under run_trainer.py's Trainer (transformers' AdamW, global clip 0.05 after the
    backward). Column masks from ``generator(seed, "dps")`` on both sides, layer by layer in forward order.
    Three classes, as the Dense test (no near-ties in the classifier's statistics)."""
    p, lr, max_norm, seed = 0.3, 1e-3, 0.05, 11
    model, ref = models(num_labels=3)
    _train_without_dropout(ref)
    _dps_mix(ref, p, K, update_ratio)
    _MixGradsOps.gen = generator(seed, "dps")
    batches = fixed_batches(num_labels=3)
    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=max_norm,
                              update=lambda s, lr_t: hf_adam_(state, [(q, lr_t) for q in ref.parameters()],
                                                              correct_bias))
    got = run_harness(model, {"dps": {"reserve_p": p, "update_ratio": update_ratio, "variant": "mix"}}, batches,
                      optimizer=optimizer, lr=lr, max_norm=max_norm, seed=seed)
    assert_same(got, expected)


def test_dps_mix_statistic_decays_with_the_keep_count_from_phases_of_50_steps():
    """grads_ops.py (DPSMix): S = G / A (A = 0 read as 1) below u = 50, × exp(−A / u) from u = 50; by hand."""
    from mixsweep.regularizers.dps_mix import mix_statistic

    g = torch.tensor([6.0, 6.0, 5.0])
    a = torch.tensor([3, 0, 1])
    assert torch.equal(mix_statistic(g, a, 49), torch.tensor([2.0, 6.0, 5.0]))
    expected = torch.tensor([2.0 * math.exp(-3 / 50), 6.0 * math.exp(-1 / 50), 5.0 * math.exp(-1 / 50)])
    assert torch.allclose(mix_statistic(g, a, 50), expected, rtol=1e-6)


def test_dps_mix_is_refused_beside_mixout():
    model, _ = models()
    methods = build_methods({"mixout": {"p": 0.9}, "dps": {"variant": "mix", "update_ratio": 1.0}})
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=10)
    with pytest.raises(RegularizerError, match="regularizer.dps.variant=mix replaces every Linear layer's forward"):
        lifecycle.prepare(methods, ctx)
