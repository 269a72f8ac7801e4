"""Issue 12 items 1-4: the recipe follows the code the paper followed. Expected numbers are worked
out by hand (typed in), never taken from the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import tiny_overrides
from mixsweep.optim import build_optimizer
from mixsweep.records import cell_label
from mixsweep.regularizers import RunContext, build_methods, lifecycle
from mixsweep.run.step import optimizer_step
from mixsweep.sweeping.compose import compose_run

BERTADAM = {"name": "bertadam", "lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-6}
THETA, GRAD, W_PRE = [1.0, -2.0], [0.5, -0.25], [0.5, -1.0]


def _toy(theta: list[float]) -> nn.Linear:
    toy = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        toy.weight.copy_(torch.tensor([theta], dtype=torch.float64))
    return toy


def _one_step(reg: dict, optimizer: dict, *, reference: list[float] | None = None, grad=GRAD,
              theta=THETA, max_grad_norm: float | None = None, opt_cls=None) -> tuple[nn.Linear, RunContext]:
    """One step of the runners' shared step (optimizer_step) on a 2-parameter model whose
    task gradient is ``grad``; ``reference`` is w_pre."""
    toy = _toy(theta)
    methods = build_methods(reg)
    ctx = RunContext(model=toy, head=[], init_seed=0, noise_seed=0, total_steps=1)
    lifecycle.prepare(methods, ctx)
    if reference is not None:
        ctx.reference = {"weight": torch.tensor([reference], dtype=torch.float64)}
    groups = lifecycle.param_groups(methods, ctx)
    opt = opt_cls(groups) if opt_cls else build_optimizer(groups, optimizer)
    ctx.optimizer = opt
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    loss = (toy.weight * torch.tensor([grad], dtype=torch.float64)).sum()
    optimizer_step(methods, ctx, loss, 0, opt, scheduler, max_grad_norm)
    return toy, ctx


# -- item 1: Devlin's decay is BertAdam's, on the pre-update θ ----------------------------------------

def test_devlin_decay_is_bertadams_decoupled_decay_of_the_pre_update_theta():
    """BertAdam, step 1 (no bias correction), lr 0.1, λ 0.1, eps 1e-6, θ = (1, −2), g = (0.5, −0.25):
    m = 0.1 g, v = 0.001 g², update = m/(√v + ε) + λθ_old, θ ← θ − lr·update.
    θ₁ = 1 − 0.1·(0.05/(0.0158113883 + 1e−6) + 0.1) = 0.673792232718...
    θ₂ = −2 − 0.1·(−0.025/(0.0079056942 + 1e−6) − 0.2) = −1.663812228924...
    (decaying the already-updated θ instead would give 0.676954 and −1.666974)."""
    reg = {"wdecay": {"lam": 0.1, "target": "zero", "form": "decoupled", "head": "zero"}}
    toy, _ = _one_step(reg, BERTADAM)
    assert toy.weight[0].tolist() == pytest.approx([0.673792232718331, -1.6638122289241577], abs=1e-12)


def test_devlins_cell_composes_to_the_decoupled_form_with_head_dropout():
    reg = OmegaConf.to_container(compose_run(["+sweeps=table1", "regularizer=devlin"]).regularizer)
    assert reg["wdecay"] == {"lam": 0.01, "target": "zero", "form": "decoupled", "head": "zero"}
    assert reg["dropout"] == {"p": 0.1, "head": True}
    assert cell_label(reg) == "dropout(0.1)+wdecay(0,0.01)"


def test_decoupled_decay_adds_no_penalty_to_the_logged_loss():
    reg = {"wdecay": {"lam": 0.1, "target": "zero", "form": "decoupled"}}
    _, ctx = _one_step(reg, BERTADAM)
    assert ctx.penalties == {}


# -- item 2: wdecay(w_pre): L2 by default, PriorWD (decoupled, pre-update) one knob away --------------

def test_decoupled_wdecay_to_w_pre_is_priorwd_on_the_pre_update_theta():
    """As above with u = w_pre = (0.5, −1): the decay term is λ(θ_old − u) = (0.05, −0.1).
    θ₁ = 1 − 0.1·(3.16207... + 0.05) = 0.678792232718..., θ₂ = −2 − 0.1·(−3.16238... − 0.1) = −1.673812228924..."""
    reg = {"wdecay": {"lam": 0.1, "target": "pretrained", "form": "decoupled"}}
    toy, _ = _one_step(reg, BERTADAM, reference=W_PRE)
    assert toy.weight[0].tolist() == pytest.approx([0.6787922327183309, -1.6738122289241577], abs=1e-12)


def _gradient_spy() -> tuple[list, type]:
    """An SGD(lr 0) that records the first parameter's gradient at each step, and that record."""
    seen: list = []

    class Spy(torch.optim.SGD):
        def __init__(self, groups):
            super().__init__(groups, lr=0.0)

        def step(self, closure=None):
            seen.append(self.param_groups[0]["params"][0].grad.clone())

    return seen, Spy


def test_l2_wdecay_adds_lambda_times_distance_to_the_gradient_and_logs_its_value():
    """L2 form, λ 1, θ = (3, 4), u = 0 (w_pre), task gradient 0: the optimizer sees g = (3, 4) and the
    penalty is λ/2·‖θ − u‖² = 12.5. A recording SGD(lr 0) shows the gradient."""
    seen, Spy = _gradient_spy()
    reg = {"wdecay": {"lam": 1.0, "target": "pretrained"}}
    _, ctx = _one_step(reg, {}, reference=[0.0, 0.0], grad=[0.0, 0.0], theta=[3.0, 4.0], opt_cls=Spy)
    assert seen[0].tolist() == [[3.0, 4.0]]
    assert float(ctx.penalties["wdecay"]) == pytest.approx(12.5)


@pytest.mark.parametrize("cell", ["wdecay_0.01", "mixout_wdecay_0.7"])
def test_the_wiese_and_mixout_wdecay_rows_default_to_the_papers_l2_form(cell):
    base = compose_run(["+sweeps=table1"], hydra=True)
    reg = compose_run(["+sweeps=table1", *base.hydra.sweeper.cells[cell]]).regularizer
    assert reg.wdecay.form == "l2" and reg.wdecay.target == "pretrained"


def test_the_wdecay_form_study_crosses_devlin_and_wiese_with_both_forms():
    base = compose_run(["+sweeps=wdecay_form"], hydra=True)
    labels = [cell_label(OmegaConf.to_container(compose_run(["+sweeps=wdecay_form", *ov]).regularizer))
              for ov in base.hydra.sweeper.cells.values()]
    assert sorted(labels) == sorted([
        "dropout(0.1)+wdecay(0,0.01)", "dropout(0.1)+wdecay(0,0.01)[l2]",
        "wdecay(w_pre,0.01)", "wdecay(w_pre,0.01)[decoupled]",
    ])


# -- item 3: clipping at 1.0 by default, on the gradient the optimizer sees ----------------------------

def test_clipping_acts_on_the_gradient_the_optimizer_sees_penalty_included():
    """The L2 gradient (3, 4) has norm 5; clipped at 1.0 the optimizer sees (3, 4)·1/(5 + 1e−6)
    (torch's clip adds 1e−6 to the norm) = (0.59999988, 0.79999984)."""
    seen, Spy = _gradient_spy()
    reg = {"wdecay": {"lam": 1.0, "target": "pretrained"}}
    _one_step(reg, {}, reference=[0.0, 0.0], grad=[0.0, 0.0], theta=[3.0, 4.0], opt_cls=Spy, max_grad_norm=1.0)
    assert seen[0][0].tolist() == pytest.approx([0.599999880000024, 0.799999840000032], abs=1e-12)


@pytest.mark.parametrize("max_grad_norm", [None, 1.0, 100.0])
def test_the_step_returns_the_gradient_norm_before_clipping(max_grad_norm):
    """The task gradient g = (0.5, −0.25): ‖g‖ = √(0.25 + 0.0625) = √0.3125 = 0.5590169943749474,
    whether or not the step clips it (clipping at 1.0 or 100 leaves it; the norm is taken first)."""
    toy = _toy(THETA)
    methods = build_methods({})
    ctx = RunContext(model=toy, head=[], init_seed=0, noise_seed=0, total_steps=1)
    lifecycle.prepare(methods, ctx)
    opt = torch.optim.SGD(lifecycle.param_groups(methods, ctx), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    loss = (toy.weight * torch.tensor([GRAD], dtype=torch.float64)).sum()
    norm = optimizer_step(methods, ctx, loss, 0, opt, scheduler, max_grad_norm)
    assert norm == pytest.approx(0.5590169943749474, abs=1e-12)


def test_a_run_records_the_gradient_norm_of_every_step(tmp_path):
    from mixsweep.run.train import run

    cfg = compose_run([*tiny_overrides(tmp_path), "regularizer=none", "train.max_steps=3"])
    out = run(cfg)
    norms = [e.get("grad_norm") for e in out["train_loss"]]
    assert len(norms) == out["extra"]["steps"] >= 2 and all(isinstance(n, float) and n > 0 for n in norms)


def test_a_default_run_clips_the_global_gradient_norm_at_one(tmp_path, monkeypatch):
    from mixsweep.run.train import run

    calls = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm, **kw: calls.append(max_norm)
                        or real(params, max_norm, **kw))
    cfg = compose_run([*tiny_overrides(tmp_path), "regularizer=none", "train.max_steps=2"])
    assert cfg.train.max_grad_norm == 1.0
    assert run(cfg)["status"] == "ok"
    assert calls == [1.0, 1.0]


# -- item 4: the dropout(p) rows leave the new head unregularized -------------------------------------

def test_a_dropout_run_leaves_the_classifier_input_dropout_at_zero(tmp_path):
    from mixsweep.run.train import run
    from test_methods import PROBE

    PROBE.clear()
    cfg = compose_run([*tiny_overrides(tmp_path), "regularizer=dropout", "regularizer.dropout.p=0.5",
                       "+regularizer._probe={}", "train.max_steps=1"])
    assert run(cfg)["status"] == "ok"
    dropouts = PROBE["dropout_after_prepare"]
    assert dropouts.pop("dropout") == 0.0  # BertForSequenceClassification's classifier-input dropout
    assert dropouts and set(dropouts.values()) == {0.5}  # every other dropout is p


# -- issue 32 item 2: Mosbach et al.'s mAdamW decays after the Adam step; their evaluation schedule ------

ADAMW_HF = {"name": "adamw_hf", "lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-6}
DEVLINS_DECAY = {"lam": 0.1, "target": "zero", "form": "decoupled", "head": "zero"}


def test_mosbach_decay_is_madamws_decay_of_the_post_update_theta():
    """uds-lsv/bert-stable-fine-tuning adamw.py ``mAdamW.step``, step 1 with correct_bias, lr 0.1, λ 0.1,
    ε 1e-6, θ = (1, −2), g = (0.5, −0.25): m = 0.1g, v = 0.001g², step size s = lr·√(1−β₂)/(1−β₁)
    = 0.1·0.0316228/0.1 = 0.0316227766; ``addcdiv_(-s, m, √v + ε)`` then ``add_(p, alpha=-lr·λ)``:
      θ₁' = 1 − 0.0316227766·0.05/(0.0158113883 + 1e−6) = 1 − 0.0999936758 = 0.9000063242,
      θ₁ = 0.9000063242·(1 − 0.01) = 0.8910062609;
      θ₂' = −2 − 0.0316227766·(−0.025)/(0.0079056942 + 1e−6) = −2 + 0.0999873525 = −1.9000126475,
      θ₂ = −1.9000126475·0.99 = −1.8810125210.
    devlin's placement (BertAdam's, the pre-update θ) gives θ·0.99 − step: 0.8900063242 and −1.8800126475,
    apart by lr·λ·step ≈ 1.0e−3."""
    post, _ = _one_step({"wdecay": {**DEVLINS_DECAY, "placement": "post_update"}}, ADAMW_HF)
    assert post.weight[0].tolist() == pytest.approx([0.8910062609137922, -1.8810125210357345], abs=1e-12)
    pre, _ = _one_step({"wdecay": DEVLINS_DECAY}, ADAMW_HF)
    assert pre.weight[0].tolist() == pytest.approx([0.8900063241553456, -1.880012647510843], abs=1e-12)


def test_the_mosbach_recipe_places_the_cells_decay_after_the_update_and_leaves_l2_alone():
    cfg = compose_run(["+sweeps=stabilizers", "task=rte", "regularizer=devlin", "+recipe=mosbach2021"])
    (wdecay,) = [m for m in build_methods(OmegaConf.to_container(cfg.regularizer)) if m.name == "wdecay"]
    assert (wdecay.form, wdecay.placement, wdecay.lam) == ("decoupled", "post_update", 0.01)
    assert (cfg.train.eval_at_start, cfg.train.eval_at_epoch_end) == (True, True)
    l2 = compose_run(["task=rte", "regularizer=wdecay", "+recipe=mosbach2021"])
    (wdecay,) = build_methods(OmegaConf.to_container(l2.regularizer))
    assert (wdecay.form, wdecay.placement) == ("l2", "pre_update")  # the L2 gradient has no placement
    mixout = compose_run(["task=rte", "regularizer=mixout", "+recipe=mosbach2021"])
    assert "wdecay" not in [m.name for m in build_methods(OmegaConf.to_container(mixout.regularizer))]


def test_a_tiny_run_under_the_mosbach_recipe_evaluates_at_step_0_each_epoch_end_and_the_cadence(tmp_path):
    """run_finetuning.py: an evaluation before training (global_step 0); during epoch e at batch index i,
    before that batch's update, when global_step = e·n + i is a multiple of eval_logging_steps, > 0, and
    i < n − 1; and after each epoch (global_step = (e + 1)·n). The RTE fixture has 16 training examples:
    batch 2 gives n = 8 steps per epoch; 2 epochs, every 3 steps: the cadence's 3, 6, 9, 12 and 15, but
    15 = 8 + 7 is the last batch index of epoch 2 (i = 7 = n − 1) and is skipped; the epoch ends 8 and 16.
    So the points are 0, 3, 6, 8, 9, 12, 16."""
    from conftest import tiny_overrides
    from mixsweep.run.train import run

    out = run(compose_run([*tiny_overrides(tmp_path), "regularizer=devlin", "+recipe=mosbach2021", "model=tiny",
                           "train.batch_size=2", "train.epochs=2", "train.eval_every=3", "optimizer.lr=1e-3"]))
    assert [point["step"] for point in out["eval_curve"]] == [0, 3, 6, 8, 9, 12, 16]
    assert out["extra"]["steps"] == 16
    plain = run(compose_run([*tiny_overrides(tmp_path), "regularizer=devlin", "train.batch_size=2",
                             "train.epochs=2", "train.eval_every=3"]))
    assert [point["step"] for point in plain["eval_curve"]] == [3, 6, 9, 12, 15, 16]


def test_the_evaluation_flags_off_keep_the_run_id():
    from conftest import tiny_overrides
    from mixsweep.store.runid import plain_config, run_id

    # a config from before the flags existed (they are declared now, off by default: removed here)
    before_cfg = plain_config(compose_run(tiny_overrides(Path("/tmp/x"))))
    for key in ("eval_at_start", "eval_at_epoch_end", "evals_per_run"):
        del before_cfg["train"][key]
    before = run_id(before_cfg)
    off = run_id(compose_run([*tiny_overrides(Path("/tmp/x")), "train.eval_at_start=false",
                              "train.eval_at_epoch_end=false", "train.evals_per_run=null",
                              "+regularizer.wdecay.placement=pre_update"]))
    on = run_id(compose_run([*tiny_overrides(Path("/tmp/x")), "train.eval_at_start=true"]))
    assert before == off != on
