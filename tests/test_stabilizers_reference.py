"""Differential tests: each stabilizer through the harness's own step path against an independent
re-implementation of its authors' reference update (issue 20).

The harness side runs the runner's sequence (``lifecycle.prepare`` → ``param_groups`` →
``optim.build_optimizer`` → per step ``transform_loss`` and ``optimizer_step`` with clipping and the
linear schedule). The reference side is written here from the reference source named in each test,
on a deep copy of the same model, with its own Adam, clipping and schedule; no harness function
computes an expectation. Random draws (Child-Tuning's masks, R3F's noise, NoisyTune's noise) come from
the same seeded stream on both sides (``anatomy.generator``: the stream, not the update under test),
drawn in the order the reference draws them. Parameters must agree to 1e-6 after every step.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import tiny_bert
from mixsweep.optim import build_optimizer, linear_warmup_decay
from mixsweep.regularizers import head_module_names, lifecycle
from mixsweep.regularizers.anatomy import generator
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, build_methods
from mixsweep.run.step import optimizer_step, transform_loss

K = 6  # steps
BETAS = (0.9, 0.999)
EPS = 1e-6
TOL = 1e-6


def fixed_batches(num_labels: int = 2, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(K):
        ids = torch.randint(1, 40, (4, 7), generator=g)
        mask = torch.ones_like(ids)
        mask[0, 5:] = 0
        mask[2, 3:] = 0
        labels = (torch.randint(0, num_labels, (4,), generator=g) if num_labels > 1
                  else torch.rand(4, generator=g) * 5)
        out.append({"input_ids": ids * mask, "attention_mask": mask, "labels": labels})
    return out


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def run_harness(model, reg, batches, *, optimizer="bertadam", lr=1e-3, max_norm=0.05, seed=0, warmup=0.0,
                dropout_seed=None):
    """The runner's step path (train.run's loop without data loading or evaluation). ``dropout_seed``:
    torch's global stream is seeded with ``dropout_seed + step`` before each step's forward, as the
    reference side does, so dropout draws the same masks on both sides."""
    methods = build_methods(reg)
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=seed, noise_seed=seed,
                     total_steps=len(batches))
    lifecycle.prepare(methods, ctx)
    opt = build_optimizer(lifecycle.param_groups(methods, ctx),
                          {"name": optimizer, "lr": lr, "betas": list(BETAS), "eps": EPS})
    ctx.optimizer = opt
    scheduler = linear_warmup_decay(opt, len(batches), warmup)
    model.train()
    traj = []
    for step, batch in enumerate(batches):
        if dropout_seed is not None:
            torch.manual_seed(dropout_seed + step)
        out = model(**batch)
        ctx.batch, ctx.outputs = batch, out
        loss, _ = transform_loss(methods, out.loss, step, ctx)
        optimizer_step(methods, ctx, loss, step, opt, scheduler, max_norm)
        ctx.penalties.clear()
        traj.append(snapshot(model))
    return traj


# -- the reference side's own pieces ---------------------------------------------------------------

def linear_lr(base: float, step: int, total: int) -> float:
    """transformers' get_linear_schedule_with_warmup with 0 warmup steps, at 0-based step ``step``."""
    return base * max(0.0, (total - step) / max(1, total))


def clip_(params, max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ semantics: scale by max_norm / (‖g‖ + 1e-6) when that is < 1."""
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)


def moments(state: dict, p: torch.Tensor, g: torch.Tensor):
    """Adam's moment update as in RecAdam.py / ChildTuningOptimizer.py ``step()``: returns (t, m, √v + ε)."""
    st = state.setdefault(p, {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
    st["t"] += 1
    st["m"] = BETAS[0] * st["m"] + (1 - BETAS[0]) * g
    st["v"] = BETAS[1] * st["v"] + (1 - BETAS[1]) * g * g
    return st["t"], st["m"], st["v"].sqrt() + EPS


def hf_step_size(lr: float, t: int, correct_bias: bool) -> float:
    """transformers-style AdamW (RecAdam.py, ChildTuningOptimizer.py): lr·√(1−β₂ᵗ)/(1−β₁ᵗ) or lr."""
    if not correct_bias:
        return lr
    return lr * math.sqrt(1 - BETAS[1] ** t) / (1 - BETAS[0] ** t)


@torch.no_grad()
def hf_adam_(state, params_lrs, correct_bias: bool) -> None:
    """One transformers-style Adam step (weight decay 0) for (param, lr) pairs."""
    for p, lr in params_lrs:
        if p.grad is None:
            continue
        t, m, denom = moments(state, p, p.grad)
        p.sub_(hf_step_size(lr, t, correct_bias) * m / denom)


@torch.no_grad()
def torch_adamw_(state, params_lrs) -> None:
    """torch.optim.AdamW's update (weight decay 0): θ −= lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)."""
    for p, lr in params_lrs:
        st = state.setdefault(p, {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
        st["t"] += 1
        t = st["t"]
        st["m"] = BETAS[0] * st["m"] + (1 - BETAS[0]) * p.grad
        st["v"] = BETAS[1] * st["v"] + (1 - BETAS[1]) * p.grad * p.grad
        denom = st["v"].sqrt() / math.sqrt(1 - BETAS[1] ** t) + EPS
        p.sub_(lr / (1 - BETAS[0] ** t) * st["m"] / denom)


def assert_same(traj_a, traj_b) -> None:
    assert len(traj_a) == len(traj_b) == K
    for step, (a, b) in enumerate(zip(traj_a, traj_b, strict=True)):
        for name in a:
            diff = float((a[name] - b[name]).abs().max())
            assert diff <= TOL, f"step {step + 1}: {name} differs by {diff:.3g}"


def models(num_labels: int = 2, pretrained_like: bool = False):
    """The harness's model and the reference's copy. ``pretrained_like``: every parameter moved by a fixed
    N(0, 0.05²) draw first, so biases and LayerNorm are not at their init values (1 and 0) as in a
    pretrained model, and a re-init or decay that skips or wrongly touches them shows."""
    model = tiny_bert(num_labels)
    if pretrained_like:
        gen = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    ref = copy.deepcopy(model).eval()  # eval(): dropout off, as the harness's dropout 0 (BERT has no batch norm)
    return model, ref


def reference_loop(ref, batches, *, lr, max_norm, update, loss_fn=None):
    """Forward, loss, backward, clip, ``update(step, lr_t)``: the reference scripts' loop."""
    traj = []
    for step, batch in enumerate(batches):
        loss = ref(**batch).loss if loss_fn is None else loss_fn(step, batch)
        loss.backward()
        clip_(ref.parameters(), max_norm)
        update(step, linear_lr(lr, step, len(batches)))
        for p in ref.parameters():
            p.grad = None
        traj.append(snapshot(ref))
    return traj


# -- RecAdam -----------------------------------------------------------------------------------------

@torch.no_grad()
def _recadam_step_(state, pre, named_lr, *, gamma, k, t0, correct_bias) -> None:
    """Sanyuan-Chen/RecAdam RecAdam.py ``RecAdam.step`` (anneal_function 'sigmoid') over ``(name, param, lr)``:
    names with "bert" take the Adam step × λ(t) = sigmoid(k(t − t0)) and the pull lr·(1 − λ)·γ·(θ − θ_pre)
    toward ``pre`` (not the start); the classifier (anneal_w = 0) the plain Adam step."""
    for name, p, lr_g in named_lr:
        t, m, denom = moments(state, p, p.grad)
        size = hf_step_size(lr_g, t, correct_bias)
        if "bert" in name:
            lam = 1 / (1 + math.exp(-k * (t - t0)))
            p.sub_(size * lam * m / denom)
            p.sub_(lr_g * (1 - lam) * gamma * (p - pre[name]))
        else:
            p.sub_(size * m / denom)


@pytest.mark.parametrize("optimizer,correct_bias", [("adamw", True), ("bertadam", False), ("adamw_hf", True)])
def test_recadam_matches_the_reference_optimizer_step(optimizer, correct_bias):
    """Sanyuan-Chen/RecAdam: RecAdam.py ``RecAdam.step`` (anneal_function 'sigmoid', weight 1) with the
    parameter groups of run_glue_with_RecAdam.py ``train`` (names with "bert" annealed and pulled,
    the classifier anneal_w = 0: plain Adam step); correct_bias as the configured optimizer."""
    gamma, k, t0, lr = 100.0, 1.0, 3.0, 1e-3  # pull factor lr·γ = 0.1: the order of step and pull shows
    model, ref = models()
    batches = fixed_batches()
    pre = snapshot(ref)
    state: dict = {}

    def update(step, lr_t):
        _recadam_step_(state, pre, [(n, p, lr_t) for n, p in ref.named_parameters()], gamma=gamma, k=k, t0=t0,
                       correct_bias=correct_bias)

    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, update=update)
    got = run_harness(model, {"recadam": {"gamma": gamma, "k": k, "t0": t0, "init": "pretrained"}}, batches,
                      optimizer=optimizer, lr=lr, max_norm=1.0)
    assert_same(got, expected)
    # The head trains at Adam's pace while the body is held near θ_pre early on (λ(1) ≈ 0.12).
    head_move = float((got[-1]["classifier.weight"] - pre["classifier.weight"]).abs().max())
    assert head_move > 1e-4


@torch.no_grad()
def _recadam_random_body_(ref, gen) -> None:
    """``model_class(config)``: the body at BERT's own random init (Linear and Embedding weights
    N(0, initializer_range²), biases 0, padding row 0, LayerNorm 1 and 0), drawn in ``modules`` order."""
    std = ref.config.initializer_range
    for m in ref.bert.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.copy_(torch.empty(m.weight.shape).normal_(0.0, std, generator=gen))
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.zero_()
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()


@pytest.mark.parametrize("optimizer,correct_bias", [("adamw_hf", True)])
def test_recadam_by_default_starts_from_a_random_init_pulled_toward_the_pretrained_weights(optimizer, correct_bias):
    """Sanyuan-Chen/RecAdam run_glue_with_RecAdam.py without --start_from_pretrain (both README commands):
    ``new_model = model_class(config=config)`` (BERT's _init_weights: Linear and Embedding weights
    N(0, initializer_range²), biases 0, padding row 0, LayerNorm 1 and 0) is trained, and the pull goes
    toward the separately loaded ``pretrained_model``. The draws come from the stream the harness uses
    (``generator(init_seed, "recadam")``, in ``named_modules`` order); the head keeps its own init."""
    gamma, k, t0, lr = 100.0, 1.0, 3.0, 1e-3
    model, ref = models()
    batches = fixed_batches()
    pre = snapshot(ref)
    _recadam_random_body_(ref, generator(0, "recadam"))
    start = snapshot(ref)
    assert float((start["bert.encoder.layer.0.attention.self.query.weight"]
                  - pre["bert.encoder.layer.0.attention.self.query.weight"]).abs().max()) > 1e-3
    state: dict = {}

    def update(step, lr_t):  # the pull goes toward θ_pre, not the random start
        _recadam_step_(state, pre, [(n, p, lr_t) for n, p in ref.named_parameters()], gamma=gamma, k=k, t0=t0,
                       correct_bias=correct_bias)

    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, update=update)
    got = run_harness(model, {"recadam": {"gamma": gamma, "k": k, "t0": t0}}, batches,
                      optimizer=optimizer, lr=lr, max_norm=1.0)
    assert_same(got, expected)


# -- LLRD --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["bertadam", "adamw"])
def test_llrd_matches_revisit_bert_finetuning_groups(optimizer):
    """asappresearch/revisit-bert-finetuning: run_glue.py ``get_optimizer_grouped_parameters`` (classifier
    and pooler at η; [embeddings] + layers reversed, ``lr *= ξ`` before each assignment), then its
    optimizer: transformers AdamW with correct_bias = not --use_bertadam (bertadam), or torch AdamW
    (--use_torch_adamw, our adamw)."""
    xi, lr = 0.5, 1e-3
    model, ref = models()
    batches = fixed_batches()
    groups = [([p for n, p in ref.named_parameters() if "classifier" in n or "pooler" in n], lr)]
    layer_lr = lr
    for layer in reversed([ref.bert.embeddings, *ref.bert.encoder.layer]):
        layer_lr *= xi
        groups.append((list(layer.parameters()), layer_lr))
    assert sum(len(ps) for ps, _ in groups) == len(list(ref.parameters()))
    state: dict = {}

    def update(step, lr_t):
        factor = lr_t / lr  # the schedule scales every group's initial lr alike
        pairs = [(p, g_lr * factor) for ps, g_lr in groups for p in ps]
        if optimizer == "bertadam":
            hf_adam_(state, pairs, correct_bias=False)
        else:
            torch_adamw_(state, pairs)

    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, update=update)
    got = run_harness(model, {"llrd": {"xi": xi}}, batches, optimizer=optimizer, lr=lr, max_norm=1.0)
    assert_same(got, expected)


@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_llrd_with_devlins_decay_leaves_the_pooler_and_head_undecayed(optimizer, correct_bias):
    """Issue 32 item 4: LLRD's pooler and head train at η with weight decay 0 (revisit-bert-finetuning
    run_glue.py ``get_optimizer_grouped_parameters``: the classifier and pooler group has
    ``"weight_decay": 0.0``; in each of [embeddings] + layers reversed, names without "bias" or
    "LayerNorm.weight" get ``args.weight_decay`` and the rest 0) also when the decay is the lab's: devlin's
    wdecay(0, λ), head "zero", decoupled on the pre-update θ at each group's lr (BertAdam's placement, what
    the cell runs). λ = 5 makes one step's decay lr·λ = 5e-3 of a weight, far above the tolerance."""
    xi, lr, lam = 0.5, 1e-3, 5.0
    model, ref = models()
    batches = fixed_batches()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [([p for n, p in ref.named_parameters() if "classifier" in n or "pooler" in n], lr, 0.0)]
    layer_lr = lr
    for layer in reversed([ref.bert.embeddings, *ref.bert.encoder.layer]):
        layer_lr *= xi
        named = list(layer.named_parameters())
        groups.append(([p for n, p in named if not any(nd in n for nd in no_decay)], layer_lr, lam))
        groups.append(([p for n, p in named if any(nd in n for nd in no_decay)], layer_lr, 0.0))
    assert sum(len(ps) for ps, _, _ in groups) == len(list(ref.parameters()))
    state: dict = {}

    @torch.no_grad()
    def update(step, lr_t):
        factor = lr_t / lr
        for ps, g_lr, wd in groups:
            for p in ps:
                p.mul_(1 - g_lr * factor * wd)  # decoupled decay of the pre-update θ
        hf_adam_(state, [(p, g_lr * factor) for ps, g_lr, _ in groups for p in ps], correct_bias=correct_bias)

    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, update=update)
    devlins_decay = {"lam": lam, "target": "zero", "form": "decoupled", "head": "zero"}
    got = run_harness(model, {"llrd": {"xi": xi}, "wdecay": devlins_decay}, batches, optimizer=optimizer, lr=lr,
                      max_norm=1.0)
    assert_same(got, expected)


# -- re-init -----------------------------------------------------------------------------------------

@torch.no_grad()
def _reinit_reference_(ref, layers: int, gen) -> None:
    """asappresearch/revisit-bert-finetuning run_glue.py (``--reinit_pooler --reinit_layers L``, BERT):
    ``pooler.dense.weight.data.normal_(0, initializer_range)``, its bias zeroed; then for each ``layer`` in
    ``encoder.layer[-L:]``, each ``module`` in ``layer.modules()``: Linear/Embedding weights
    ``normal_(0, initializer_range)``, BertLayerNorm bias 0 and weight 1, Linear biases 0. The reference
    draws from torch's global RNG, pooler first; here the draws come from the harness's stream
    (``generator(init_seed, "reinit")``) in the harness's module order, the layers then the pooler (shared
    as the stream is: which draw lands where is not the update under test)."""
    std = ref.config.initializer_range
    encoder_temp = ref.bert
    for layer in encoder_temp.encoder.layer[-layers:]:
        for module in layer.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.data.normal_(mean=0.0, std=std, generator=gen)
            elif isinstance(module, nn.LayerNorm):
                module.bias.data.zero_()
                module.weight.data.fill_(1.0)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
    encoder_temp.pooler.dense.weight.data.normal_(mean=0.0, std=std, generator=gen)
    encoder_temp.pooler.dense.bias.data.zero_()


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_reinit_matches_revisit_bert_finetuning(layers, optimizer, correct_bias):
    """Re-init of the pooler and the top L layers as revisit-bert-finetuning's run_glue.py (see
    ``_reinit_reference_``), then plain finetuning with the configured Adam; every other parameter
    (embeddings, lower layers, the head) keeps its value."""
    lr, seed = 1e-3, 9
    model, ref = models(pretrained_like=True)
    batches = fixed_batches()
    before = snapshot(ref)
    _reinit_reference_(ref, layers, generator(seed, "reinit"))
    after = snapshot(ref)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    top = f"bert.encoder.layer.{2 - layers}."
    assert "bert.pooler.dense.weight" in moved and f"{top}attention.self.query.weight" in moved
    assert not any(n.startswith(("bert.embeddings.", "classifier.")) for n in moved)
    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0,
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"reinit": {"k": layers}}, batches, optimizer=optimizer, lr=lr, max_norm=1.0, seed=seed)
    assert_same(got, expected)


# -- Child-Tuning_F ----------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_child_tuning_f_matches_the_reference_optimizer_step(optimizer, correct_bias):
    """PKUnlp-icler/ChildTuning: ChildTuningOptimizer.py ``ChildTuningAdamW.step`` (mode ChildTuning-F)
    over every parameter ChildTuningF.py hands it (head included): after the Trainer's clipping, each
    gradient × Bernoulli(p)/p, then its Adam (correct_bias as the configured optimizer). Clipping is active
    (max norm 0.05), so masking before it would show."""
    p_f, lr, seed = 0.3, 1e-3, 7
    model, ref = models()
    batches = fixed_batches()
    gen = generator(seed, "child_tuning")
    state: dict = {}

    @torch.no_grad()
    def update(step, lr_t):
        for p in ref.parameters():
            mask = torch.empty_like(p.grad).bernoulli_(p_f, generator=gen)
            p.grad.mul_(mask / p_f)
        hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias)

    expected = reference_loop(ref, batches, lr=lr, max_norm=0.05, update=update)
    got = run_harness(model, {"child_tuning": {"p_f": p_f}}, batches, optimizer=optimizer, lr=lr, max_norm=0.05,
                      seed=seed)
    assert_same(got, expected)


# -- R3F ---------------------------------------------------------------------------------------------

def _symm_kl(noised_logits, input_logits):
    """fairseq SentencePredictionR3F._get_symm_kl: KL(P‖Q) + KL(Q‖P) summed, over the batch size."""
    return (F.kl_div(F.log_softmax(noised_logits, -1, dtype=torch.float32),
                     F.softmax(input_logits, -1, dtype=torch.float32), reduction="sum")
            + F.kl_div(F.log_softmax(input_logits, -1, dtype=torch.float32),
                       F.softmax(noised_logits, -1, dtype=torch.float32), reduction="sum")) / noised_logits.size(0)


@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_r3f_matches_fairseq_sentence_prediction_r3f(optimizer, correct_bias):
    """facebookresearch/fairseq: examples/rxf/rxf_src/sentence_prediction_r3f.py
    ``SentencePredictionR3F.forward``: noisy pass from ``token_embeddings.detach().clone() + noise``,
    loss = NLL + λ·symm KL (fairseq's sum·sample_size / sample_size = our batch mean). ε is large here
    so the noisy pass's gradient is visible."""
    lam, eps, lr, seed = 1.0, 0.5, 1e-3, 3
    model, ref = models()
    batches = fixed_batches()
    gen = generator(seed, "r3f")

    def loss_fn(step, batch):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        input_logits = ref(input_ids=ids, attention_mask=mask).logits
        token_embeddings = ref.bert.embeddings.word_embeddings(ids)
        noise = torch.empty(token_embeddings.shape).uniform_(-eps, eps, generator=gen)
        noised = token_embeddings.detach().clone() + noise
        noised_logits = ref(inputs_embeds=noised, attention_mask=mask).logits
        nll = F.nll_loss(F.log_softmax(input_logits, -1, dtype=torch.float32), batch["labels"])
        return nll + lam * _symm_kl(noised_logits, input_logits)

    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, loss_fn=loss_fn,
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"r3f": {"lam": lam, "eps": eps}}, batches, optimizer=optimizer, lr=lr, max_norm=1.0,
                      seed=seed)
    assert_same(got, expected)


@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_r3f_adds_no_term_on_a_regression_target_by_default(optimizer, correct_bias):
    """fairseq's ``regression_target`` branch: plain MSE, no R3F term (our ``regression: none``)."""
    lr = 1e-3
    model, ref = models(num_labels=1)
    batches = fixed_batches(num_labels=1)

    def loss_fn(step, batch):
        logits = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.mse_loss(logits.squeeze(-1).float(), batch["labels"].float())

    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, loss_fn=loss_fn,
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"r3f": {"lam": 1.0, "eps": 0.5}}, batches, optimizer=optimizer, lr=lr, max_norm=1.0)
    assert_same(got, expected)


# -- NoisyTune ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_noisytune_matches_the_papers_snippet_then_trains_like_plain_finetuning(optimizer, correct_bias):
    """Wu et al. 2022 §2 (no repository; the paper's snippet): for every (name, para) in
    model.named_parameters(): para += (rand(size) − 0.5)·λ·std(para), head included. A one-element
    tensor has no unbiased std (the snippet would write NaN) and is skipped; none exists here."""
    lam, lr, seed = 0.15, 1e-3, 5
    model, ref = models()
    batches = fixed_batches()
    before = snapshot(ref)
    gen = generator(seed, "noisytune")
    with torch.no_grad():
        for _, para in ref.named_parameters():
            if para.numel() < 2:
                continue
            para += (torch.rand(para.size(), generator=gen) - 0.5) * lam * torch.std(para)
    assert all(not torch.equal(before[n], p) for n, p in ref.named_parameters() if float(before[n].std()) > 0)
    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0,
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"noisytune": {"lam": lam}}, batches, optimizer=optimizer, lr=lr, max_norm=1.0,
                      seed=seed)
    assert_same(got, expected)


# -- the optimizer under every method ----------------------------------------------------------------

def test_adamw_hf_is_the_references_adam_and_torch_adamw_is_not():
    """No method: optimizer=adamw_hf against transformers' AdamW step (as in RecAdam.py /
    ChildTuningOptimizer.py with anneal_w 0 / mode None); torch's AdamW puts ε elsewhere and differs."""
    lr = 1e-3
    model, ref = models()
    batches = fixed_batches()
    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0,
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], True))
    assert_same(run_harness(copy.deepcopy(model), {}, batches, optimizer="adamw_hf", lr=lr, max_norm=1.0), expected)
    with pytest.raises(AssertionError, match="differs"):
        assert_same(run_harness(model, {}, batches, optimizer="adamw", lr=lr, max_norm=1.0), expected)


# -- the interface ---------------------------------------------------------------------------------

def test_two_methods_that_replace_the_update_are_refused(monkeypatch):
    from mixsweep.regularizers import base

    class Other(Method):
        name = "other_update"
        owns_update = True

    base.registry()
    monkeypatch.setitem(base._REGISTRY, "other_update", Other)
    with pytest.raises(RegularizerError, match="other_update and recadam each replace the optimizer's update"):
        build_methods({"recadam": {}, "other_update": {}})


# -- HyPe --------------------------------------------------------------------------------------------

def _hype_encoder_forward(encoder, eps, noise_type, gen):
    """Yuanhy1997/HyPe: hype_modeling_bert.py ``BertEncoder.forward`` with ``layer_range`` None (main.py's
    ``[]`` for BERT without --hype_top_layers/--hype_low_layers): before every layer, in training,
    ``hidden_states + eps * FloatTensor(shape).normal_()`` or ``.uniform_()`` (U[0, 1), not centred)."""
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

    def forward(hidden_states, attention_mask=None, *args, **kwargs):
        for layer_module in encoder.layer:
            if encoder.training:
                draw = torch.empty(hidden_states.shape)
                draw = draw.normal_(generator=gen) if noise_type == "normal" else draw.uniform_(generator=gen)
                hidden_states = hidden_states + eps * draw
            hidden_states = layer_module(hidden_states, attention_mask, *args, **kwargs)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states)
    return forward


def _train_without_dropout(model):
    """Training mode (HyPe's noise is on) with every dropout at 0, as the harness's runs start."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model.train()


@pytest.mark.parametrize("noise_type", ["uniform", "normal"])
@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_hype_matches_the_reference_encoder(noise_type, optimizer, correct_bias):
    """Yuanhy1997/HyPe: hype_modeling_bert.py ``BertEncoder.forward`` (noise before each layer) under
    main.py's Trainer (transformers AdamW, clipping). ε is large so a layer missed or noise centred shows."""
    eps, lr, seed = 0.5, 1e-3, 11
    model, ref = models()
    _train_without_dropout(ref)
    batches = fixed_batches()
    ref.bert.encoder.forward = _hype_encoder_forward(ref.bert.encoder, eps, noise_type, generator(seed, "hype"))
    state: dict = {}
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0,
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"hype": {"eps": eps, "noise": noise_type}}, batches, optimizer=optimizer, lr=lr,
                      max_norm=1.0, seed=seed)
    assert_same(got, expected)


def test_hype_adds_nothing_at_eval():
    """The reference's ``if self.training``: in eval mode the perturbed model's logits are the plain model's."""
    model, plain = models()
    methods = build_methods({"hype": {"eps": 0.5}})
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=1)
    lifecycle.prepare(methods, ctx)
    batch = {k: v for k, v in fixed_batches()[0].items() if k != "labels"}
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(**batch).logits, plain(**batch).logits)
        model.train()  # the harness's dropout is 0, so only HyPe's noise can move the logits
        assert float((model(**batch).logits - plain(**batch).logits).abs().max()) > 1e-3


# -- R-Drop ------------------------------------------------------------------------------------------

def _rdrop_loss(ref, batch, num_labels):
    """dropreg/R-Drop: huggingface_transformer_src/src/transformers/models/bert/modeling_bert.py
    ``BertForSequenceClassification.bert_kl``: two passes of the same batch (``for i in range(2)``), each
    task loss at alpha = 1.0, then 0.5·(kl_div(p, q_tec).sum() + kl_div(q, p_tec).sum())/2, or for
    regression 1.0·MSE(logits₁, logits₂)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits_list = [ref(**inputs).logits for _ in range(2)]
    labels = batch["labels"]
    loss = None
    for logits in logits_list:
        if num_labels == 1:
            term = F.mse_loss(logits.view(-1), labels.view(-1))
        else:
            term = F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
        loss = term if loss is None else loss + term
    if num_labels == 1:
        return loss + 1.0 * F.mse_loss(logits_list[0].view(-1), logits_list[-1].view(-1))
    p = torch.log_softmax(logits_list[0].view(-1, num_labels), dim=-1)
    p_tec = torch.softmax(logits_list[0].view(-1, num_labels), dim=-1)
    q = torch.log_softmax(logits_list[-1].view(-1, num_labels), dim=-1)
    q_tec = torch.softmax(logits_list[-1].view(-1, num_labels), dim=-1)
    kl_loss = F.kl_div(p, q_tec, reduction="none").sum()
    reverse_kl_loss = F.kl_div(q, p_tec, reduction="none").sum()
    return loss + 0.5 * (kl_loss + reverse_kl_loss) / 2.0


@pytest.mark.parametrize("num_labels", [2, 1], ids=["classification", "regression"])
@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_rdrop_matches_the_reference_bert_kl(num_labels, optimizer, correct_bias):
    """The reference's two dropout passes with dropout everywhere (head included; 0.3 rather than BERT's 0.1,
    and a head scaled ×30, so that the passes' distributions differ
    enough for a one-sided KL to show: KL(P‖Q) and KL(Q‖P) agree to second order); dropout masks from the global stream,
    seeded alike on both sides, pass 1 then pass 2 as the reference draws them."""
    lr, seed, drop = 1e-3, 13, 0.3
    model, ref = models(num_labels)
    with torch.no_grad():  # sharp outputs, so the two passes' distributions differ far from second order
        for m in (model, ref):
            m.classifier.weight.mul_(30.0)
    for m in ref.modules():
        if isinstance(m, nn.Dropout):
            m.p = drop
    ref.train()
    batches = fixed_batches(num_labels)
    state: dict = {}
    torch.manual_seed(seed)
    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0,
                              loss_fn=lambda step, batch: _rdrop_loss(ref, batch, num_labels),
                              update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    torch.manual_seed(seed)
    got = run_harness(model, {"dropout": {"p": drop, "head": True}, "rdrop": {}}, batches, optimizer=optimizer,
                      lr=lr, max_norm=1.0, seed=seed)
    assert_same(got, expected)


def test_rdrop_without_dropout_is_refused():
    model, _ = models()
    methods = build_methods({"rdrop": {}})
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=1)
    with pytest.raises(RegularizerError, match=r"regularizer.rdrop needs dropout.*regularizer.dropout.p=0.1"):
        lifecycle.prepare(methods, ctx)


# -- SPD ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,adam_form", [("adamw", "torch"), ("adamw_hf", "hf"), ("bertadam", "bert")])
def test_spd_matches_adam_spd(optimizer, adam_form):
    """GT-RIPL/Selective-Projection-Decay: adamSPD.py ``AdamSPD.adam`` and ``AdamSPD._ratio``, with the README's
    anchors (``params_anchor = copy.deepcopy(params_to_opt)``: every trainable tensor, head included, at its
    value when the optimizer is built). Per tensor: new_p = param − Adam step; condition = −Σ grad·(param − pre)
    on the pre-step param; if condition < 0: ratio = hardtanh((‖new_p − pre‖ − ‖param − pre‖)/‖new_p − pre‖, 0, 1),
    new_p −= weight_decay·ratio·(new_p − pre). The reference's Adam is torch's form (optimizer=adamw); the
    transformers form (adamw_hf) and no bias correction (bertadam) under the same SPD are our extension."""
    lam, lr = 0.7, 1e-3
    model, ref = models()
    batches = fixed_batches()
    pre = snapshot(ref)
    state: dict = {}
    decided = {"decayed": 0, "kept": 0}

    @torch.no_grad()
    def update(step, lr_t):
        for name, param in ref.named_parameters():
            grad = param.grad
            st = state.setdefault(name, {"step": 0, "exp_avg": torch.zeros_like(param),
                                         "exp_avg_sq": torch.zeros_like(param)})
            st["step"] += 1
            t = st["step"]
            exp_avg, exp_avg_sq = st["exp_avg"], st["exp_avg_sq"]
            exp_avg.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
            exp_avg_sq.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
            bias_correction1, bias_correction2 = 1 - BETAS[0] ** t, 1 - BETAS[1] ** t
            if adam_form == "torch":  # AdamSPD.adam's own lines
                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(EPS)
                step_size = lr_t / bias_correction1
            else:  # the extension: transformers' / BERTAdam's step, SPD unchanged
                denom = exp_avg_sq.sqrt().add_(EPS)
                step_size = hf_step_size(lr_t, t, correct_bias=adam_form == "hf")
            new_p = param - step_size * exp_avg / denom
            condition = -torch.sum(torch.mul(grad, param - pre[name]))
            if condition < 0.0:
                curr_norm, prev_norm = torch.norm(new_p - pre[name]), torch.norm(param - pre[name])
                ratio = torch.nn.functional.hardtanh((curr_norm - prev_norm) / curr_norm, 0.0, 1.0)
                new_p = new_p - lam * ratio * (new_p - pre[name])
                decided["decayed"] += 1
            else:
                decided["kept"] += 1
            param.copy_(new_p)

    expected = reference_loop(ref, batches, lr=lr, max_norm=1.0, update=update)
    assert decided["decayed"] > 0 and decided["kept"] > 0  # both branches ran
    got = run_harness(model, {"spd": {"lam": lam}}, batches, optimizer=optimizer, lr=lr, max_norm=1.0)
    assert_same(got, expected)


def test_spd_record_counts_the_tensors_it_decayed():
    model, _ = models()
    methods = build_methods({"spd": {"lam": 1.0}})
    ctx = RunContext(model=model, head=head_module_names(model), init_seed=0, noise_seed=0, total_steps=K)
    lifecycle.prepare(methods, ctx)
    opt = build_optimizer(lifecycle.param_groups(methods, ctx),
                          {"name": "adamw", "lr": 1e-3, "betas": list(BETAS), "eps": EPS})
    scheduler = linear_warmup_decay(opt, K, 0.0)
    for step, batch in enumerate(fixed_batches()[:3]):
        optimizer_step(methods, ctx, model(**batch).loss, step, opt, scheduler, 1.0)
    rec = methods[0].record()
    assert rec["last_tensors"] == len(list(model.parameters()))
    assert 0 < rec["last_decayed"] < rec["last_tensors"]


# -- SMART -------------------------------------------------------------------------------------------

def _mtdnn_stable_kl(logit, target, epsilon=1e-6, reduce=True):
    """namisan/mt-dnn mt_dnn/loss.py ``stable_kl``, line for line."""
    logit = logit.view(-1, logit.size(-1)).float()
    target = target.view(-1, target.size(-1)).float()
    bs = logit.size(0)
    p = F.log_softmax(logit, 1).exp()
    y = F.log_softmax(target, 1).exp()
    rp = -(1.0 / (p + epsilon) - 1 + epsilon).detach().log()
    ry = -(1.0 / (y + epsilon) - 1 + epsilon).detach().log()
    if reduce:
        return (p * (rp - ry) * 2).sum() / bs
    return (p * (rp - ry) * 2).sum()


def _mtdnn_sym_kl(input, target):
    """namisan/mt-dnn mt_dnn/loss.py ``SymKlCriterion.forward`` (alpha 1, reduction batchmean)."""
    input, target = input.float(), target.float()
    return (F.kl_div(F.log_softmax(input, dim=-1, dtype=torch.float32),
                     F.softmax(target.detach(), dim=-1, dtype=torch.float32), reduction="batchmean")
            + F.kl_div(F.log_softmax(target, dim=-1, dtype=torch.float32),
                       F.softmax(input.detach(), dim=-1, dtype=torch.float32), reduction="batchmean"))


def _mtdnn_smart_loss(ref, batch, *, alpha, k, step_size, noise_var, epsilon, gen, regression):
    """namisan/mt-dnn: mt_dnn/model.py ``MTDNNModel.update`` (loss + adv_alpha · adv_loss) around
    mt_dnn/perturbation.py ``SmartPerturbation.forward`` (norm_p "inf", norm_level 0): embed = the embedding
    layer's output (matcher.py ``embed_encode``, fwd_type 1), noise = N(0, 1)·noise_var, K ascent steps on
    stable_kl / summed MSE w.r.t. the noise, then adv_lc(logits, adv_logits): SymKlCriterion, or for regression
    MseCriterion, ``F.mse_loss(input.squeeze(), target)``. The noise comes from ``gen`` (the reference draws
    from the global CUDA stream) in the reference's order: one draw per step, before the ascent."""
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    logits = ref(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    if regression:
        task_loss = F.mse_loss(logits.squeeze(), batch["labels"])
    else:
        task_loss = F.cross_entropy(logits, batch["labels"], ignore_index=-1)
    embed = ref.bert.embeddings(ids, types)
    noise = torch.empty(embed.size()).normal_(0, 1, generator=gen) * noise_var
    noise.detach()
    noise.requires_grad_()
    for _ in range(k):
        adv_logits = ref(token_type_ids=types, attention_mask=mask, inputs_embeds=embed + noise).logits
        if regression:
            adv_loss = F.mse_loss(adv_logits, logits.detach(), reduction="sum")
        else:
            adv_loss = _mtdnn_stable_kl(adv_logits, logits.detach(), reduce=False)
        (delta_grad,) = torch.autograd.grad(adv_loss, noise, only_inputs=True, retain_graph=False)
        delta_grad = noise + delta_grad * step_size
        noise = delta_grad / (delta_grad.abs().max(-1, keepdim=True)[0] + epsilon)
        noise = noise.detach()
        noise.requires_grad_()
    adv_logits = ref(token_type_ids=types, attention_mask=mask, inputs_embeds=embed + noise).logits
    if regression:
        with pytest.warns(UserWarning, match="target size"):  # the reference's (B,) against (B, 1)
            adv_loss = F.mse_loss(logits.squeeze(), adv_logits)
    else:
        adv_loss = _mtdnn_sym_kl(logits, adv_logits)
    return task_loss + alpha * adv_loss


def _with_token_types(batches):
    """Segment ids 1 from position 3 on, so a pass that drops them differs."""
    out = []
    for b in batches:
        types = torch.zeros_like(b["input_ids"])
        types[:, 3:] = 1
        out.append({**b, "token_type_ids": types})
    return out


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_smart_matches_mtdnn_smart_perturbation(k, optimizer, correct_bias):
    """namisan/mt-dnn SmartPerturbation.forward with SymKlCriterion (glue_task_def.yml's adv_loss for RTE,
    MRPC, CoLA). step_size and noise_var are large, so the ascent's direction and the initial noise both
    move the result; the head is scaled so the two passes' distributions differ well beyond second order."""
    settings = {"alpha": 1.5, "k": k, "step_size": 0.3, "noise_var": 0.5, "epsilon": 1e-6}
    lr, seed = 1e-3, 17
    model, ref = models()
    with torch.no_grad():
        for m in (model, ref):
            m.classifier.weight.mul_(30.0)
    batches = _with_token_types(fixed_batches())
    gen = generator(seed, "smart")
    state: dict = {}
    expected = reference_loop(
        ref, batches, lr=lr, max_norm=1.0,
        loss_fn=lambda step, batch: _mtdnn_smart_loss(ref, batch, gen=gen, regression=False, **settings),
        update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"smart": settings}, batches, optimizer=optimizer, lr=lr, max_norm=1.0, seed=seed)
    assert_same(got, expected)


@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_smart_regression_broadcast_reproduces_mtdnn_mse_criterion(optimizer, correct_bias):
    """STS-B in mt-dnn (adv_loss: MseCriterion): the ascent on Σ(f(x̃) − sg f(x))², the final term
    ``F.mse_loss(logits.squeeze(), adv_logits)``, (B,) against (B, 1) broadcast to every pair; our
    ``regression: broadcast``."""
    settings = {"alpha": 1.0, "k": 1, "step_size": 0.3, "noise_var": 0.5, "epsilon": 1e-6, "regression": "broadcast"}
    lr, seed = 1e-3, 19
    model, ref = models(num_labels=1)
    batches = _with_token_types(fixed_batches(num_labels=1))
    gen = generator(seed, "smart")
    state: dict = {}
    expected = reference_loop(
        ref, batches, lr=lr, max_norm=1.0,
        loss_fn=lambda step, batch: _mtdnn_smart_loss(ref, batch, gen=gen, regression=True,
                                                      **{k: v for k, v in settings.items() if k != "regression"}),
        update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], correct_bias))
    got = run_harness(model, {"smart": settings}, batches, optimizer=optimizer, lr=lr, max_norm=1.0, seed=seed)
    assert_same(got, expected)


def test_smart_regression_default_is_the_per_example_mse():
    """``regression: mse`` (our default, the evident intent of MseCriterion): the final term is the batch mean of
    (f(x_i) − f(x̃_i))², worked here from the two passes by hand; the broadcast form differs on the same passes."""
    from mixsweep.regularizers.smart import SMART

    clean = torch.tensor([[1.0], [3.0], [-2.0]])
    adv = torch.tensor([[1.5], [2.0], [-2.0]])
    per_example = (0.25 + 1.0 + 0.0) / 3
    pairs = sum((c - a) ** 2 for c in (1.0, 3.0, -2.0) for a in (1.5, 2.0, -2.0)) / 9
    assert float(SMART({})._adv_loss(clean, adv)) == pytest.approx(per_example)
    assert float(SMART({"regression": "broadcast"})._adv_loss(clean, adv)) == pytest.approx(pairs)


@pytest.mark.parametrize("cfg,match", [
    ({"k": 0}, r"regularizer\.smart\.k=0 must be an integer in \[1, inf\)"),
    ({"k": 1.5}, r"regularizer\.smart\.k=1\.5 must be an integer"),
    ({"epsilon": 0}, r"regularizer\.smart\.epsilon=0 must be a number in \(0, inf\)"),
    ({"regression": "pairs"}, r"regularizer\.smart\.regression='pairs' is not one of mse, broadcast"),
    ({"mu": 1.0}, r"unknown setting regularizer\.smart\.mu"),
])
def test_smart_refuses_bad_settings(cfg, match):
    with pytest.raises(RegularizerError, match=match):
        build_methods({"smart": cfg})


def test_spd_refuses_a_negative_strength():
    with pytest.raises(RegularizerError, match=r"regularizer\.spd\.lam=-1 must be a number in \[0, inf\)"):
        build_methods({"spd": {"lam": -1}})


def test_smart_draws_dropout_in_the_references_pass_order():
    """With dropout on (mt-dnn trains with 0.1), every pass draws its own masks from the global stream in
    mt-dnn's order: the step's pass, embed_encode's own pass through the embedding layer, the K ascent passes,
    the final perturbed pass. Seeded alike on both sides; a pass missing, reused or reordered shows."""
    settings = {"alpha": 1.0, "k": 1, "step_size": 0.3, "noise_var": 0.5, "epsilon": 1e-6}
    lr, seed, drop = 1e-3, 23, 0.3
    model, ref = models()
    for m in ref.modules():
        if isinstance(m, nn.Dropout):
            m.p = drop
    ref.train()
    batches = _with_token_types(fixed_batches())
    gen = generator(seed, "smart")
    state: dict = {}
    torch.manual_seed(seed)
    expected = reference_loop(
        ref, batches, lr=lr, max_norm=1.0,
        loss_fn=lambda step, batch: _mtdnn_smart_loss(ref, batch, gen=gen, regression=False, **settings),
        update=lambda s, lr_t: hf_adam_(state, [(p, lr_t) for p in ref.parameters()], True))
    torch.manual_seed(seed)
    got = run_harness(model, {"dropout": {"p": drop, "head": True}, "smart": settings}, batches, optimizer="adamw_hf",
                      lr=lr, max_norm=1.0, seed=seed)
    assert_same(got, expected)


# -- the lab's combinations --------------------------------------------------------------------------
# Every cell of sweeps/stabilizers.yaml is `devlin` plus one method: dropout 0.1 everywhere (head included),
# devlin's decoupled weight decay (BertAdam's: θ ← θ − η_g·λ·θ on the pre-update θ of every weight but
# biases and LayerNorm, the head's weight included), 10% linear warmup, and the method's own parameter
# groups. The reference side composes those pieces, each written here from its source, around the
# method's reference update. λ = 5 (one step decays a weight by η·λ = 5e-3, far above the tolerance) and
# 2 of the 6 steps warm up (lr 0, then η/2), so a decay misplaced or a schedule ignored shows.

LAM = 5.0
DROP = 0.1
WARMUP = 0.34  # ⌊0.34·6⌋ = 2 warmup steps
DROPOUT_SEED = 100
DEVLIN = {"dropout": {"p": DROP, "head": True},
          "wdecay": {"lam": LAM, "target": "zero", "form": "decoupled", "head": "zero"}}
NO_DECAY = ("bias", "LayerNorm.weight")


def warmup_linear_lr(base: float, step: int, total: int, warmup: int) -> float:
    """transformers' get_linear_schedule_with_warmup at 0-based step ``step``: base·step/warmup during
    the warmup, then base·(total − step)/(total − warmup)."""
    if step < warmup:
        return base * step / max(1, warmup)
    return base * max(0.0, (total - step) / max(1, total - warmup))


def devlin_groups(named, lr, lam=LAM):
    """run_classifier's groups: weight decay λ on every name without "bias" or "LayerNorm.weight"."""
    named = list(named)
    return [([(n, p) for n, p in named if not any(nd in n for nd in NO_DECAY)], lr, lam),
            ([(n, p) for n, p in named if any(nd in n for nd in NO_DECAY)], lr, 0.0)]


def llrd_devlin_groups(ref, lr, xi):
    """revisit-bert-finetuning's ``get_optimizer_grouped_parameters``: classifier and pooler at η with decay 0;
    [embeddings] + layers reversed, ``lr *= ξ`` before each, devlin's decay split inside each."""
    groups = [([(n, p) for n, p in ref.named_parameters() if "classifier" in n or "pooler" in n], lr, 0.0)]
    layer_lr = lr
    for prefix, layer in reversed([("bert.embeddings", ref.bert.embeddings),
                                   *[(f"bert.encoder.layer.{i}", m) for i, m in enumerate(ref.bert.encoder.layer)]]):
        layer_lr *= xi
        groups += devlin_groups(((f"{prefix}.{n}", p) for n, p in layer.named_parameters()), layer_lr)
    return groups


def _adam_update(state, correct_bias):
    def update(step, triples):
        hf_adam_(state, [(p, lr_g) for _, p, lr_g in triples], correct_bias)
    return update


def _plain(ref, seed, lr, correct_bias):
    return {}, None, devlin_groups(ref.named_parameters(), lr), _adam_update({}, correct_bias)


def _reinit(ref, seed, lr, correct_bias):
    _reinit_reference_(ref, 1, generator(seed, "reinit"))
    return {"reinit": {"k": 1}}, None, devlin_groups(ref.named_parameters(), lr), _adam_update({}, correct_bias)


def _llrd(ref, seed, lr, correct_bias):
    return {"llrd": {"xi": 0.5}}, None, llrd_devlin_groups(ref, lr, 0.5), _adam_update({}, correct_bias)


def _recadam(ref, seed, lr, correct_bias):
    """The lab's RecAdam (init random, the README's commands) with run_glue_with_RecAdam.py's two kinds of
    group (names with "bert": annealed and pulled toward θ_pre; the classifier: plain Adam)."""
    gamma, k, t0 = 100.0, 1.0, 3.0
    pre = snapshot(ref)
    _recadam_random_body_(ref, generator(seed, "recadam"))
    state: dict = {}

    def update(step, triples):
        _recadam_step_(state, pre, triples, gamma=gamma, k=k, t0=t0, correct_bias=correct_bias)
    return {"recadam": {"gamma": gamma, "k": k, "t0": t0}}, None, devlin_groups(ref.named_parameters(), lr), update


def _child_tuning(ref, seed, lr, correct_bias):
    p_f, gen, state = 0.3, generator(seed, "child_tuning"), {}

    @torch.no_grad()
    def update(step, triples):
        for p in ref.parameters():  # ChildTuningAdamW.step's mask, in the reference's parameter order
            p.grad.mul_(torch.empty_like(p.grad).bernoulli_(p_f, generator=gen) / p_f)
        hf_adam_(state, [(p, lr_g) for _, p, lr_g in triples], correct_bias)
    return {"child_tuning": {"p_f": p_f}}, None, devlin_groups(ref.named_parameters(), lr), update


def _noisytune(ref, seed, lr, correct_bias):
    lam, gen = 0.15, generator(seed, "noisytune")
    with torch.no_grad():
        for _, para in ref.named_parameters():
            if para.numel() >= 2:
                para += (torch.rand(para.size(), generator=gen) - 0.5) * lam * torch.std(para)
    return {"noisytune": {"lam": lam}}, None, devlin_groups(ref.named_parameters(), lr), _adam_update({}, correct_bias)


def _r3f(ref, seed, lr, correct_bias):
    lam, eps, gen = 1.0, 0.5, generator(seed, "r3f")

    def loss_fn(step, batch):  # the clean pass, then the noisy one: dropout draws in that order
        ids, mask = batch["input_ids"], batch["attention_mask"]
        input_logits = ref(input_ids=ids, attention_mask=mask).logits
        token_embeddings = ref.bert.embeddings.word_embeddings(ids)
        noise = torch.empty(token_embeddings.shape).uniform_(-eps, eps, generator=gen)
        noised_logits = ref(inputs_embeds=token_embeddings.detach().clone() + noise, attention_mask=mask).logits
        nll = F.nll_loss(F.log_softmax(input_logits, -1, dtype=torch.float32), batch["labels"])
        return nll + lam * _symm_kl(noised_logits, input_logits)
    return ({"r3f": {"lam": lam, "eps": eps}}, loss_fn, devlin_groups(ref.named_parameters(), lr),
            _adam_update({}, correct_bias))


def _hype(ref, seed, lr, correct_bias):
    eps = 0.5
    ref.bert.encoder.forward = _hype_encoder_forward(ref.bert.encoder, eps, "uniform", generator(seed, "hype"))
    return {"hype": {"eps": eps, "noise": "uniform"}}, None, devlin_groups(ref.named_parameters(), lr), \
        _adam_update({}, correct_bias)


def _rdrop(ref, seed, lr, correct_bias):
    return ({"rdrop": {}}, lambda step, batch: _rdrop_loss(ref, batch, 2), devlin_groups(ref.named_parameters(), lr),
            _adam_update({}, correct_bias))


def _mosbach(ref, seed, lr, correct_bias):
    """The lab's mosbach cell (+recipe=mosbach2021): devlin's decay placed after the update as mAdamW's
    (``lab_reference_loop``'s ``decay_after``), the update transformers-style Adam."""
    post = {"wdecay": {**DEVLIN["wdecay"], "placement": "post_update"}}
    return post, None, devlin_groups(ref.named_parameters(), lr), _adam_update({}, correct_bias)


def _smart(ref, seed, lr, correct_bias):
    settings = {"alpha": 1.5, "k": 1, "step_size": 0.3, "noise_var": 0.5, "epsilon": 1e-6}
    gen = generator(seed, "smart")
    return ({"smart": settings}, lambda step, batch: _mtdnn_smart_loss(ref, batch, gen=gen, regression=False,
                                                                          **settings),
            devlin_groups(ref.named_parameters(), lr), _adam_update({}, correct_bias))


def _cwgnc(ref, seed, lr, correct_bias):
    """Each tensor clipped to c on its own in place of the global clip (``lab_reference_loop``'s ``clip``):
    c = 0.05 so that some tensors are clipped and others are not."""
    return {"cwgnc": {"max_norm": CWGNC_C}}, None, devlin_groups(ref.named_parameters(), lr), \
        _adam_update({}, correct_bias)


CWGNC_C = 0.05
# FineTuningStability GradClipTrainer.py ``GradValueClipTrainer.training_step``: clip_grad_norm_(param, c) per
# parameter right after backward, and run_glue.py's max_grad_norm = -1 (no global clip)
PER_TENSOR_CLIP = {"cwgnc": CWGNC_C}


# mAdamW (uds-lsv/bert-stable-fine-tuning adamw.py ``mAdamW.step``): ``addcdiv_`` then
# ``p.data.add_(p.data, alpha=-lr·weight_decay)``, the decay of the θ just written
DECAY_AFTER = {"mosbach"}

LAB_METHODS = {"devlin": _plain, "mosbach": _mosbach, "reinit": _reinit, "llrd": _llrd, "recadam": _recadam,
               "child_tuning_f": _child_tuning, "noisytune": _noisytune, "r3f": _r3f, "hype": _hype,
               "rdrop": _rdrop, "smart": _smart, "cwgnc": _cwgnc}


def lab_reference_loop(ref, batches, *, groups, update, loss_fn=None, max_norm=1.0, decay_after=False,
                       per_tensor_clip=None):
    """The reference loop under the lab's recipe: dropout masks from torch's stream seeded as the harness
    seeds it, forward, loss, backward, clip (the global norm, or ``per_tensor_clip``: each tensor on its own),
    the warmup schedule on each group's lr, devlin's decay of the
    pre-update θ at that lr (``decay_after``: of the θ the update wrote), and the method's
    ``update(step, [(name, param, lr)])``."""
    total = len(batches)
    warmup = int(WARMUP * total)
    traj = []
    for step, batch in enumerate(batches):
        torch.manual_seed(DROPOUT_SEED + step)
        loss = ref(**batch).loss if loss_fn is None else loss_fn(step, batch)
        loss.backward()
        if per_tensor_clip is None:
            clip_(ref.parameters(), max_norm)
        else:
            for p in ref.parameters():
                clip_([p], per_tensor_clip)
        triples = [(n, p, warmup_linear_lr(g_lr, step, total, warmup)) for named, g_lr, _ in groups for n, p in named]
        if decay_after:
            update(step, triples)
        with torch.no_grad():
            for named, g_lr, wd in groups:
                for _, p in named:
                    p.mul_(1 - warmup_linear_lr(g_lr, step, total, warmup) * wd)
        if not decay_after:
            update(step, triples)
        for p in ref.parameters():
            p.grad = None
        traj.append(snapshot(ref))
    return traj


@pytest.mark.parametrize("method", sorted(LAB_METHODS))
@pytest.mark.parametrize("optimizer,correct_bias", [("bertadam", False), ("adamw_hf", True)])
def test_each_lab_cell_matches_its_reference_under_devlins_dropout_decay_and_warmup(method, optimizer, correct_bias):
    """Issue 32 item 10: each cell as the lab runs it (``devlin`` + the method, crossed with both
    optimizers) against the method's reference update inside the lab's recipe (see
    ``lab_reference_loop``): dropout 0.1 with the same masks on both sides, devlin's decay before the
    update on each group's scheduled lr, 2 warmup steps, and the method's groups (LLRD's, whose pooler and
    head are undecayed; RecAdam's annealed body and plain head)."""
    lr, seed = 1e-3, 21
    model, ref = models(pretrained_like=True)
    ref.train()  # the config's dropout 0.1 everywhere, head included: devlin's
    assert {m.p for m in ref.modules() if isinstance(m, nn.Dropout)} == {DROP}
    # mt-dnn's perturbed passes take the batch's token types (embed_encode): SMART's batches carry them
    batches = _with_token_types(fixed_batches()) if method == "smart" else fixed_batches()
    reg, loss_fn, groups, update = LAB_METHODS[method](ref, seed, lr, correct_bias)
    assert sorted(id(p) for named, _, _ in groups for _, p in named) == sorted(id(p) for p in ref.parameters())
    expected = lab_reference_loop(ref, batches, groups=groups, update=update, loss_fn=loss_fn,
                                  decay_after=method in DECAY_AFTER, per_tensor_clip=PER_TENSOR_CLIP.get(method))
    got = run_harness(model, {**DEVLIN, **reg}, batches, optimizer=optimizer, lr=lr, max_norm=1.0, seed=seed,
                      warmup=WARMUP, dropout_seed=DROPOUT_SEED)
    assert_same(got, expected)
