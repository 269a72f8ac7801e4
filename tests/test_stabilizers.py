"""The stabilizer methods (issue 14) through their hooks, against small examples worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import tiny_bert
from mixsweep.optim import BertAdam, build_optimizer, linear_warmup_decay
from mixsweep.regularizers import apply_mixout, lifecycle
from mixsweep.regularizers.base import RegularizerError, RunContext, build_methods, label_of
from mixsweep.regularizers.child_tuning import ChildTuning, mask_gradient
from mixsweep.regularizers.llrd import LLRD
from mixsweep.regularizers.noisytune import NoisyTune, noisy
from mixsweep.regularizers.r3f import R3F, symmetric_kl
from mixsweep.regularizers.recadam import RecAdam, anneal
from mixsweep.regularizers.reinit import ReInit
from mixsweep.run.step import optimizer_step, transform_loss

HEAD = ["classifier"]


def ctx_for(model: nn.Module, *, init_seed: int = 0, noise_seed: int = 0, reference=None) -> RunContext:
    if reference is None:
        reference = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("classifier.")}
    return RunContext(model=model, head=HEAD, init_seed=init_seed, noise_seed=noise_seed, total_steps=10,
                      reference=reference)


def constant_bert(value: float = 7.0, initializer_range: float = 0.5):
    model = tiny_bert()
    model.config.initializer_range = initializer_range
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


# -- re-init -----------------------------------------------------------------------------------

LAYER1_MODULES = [
    "bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.key",
    "bert.encoder.layer.1.attention.self.value", "bert.encoder.layer.1.attention.output.dense",
    "bert.encoder.layer.1.attention.output.LayerNorm", "bert.encoder.layer.1.intermediate.dense",
    "bert.encoder.layer.1.output.dense", "bert.encoder.layer.1.output.LayerNorm", "bert.pooler.dense",
]


def test_reinit_top1_resets_the_top_layer_and_pooler_with_the_models_init():
    model = constant_bert(7.0, initializer_range=0.5)
    m = ReInit({"k": 1})
    m.prepare(ctx_for(model))
    assert m.record()["modules"] == LAYER1_MODULES
    for name, p in model.named_parameters():
        reinit = name.startswith(("bert.encoder.layer.1.", "bert.pooler."))
        if not reinit:
            assert torch.all(p == 7.0), name  # layer 0, embeddings and the head untouched
        elif "LayerNorm.weight" in name:
            assert torch.all(p == 1.0), name
        elif name.endswith("bias"):
            assert torch.all(p == 0.0), name
        else:  # N(0, 0.5²): 1024 or 2048 draws, the sample std is within 0.5 ± 0.05
            w = p.detach()
            assert abs(float(w.mean())) < 0.06 and abs(float(w.std()) - 0.5) < 0.05, name


def test_reinit_is_a_function_of_init_seed():
    a, b, c = constant_bert(), constant_bert(), constant_bert()
    ReInit({"k": 2}).prepare(ctx_for(a, init_seed=3))
    ReInit({"k": 2}).prepare(ctx_for(b, init_seed=3))
    ReInit({"k": 2}).prepare(ctx_for(c, init_seed=4))
    wa, wb, wc = (m.bert.encoder.layer[0].attention.self.query.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_reinit_k_larger_than_the_model_is_an_error_naming_the_key():
    with pytest.raises(RegularizerError, match=r"regularizer\.reinit\.k=3 exceeds the model's 2"):
        ReInit({"k": 3}).prepare(ctx_for(tiny_bert()))


def test_mixout_target_of_a_reinitialized_layer_is_the_new_init():
    model = tiny_bert()
    w_pre0 = model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    apply_mixout(model, 0.9, head_names=HEAD)
    ReInit({"k": 1}).prepare(ctx_for(model))
    top = model.bert.encoder.layer[1].attention.self.query
    bottom = model.bert.encoder.layer[0].attention.self.query
    assert torch.equal(top.target, top.weight)  # reset to the new weights
    assert torch.equal(bottom.target, w_pre0)  # untouched layer keeps w_pre


# -- LLRD --------------------------------------------------------------------------------------

def test_llrd_groups_give_each_depth_eta_times_xi_to_the_L_minus_l_plus_1():
    """revisit-bert-finetuning's run_glue.py: lr *= ξ before each of [embeddings] + layers reversed.
    L = 2, ξ = 0.5: layer 1 (top) 0.5, layer 0 0.25, embeddings 0.125; pooler and head 1."""
    model = tiny_bert()  # L = 2
    groups = LLRD({"xi": 0.5}).param_groups([{"params": list(model.parameters())}], ctx_for(model))
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    expected = {"bert.embeddings.": 0.125, "bert.encoder.layer.0.": 0.25, "bert.encoder.layer.1.": 0.5,
                "bert.pooler.": 1.0, "classifier.": 1.0}
    for name, p in model.named_parameters():
        want = next(v for k, v in expected.items() if name.startswith(k))
        assert scale[id(p)] == want, name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # The optimizer's learning rates read back from the groups: eta = 1e-3.
    opt = torch.optim.SGD([{"params": g["params"], "lr": 1e-3 * g["lr_scale"]} for g in groups], lr=1e-3)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([1.25e-4, 2.5e-4, 5e-4, 1e-3])


def test_llrd_composes_with_groups_that_already_scale_or_fix_the_lr():
    model = tiny_bert()
    emb = list(model.bert.embeddings.parameters())
    rest = [p for p in model.parameters() if all(p is not e for e in emb)]
    groups = LLRD({"xi": 0.5}).param_groups(
        [{"params": emb, "lr_scale": 2.0, "weight_decay": 0.1}, {"params": rest, "lr": 1e-3}], ctx_for(model))
    emb_group = next(g for g in groups if g["params"][0] is emb[0])
    assert emb_group["lr_scale"] == 0.25 and emb_group["weight_decay"] == 0.1  # 2 × 0.5³
    layer0 = next(g for g in groups if any(p is model.bert.encoder.layer[0].output.dense.weight for p in g["params"]))
    assert layer0["lr"] == pytest.approx(2.5e-4) and "lr_scale" not in layer0


def test_llrd_gives_pooler_and_head_weight_decay_0_as_the_reference():
    model = tiny_bert()
    groups = LLRD({"xi": 0.5}).param_groups([{"params": list(model.parameters()), "weight_decay": 0.1}],
                                            ctx_for(model))
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert wd[id(p)] == (0.0 if name.startswith(("bert.pooler.", "classifier.")) else 0.1), name


# -- RecAdam -----------------------------------------------------------------------------------

def test_recadam_anneal_is_the_sigmoid():
    assert anneal(250, 0.5, 250) == 0.5
    assert anneal(252, 0.5, 250) == pytest.approx(0.7310586)  # 1 / (1 + e^-1)
    assert anneal(0, 0.5, 250) == pytest.approx(1 / (1 + math.exp(125)))
    assert anneal(10_000, 1.0, 0) == 1.0


def test_recadam_update_on_a_hand_example():
    """RecAdam.py step(), t = 1, no bias correction (bertadam), ε = 0, lr 0.1, γ 2, k 1, t₀ 1 (λ = ½):
    θ = (1, 2), θ_pre = 0, g = (0.5, −1): m = 0.1g, √v = √0.001·|g|, m/√v = (3.1622777, −3.1622777).
    Adam step × λ: θ' = θ − 0.1·½·(3.1622777, −3.1622777) = (0.8418861, 2.1581139);
    pull on θ': θ'' = θ' − 0.1·½·2·θ' = 0.9·θ' = (0.7576975, 1.9423025)."""
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ctx = ctx_for(model, reference={"weight": torch.zeros(1, 2)})
    m = RecAdam({"gamma": 2.0, "k": 1.0, "t0": 1})
    opt = BertAdam(model.parameters(), lr=0.1, eps=0.0)
    model.weight.grad = torch.tensor([[0.5, -1.0]])
    m.update(opt, 0, ctx)
    assert model.weight[0].tolist() == pytest.approx([0.7576975, 1.9423025], abs=1e-6)
    assert m.record()["last_lambda"] == 0.5
    assert m.transform_loss(torch.tensor(4.0), 0, ctx) == 4.0  # the task loss is left alone


# -- Child-Tuning_F ----------------------------------------------------------------------------

def test_child_tuning_mask_on_a_hand_example():
    g = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert mask_gradient(g, torch.tensor([1.0, 0.0, 1.0, 1.0]), 0.5).tolist() == [2.0, 0.0, 6.0, 8.0]


def _grads_after_child_tuning(seed: int, steps: int = 1):
    model = tiny_bert()
    m, ctx = ChildTuning({"p_f": 0.5}), None
    ctx = ctx_for(model, noise_seed=seed)
    for step in range(steps):
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        m.before_step(step, 1e-3, ctx)
    return {n: p.grad.clone() for n, p in model.named_parameters()}, m


def test_child_tuning_masks_every_gradient_head_included():
    """ChildTuningAdamW.step masks every parameter it holds; ChildTuningF.py gives it the whole model."""
    grads, m = _grads_after_child_tuning(0)
    values = torch.cat([g.flatten() for g in grads.values()])
    assert set(values.unique().tolist()) == {0.0, 2.0}  # ones × Bernoulli(0.5) / 0.5
    assert abs(float((values == 2.0).float().mean()) - 0.5) < 0.02  # ~60k entries
    assert set(grads["classifier.weight"].unique().tolist()) == {0.0, 2.0}
    assert m.record()["kept_last_step"] == pytest.approx(float((values == 2.0).float().mean()))


def test_child_tuning_masks_follow_noise_seed_and_change_every_step():
    a, _ = _grads_after_child_tuning(1)
    b, _ = _grads_after_child_tuning(1)
    c, _ = _grads_after_child_tuning(2)
    d, _ = _grads_after_child_tuning(1, steps=2)
    w = "bert.encoder.layer.0.output.dense.weight"
    assert torch.equal(a[w], b[w]) and not torch.equal(a[w], c[w]) and not torch.equal(a[w], d[w])


# -- NoisyTune ---------------------------------------------------------------------------------

def test_noisytune_on_a_hand_example():
    theta = torch.tensor([1.0, 2.0, 3.0, 4.0])  # unbiased std = 1.2909944
    u = torch.tensor([0.0, 0.25, 0.5, 0.75])
    assert noisy(theta, u, 0.15).tolist() == pytest.approx([0.9031754, 1.9515877, 3.0, 4.0484123], abs=1e-6)


def test_noisytune_perturbs_every_tensor_within_lambda_half_std():
    """The paper's snippet loops over all model.named_parameters(): the head is perturbed too."""
    model = tiny_bert()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    m = NoisyTune({"lam": 0.15})
    m.prepare(ctx_for(model, init_seed=5))
    assert m.record()["tensors"] == len(before)
    for name, p in model.named_parameters():
        delta = p.detach() - before[name]
        bound = 0.15 / 2 * float(before[name].std())
        assert float(delta.abs().max()) <= bound * (1 + 1e-4) + 1e-7, name
        if bound > 0:
            assert float(delta.abs().max()) > bound / 2, name  # noise of the right scale was added
    again = tiny_bert()
    NoisyTune({"lam": 0.15}).prepare(ctx_for(again, init_seed=5))
    assert torch.equal(again.bert.pooler.dense.weight, model.bert.pooler.dense.weight)


# -- R3F ---------------------------------------------------------------------------------------

def test_symmetric_kl_on_hand_examples():
    p = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # P = (1/2, 1/2)
    q = torch.tensor([[math.log(3.0), 0.0]] * 2)  # Q = (3/4, 1/4)
    # (1/2 − 3/4)(ln 1/2 − ln 3/4) + (1/2 − 1/4)(ln 1/2 − ln 1/4) = 0.1013663 + 0.1732868
    assert float(symmetric_kl(p, q)) == pytest.approx(0.2746531, rel=1e-6)
    assert float(symmetric_kl(p, p)) == 0.0
    # Regression: (1 − 1.5)² and 0, averaged over the batch.
    assert float(symmetric_kl(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.0]]))) == pytest.approx(0.125)


def _r3f_step(eps: float, seed: int = 0):
    model = tiny_bert().eval()  # dropout off: the two passes differ only by z
    batch = {"input_ids": torch.tensor([[2, 5, 7, 3], [2, 9, 3, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]), "labels": torch.tensor([0, 1])}
    ctx = ctx_for(model, noise_seed=seed)
    out = model(**batch)
    ctx.batch, ctx.outputs = batch, out
    m = R3F({"lam": 1.0, "eps": eps})
    loss = m.transform_loss(out.loss, 0, ctx)
    return model, out.loss, loss, m


def test_r3f_adds_lambda_times_the_symmetric_kl_of_a_second_pass():
    model, task, loss, m = _r3f_step(1.0)
    kl = m.record()["last_kl"]
    assert kl > 0 and float(loss.detach()) == pytest.approx(float(task.detach()) + kl, rel=1e-6)
    loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is not None
    _, task0, loss0, m0 = _r3f_step(1e-12)  # vanishing noise: the two passes agree
    assert m0.record()["last_kl"] < 1e-9 and float(loss0.detach()) == pytest.approx(float(task0.detach()))
    assert _r3f_step(1.0, seed=0)[3].record()["last_kl"] == kl != _r3f_step(1.0, seed=1)[3].record()["last_kl"]


def test_r3f_on_a_regression_output_adds_nothing_unless_asked():
    model = tiny_bert(num_labels=1).eval()
    batch = {"input_ids": torch.tensor([[2, 5, 7, 3]]), "labels": torch.tensor([1.5])}
    ctx = ctx_for(model)
    out = model(**batch)
    ctx.batch, ctx.outputs = batch, out
    assert R3F({"eps": 1.0}).transform_loss(out.loss, 0, ctx) is out.loss  # fairseq: no term
    m = R3F({"eps": 1.0, "regression": "gaussian"})  # our extension, off by default
    assert float(m.transform_loss(out.loss, 0, ctx).detach()) > float(out.loss.detach())
    assert m.label() == "r3f(1,1,gaussian)"


def test_r3f_without_the_batch_in_the_context_is_an_error():
    model = tiny_bert()
    with pytest.raises(RegularizerError, match="regularizer.r3f needs the step's batch"):
        R3F({}).transform_loss(torch.tensor(1.0), 0, ctx_for(model))


# -- settings, labels, combinations -------------------------------------------------------------

@pytest.mark.parametrize("method,cfg,message", [
    ("reinit", {"k": 0}, r"regularizer\.reinit\.k=0 must be an integer in \[1, 6\]"),
    ("reinit", {"k": 7}, r"regularizer\.reinit\.k=7 must be an integer in \[1, 6\]"),
    ("reinit", {"k": 1.5}, r"regularizer\.reinit\.k=1\.5 must be an integer"),
    ("llrd", {"xi": 0}, r"regularizer\.llrd\.xi=0 must be a number in \(0, 1\]"),
    ("llrd", {"xi": 1.2}, r"regularizer\.llrd\.xi=1\.2 must be a number in \(0, 1\]"),
    ("recadam", {"gamma": -1}, r"regularizer\.recadam\.gamma=-1 must be a number in \[0, inf\)"),
    ("recadam", {"k": 0}, r"regularizer\.recadam\.k=0 must be a number in \(0, inf\)"),
    ("recadam", {"t0": "x"}, r"regularizer\.recadam\.t0='x' must be a number"),
    ("child_tuning", {"p_f": 0}, r"regularizer\.child_tuning\.p_f=0 must be a number in \(0, 1\]"),
    ("noisytune", {"lam": 2}, r"regularizer\.noisytune\.lam=2 must be a number in \(0, 1\]"),
    ("r3f", {"eps": 0}, r"regularizer\.r3f\.eps=0 must be a number in \(0, inf\)"),
    ("r3f", {"noise": "laplace"}, r"regularizer\.r3f\.noise='laplace' is not one of uniform, normal"),
    ("r3f", {"sigma": 1}, r"unknown setting regularizer\.r3f\.sigma"),
    ("r3f", {"regression": "mse"}, r"regularizer\.r3f\.regression='mse' is not one of none, gaussian"),
])
def test_bad_settings_name_the_key_and_the_range(method, cfg, message):
    with pytest.raises(RegularizerError, match=message):
        build_methods({method: cfg})


def test_labels_of_the_defaults():
    assert label_of(build_methods({"reinit": {"k": 3}})) == "reinit(3)"
    assert label_of(build_methods({"llrd": {}})) == "llrd(0.95)"
    assert label_of(build_methods({"recadam": {}})) == "recadam(5000,0.5,250)"
    assert label_of(build_methods({"child_tuning": {}})) == "child_tuning_f(0.3)"
    assert label_of(build_methods({"noisytune": {}})) == "noisytune(0.15)"
    assert label_of(build_methods({"r3f": {}})) == "r3f(1,1e-05)"
    assert build_methods({"child_tuning": {"p_f": 1.0}, "r3f": {"lam": 0}}) == []  # no-ops drop out


def test_every_stabilizer_together_on_one_model():
    """All six on one model through the runners' shared lifecycle: re-init, noise, groups, loss, update."""
    model = tiny_bert()
    apply_mixout(model, 0.9, head_names=HEAD)
    methods = build_methods({"reinit": {"k": 1}, "llrd": {"xi": 0.9}, "recadam": {"t0": 0},
                             "child_tuning": {"p_f": 0.5}, "noisytune": {}, "r3f": {"eps": 1e-3}})
    ctx = RunContext(model=model, head=HEAD, init_seed=0, noise_seed=0, total_steps=2)
    lifecycle.prepare(methods, ctx)
    opt = build_optimizer(lifecycle.param_groups(methods, ctx),
                          {"name": "adamw_hf", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-6})
    ctx.optimizer = opt
    scheduler = linear_warmup_decay(opt, 2, 0.0)
    model.train()
    batch = {"input_ids": torch.tensor([[2, 5, 7, 3]]), "labels": torch.tensor([1])}
    for step in range(2):
        out = model(**batch)
        ctx.batch, ctx.outputs = batch, out
        loss, _ = transform_loss(methods, out.loss, step, ctx)
        optimizer_step(methods, ctx, loss, step, opt, scheduler, 1.0)
    assert torch.isfinite(loss)
    top = model.bert.encoder.layer[1].attention.self.query
    assert not torch.equal(top.target, top.weight)  # trained away from its (new, noisy) start
    assert all(m.record() for m in methods)
    records = {m.name: m.record() for m in methods}
    assert records["recadam"]["last_lambda"] is not None and records["child_tuning"]["kept_last_step"] is not None


def test_recadam_init_setting_label_and_the_ids_of_stored_runs():
    """Issue 32 item 3: ``init`` random (run_glue_with_RecAdam.py without --start_from_pretrain, the
    README's commands; the default) or pretrained (--start_from_pretrain, what every run before the
    setting did). The stored runs keep their ids under init=pretrained: a3e42b556609 is the run id of the
    stabilizers lab's recadam@bertadam cell on RTE, seed 0, computed at c58dbc6 (before the setting)."""
    from mixsweep.store.runid import run_id
    from mixsweep.sweeping.compose import compose_run

    cell = ["+sweeps=stabilizers", "task=rte", "seed=0", "optimizer=bertadam", "regularizer=devlin",
            "++regularizer.recadam.gamma=5000", "++regularizer.recadam.k=0.5", "++regularizer.recadam.t0=100"]
    assert run_id(compose_run([*cell, "++regularizer.recadam.init=pretrained"])) == "a3e42b556609"
    assert run_id(compose_run(cell)) == run_id(compose_run([*cell, "++regularizer.recadam.init=random"]))
    assert run_id(compose_run(cell)) != "a3e42b556609"  # the random start is another experiment
    assert label_of(build_methods({"recadam": {"t0": 100}})) == "recadam(5000,0.5,100)"
    assert label_of(build_methods({"recadam": {"t0": 100, "init": "pretrained"}})) == "recadam(5000,0.5,100)[pretrained]"
    with pytest.raises(RegularizerError, match=r"regularizer\.recadam\.init='warm' is not one of random, pretrained"):
        build_methods({"recadam": {"init": "warm"}})


def test_recadam_random_init_is_the_models_own_init_and_the_pull_targets_the_pretrained_weights():
    """With init=random the body starts at BERT's _init_weights (LayerNorm 1 and 0, biases 0, weights of
    std initializer_range), the head is left at the runner's init, and ctx.reference (taken after
    prepare, what other methods pull toward) is the random start, while RecAdam keeps θ_pre."""
    model = constant_bert(7.0, initializer_range=0.5)
    head_before = model.classifier.weight.detach().clone()
    methods = build_methods({"recadam": {}})
    ctx = ctx_for(model)
    lifecycle.prepare(methods, ctx)
    ln = model.bert.encoder.layer[0].output.LayerNorm
    assert ln.weight.eq(1.0).all() and ln.bias.eq(0.0).all()
    assert model.bert.pooler.dense.bias.eq(0.0).all()
    q = model.bert.encoder.layer[0].attention.self.query.weight.detach()
    assert abs(float(q.std()) - 0.5) < 0.1 and abs(float(q.mean())) < 0.1  # was constant 7
    assert torch.equal(model.classifier.weight, head_before)
    assert torch.equal(ctx.reference["bert.encoder.layer.0.attention.self.query.weight"], q)
    pre = methods[0]._references(ctx)[id(model.bert.encoder.layer[0].attention.self.query.weight)]
    assert pre.eq(7.0).all()  # the pull's target is the pretrained weight, not the random start
