"""The Section 4 digits experiment: model, data, w_pre cache, regularizer placement, end-to-end restarts."""

from __future__ import annotations

import copy
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mixsweep.config.digits import DigitsSet
from mixsweep.config.paths import CONF_DIR
from mixsweep.digits import pretrain, run_digits
from mixsweep.digits.data import load_dataset, load_images, read_idx, split_and_normalize
from mixsweep.digits.finetune import context, squared_distance
from mixsweep.digits.model import DigitsMLP
from mixsweep.digits.run import torch_threads
from mixsweep.digits.train import Recipe, make_optimizer
from mixsweep.errors import UserError
from mixsweep.optim import linear_warmup_decay
from mixsweep.regularizers import RegularizerError, build_methods, lifecycle
from mixsweep.regularizers.mixlinear import MixLinear

CPU = torch.device("cpu")


def tiny_task() -> dict:
    """conf/task/digits.yaml shrunk to a few hundred examples and a 1-seed × 2-epoch-count grid."""
    task = yaml.safe_load((CONF_DIR / "task" / "digits.yaml").read_text())
    task["data"]["source"]["limit"] = 300
    task["data"]["target"]["limit"] = 300
    task["model"]["hidden"] = [32, 16]
    task["pretrain"].update(seeds=[0], epochs=[1, 2], lr=1e-3)
    task["finetune"].update(epochs=2, log_every=2)
    return task


def regularizer(dropout: float = 0.0, mixout_p: float = 0.0, **extra) -> dict:
    """A regularizer block in the shared shape (conf/regularizer/*.yaml)."""
    return {
        "dropout": {"p": dropout, "head": False},
        "mixout": {"p": mixout_p, "layers": "paper", "granularity": "neuron", "grad": "exact"},
        **extra,
    }


def start(model: DigitsMLP, reg: dict) -> None:
    """What a digits run does to the model before finetuning."""
    lifecycle.prepare(build_methods(reg), context(model, total_steps=1, noise_seed=0, init_seed=0, device=CPU))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The MLP is tiny; a second thread only adds contention when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fresh_memo(monkeypatch):
    monkeypatch.setattr(pretrain, "_MEMO", {})


# --- model -------------------------------------------------------------------------------------------


def test_model_has_the_papers_shape_and_init():
    model = DigitsMLP(generator=torch.Generator().manual_seed(0))
    assert [tuple(fc.weight.shape) for fc in model.fc] == [(300, 784), (100, 300), (10, 100)]
    assert [norm.normalized_shape for norm in model.norm] == [(300,), (100,)]
    assert model(torch.randn(5, 784)).shape == (5, 10)
    weights = torch.cat([fc.weight.flatten() for fc in model.fc])
    assert abs(weights.std().item() - 0.02) < 0.001
    assert all(fc.bias.abs().sum() == 0 for fc in model.fc)


def test_layernorm_follows_relu():
    """Input to fc.1 is LayerNorm(ReLU(.)): zero-mean, unit-variance rows that still have negative entries.

    ReLU after LayerNorm would leave no negatives; no LayerNorm would leave non-zero row means.
    """
    model = DigitsMLP().eval()
    seen: list[torch.Tensor] = []
    model.fc[1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model(torch.randn(8, 784))
    x = seen[0]
    assert torch.allclose(x.mean(dim=1), torch.zeros(8), atol=1e-5)
    assert torch.allclose(x.var(dim=1, unbiased=False), torch.ones(8), atol=1e-2)
    assert (x < 0).any()


# --- training recipe ---------------------------------------------------------------------------------


def test_schedule_warms_up_then_decays_to_zero():
    total = 100
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = linear_warmup_decay(opt, total, 0.1)  # the shared schedule the digits runs use
    values = []
    for _ in range(total + 1):
        values.append(schedule.get_last_lr()[0])
        opt.step()
        schedule.step()
    assert values[0] == 0.0 and values[10] == 1.0
    assert values[5] == pytest.approx(0.5)
    assert values[55] == pytest.approx(0.5)
    assert values[total] == 0.0


def test_weight_decay_only_on_weight_matrices():
    model = DigitsMLP(sizes=(784, 8, 4, 10))
    recipe = Recipe(lr=1e-3, epochs=1, batch_size=32, warmup_ratio=0.1, weight_decay=0.01)
    decayed, plain = make_optimizer(model, recipe).param_groups
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(fc.weight) for fc in model.fc}
    assert len(plain["params"]) == 3 + 2 * 2  # biases, LayerNorm gains and biases


# --- data --------------------------------------------------------------------------------------------


def test_split_is_stratified_seeded_and_normalized_by_train_stats():
    rng = np.random.default_rng(1)
    images = rng.random((200, 784), dtype=np.float32)
    labels = np.repeat(np.arange(10), 20)
    a = split_and_normalize(images, labels, val_fraction=0.25, seed=3)
    b = split_and_normalize(images, labels, val_fraction=0.25, seed=3)
    c = split_and_normalize(images, labels, val_fraction=0.25, seed=4)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    assert torch.bincount(a.val.y).tolist() == [5] * 10
    assert len(a.train) == 150
    assert abs(a.train.x.mean().item()) < 1e-4 and abs(a.train.x.std().item() - 1) < 1e-3


def test_idx_files_load_with_transpose(tmp_path: Path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([1, 2, 3], dtype=np.uint8)
    write_idx(tmp_path / "images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "labels-idx1-ubyte", labels)
    assert np.array_equal(read_idx(tmp_path / "images-idx3-ubyte.gz"), images)
    spec = {"kind": "idx", "images": str(tmp_path / "images-idx3-ubyte.gz"),
            "labels": str(tmp_path / "labels-idx1-ubyte"), "transpose": True, "val_fraction": 0.5}
    x, y = load_images(spec)
    assert y.tolist() == [1, 2, 3]
    assert np.allclose(x[0].reshape(28, 28), images[0].T / 255.0)


def test_bad_data_spec_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="choose one of"):
        load_dataset(DigitsSet(kind="emnist", val_fraction=0.1), 0)  # built in code: the schema never saw it
    with pytest.raises(UserError, match="does not exist"):
        load_dataset({"kind": "npz", "images": str(tmp_path / "none.npz"), "val_fraction": 0.1}, 0)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


# --- w_pre and regularizer placement -----------------------------------------------------------------


def test_w_pre_is_built_once_then_read_from_disk(tmp_path: Path, fresh_memo, monkeypatch):
    calls = []
    real = pretrain.pretrain_one
    monkeypatch.setattr(pretrain, "pretrain_one", lambda *a, **k: calls.append(k) or real(*a, **k))
    task = tiny_task()
    first = pretrain.load_or_pretrain(task, tmp_path)
    assert len(calls) == 2  # 1 seed × 2 epoch counts
    assert list((tmp_path / "digits").glob("w_pre-*.pt"))

    monkeypatch.setattr(pretrain, "_MEMO", {})  # a new process: only the disk cache is left
    second = pretrain.load_or_pretrain(task, tmp_path)
    assert len(calls) == 2
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)
    assert second.meta["source_val_acc"] == max(cell["source_val_acc"] for cell in first.meta["grid"])
    assert pretrain.load_or_pretrain(task, tmp_path) is second  # in-process memo


def test_cache_key_tracks_pretraining_inputs_only():
    task = tiny_task()
    other_lr = copy.deepcopy(task)
    other_lr["pretrain"]["lr"] = 5e-4
    other_finetune = copy.deepcopy(task)
    other_finetune["finetune"]["lr"] = 1.0
    other_target = copy.deepcopy(task)
    other_target["data"]["target"]["limit"] = 10
    assert pretrain.cache_key(task) != pretrain.cache_key(other_lr)
    assert pretrain.cache_key(task) == pretrain.cache_key(other_finetune) == pretrain.cache_key(other_target)


def test_mixout_replaces_dropout_on_the_layers_dropout_fed():
    model = DigitsMLP(sizes=(784, 16, 8, 10), dropout=0.1)
    w_pre = {k: v.clone() for k, v in model.state_dict().items()}
    start(model, regularizer(dropout=0.0, mixout_p=0.6))
    assert not isinstance(model.fc[0], MixLinear)
    assert all(isinstance(model.fc[i], MixLinear) and model.fc[i].p == 0.6 for i in (1, 2))
    assert all(drop.p == 0.0 for drop in model.drop)
    assert torch.equal(model.fc[1].target, w_pre["fc.1.weight"])
    assert torch.equal(model.fc[2].target, w_pre["fc.2.weight"])


def test_a_run_starts_without_the_pretraining_dropout():
    model = DigitsMLP(sizes=(784, 16, 8, 10), dropout=0.1)
    start(model, {"mixout": {"p": 0.3}})
    assert all(drop.p == 0.0 for drop in model.drop)


def test_dropout_cells_keep_plain_layers():
    model = DigitsMLP(sizes=(784, 16, 8, 10), dropout=0.1)
    start(model, regularizer(dropout=0.4))
    assert not any(isinstance(fc, MixLinear) for fc in model.fc)
    assert [drop.p for drop in model.drop] == [0.4, 0.4]


def test_settings_that_do_not_fit_the_mlp_are_user_errors():
    model = DigitsMLP(sizes=(784, 16, 8, 10))
    with pytest.raises(RegularizerError, match="head"):
        start(model, {"mixout": {"p": 0.5, "head": {"policy": "mixout_init"}}})
    with pytest.raises(RegularizerError, match="matches no"):
        start(DigitsMLP(sizes=(784, 16, 8, 10)), {"mixout": {"p": 0.5, "layers": "encoder.*"}})


def test_distance_is_zero_for_an_untouched_model():
    model = DigitsMLP(sizes=(784, 16, 8, 10))
    w_pre = {k: v.clone() for k, v in model.state_dict().items()}
    start(model, regularizer(mixout_p=0.5))
    distances = squared_distance(model, w_pre)
    assert set(distances) == {name for name, _ in model.named_parameters()}
    assert sum(distances.values()) == 0.0
    with torch.no_grad():
        model.fc[2].bias.add_(0.5)
    assert sum(squared_distance(model, w_pre).values()) == pytest.approx(10 * 0.25)


# --- end to end --------------------------------------------------------------------------------------


def test_mini_sweep_runs_end_to_end(tmp_path: Path, fresh_memo):
    task = tiny_task()
    results = {}
    for kind in ("dropout", "mixout"):
        for p in (0.0, 0.5):
            reg = regularizer(dropout=p) if kind == "dropout" else regularizer(mixout_p=p)
            for seed in (0, 1):
                cfg = {"task": task, "regularizer": reg, "seed": seed, "data_seed": seed, "noise_seed": seed}
                results[kind, p, seed] = run_digits(cfg, cache_dir=tmp_path, device=CPU)

    for out in results.values():
        assert out["status"] == "ok" and out["headline"] == "target_acc"
        assert set(out["final"]) == {"target_acc", "source_acc", "l2_sq", "l2_sq_regularized"}
        # The distances themselves are checked against the weights in the independent tests below.
        assert set(out["extra"]["l2_sq_by_param"]) >= {"fc.1.weight", "fc.2.weight", "fc.1.bias"}
        assert 0 < out["final"]["l2_sq_regularized"] < out["final"]["l2_sq"]
        assert 0.0 <= out["final"]["target_acc"] <= 1.0 and 0.0 <= out["final"]["source_acc"] <= 1.0
        assert out["final"]["l2_sq"] > 0 and out["distance_sq"] == out["final"]["l2_sq"]
        assert [point["epoch"] for point in out["eval_curve"]] == [1, 2]
        assert out["best"]["target_acc"] == max(pt["metrics"]["target_acc"] for pt in out["eval_curve"])
        assert out["train_loss"] and out["majority"]["target_acc"] > 0
        assert set(out["times"]) == {"train_s", "eval_s", "pretrain_s"}
    assert len({out["extra"]["w_pre"]["key"] for out in results.values()}) == 1
    # p = 0 is the same run under both names; restarts differ in data order.
    assert results["dropout", 0.0, 0]["final"] == results["mixout", 0.0, 0]["final"]
    assert results["mixout", 0.5, 0]["final"]["l2_sq"] != results["mixout", 0.5, 1]["final"]["l2_sq"]
    assert results["mixout", 0.5, 0]["extra"]["methods"]["mixout"]["layers"] == ["fc.1", "fc.2"]


def test_a_restart_is_reproducible(tmp_path: Path, fresh_memo):
    cfg = {"task": tiny_task(), "regularizer": regularizer(mixout_p=0.5), "seed": 3}
    first = run_digits(cfg, cache_dir=tmp_path, device=CPU)
    again = run_digits(cfg, cache_dir=tmp_path, device=CPU)
    assert first["final"] == again["final"] and first["train_loss"] == again["train_loss"]


def test_thread_setting_is_scoped_to_the_block():
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_divergence_is_reported(tmp_path: Path, fresh_memo):
    task = tiny_task()
    task["finetune"]["lr"] = 1e30  # finite (the schema rejects inf), but Adam's steps of ~lr overflow the logits
    out = run_digits({"task": task, "regularizer": regularizer(), "seed": 0}, cache_dir=tmp_path, device=CPU)
    assert out["status"] == "diverged"


# --- independent checks of the Fig. 2 distance ---------------------------------------------------------


def _finetuned(monkeypatch, tmp_path: Path, reg: dict, seed: int = 0) -> tuple[dict, dict, dict]:
    """One tiny restart; returns its record, the finetuned weights and w_pre (both as float64 numpy)."""
    from mixsweep.digits import run as run_module

    models = []
    real_fit = run_module.fit
    monkeypatch.setattr(run_module, "fit", lambda model, *a, **k: models.append(model) or real_fit(model, *a, **k))
    task = tiny_task()
    out = run_digits({"task": task, "regularizer": reg, "seed": seed}, cache_dir=tmp_path, device=CPU)
    finetuned = {k: v.detach().double().numpy().copy() for k, v in models[0].state_dict().items()}
    w_pre = {k: v.double().numpy() for k, v in pretrain.load_or_pretrain(task, tmp_path).state.items()}
    return out, finetuned, w_pre


def test_regularized_distance_is_the_two_mixed_weight_matrices_only(tmp_path: Path, fresh_memo, monkeypatch):
    """l2_sq_regularized = ||W1 - W1_pre||^2 + ||W2 - W2_pre||^2 over fc.1.weight and fc.2.weight, biases excluded,
    computed here elementwise from the two models' weights."""
    out, ft, pre = _finetuned(monkeypatch, tmp_path, regularizer(mixout_p=0.5))
    by_hand = sum(float(((ft[k] - pre[k]) ** 2).sum()) for k in ("fc.1.weight", "fc.2.weight"))
    biases = sum(float(((ft[k] - pre[k]) ** 2).sum()) for k in ("fc.1.bias", "fc.2.bias"))
    assert biases > 1e-6 * by_hand, "the biases moved, so counting them would change the number"
    assert out["final"]["l2_sq_regularized"] == pytest.approx(by_hand, rel=1e-5)
    everything = sum(float(((ft[k] - pre[k]) ** 2).sum()) for k in pre)
    assert out["final"]["l2_sq"] == pytest.approx(everything, rel=1e-5)


def test_fig2_direction_mixout_pulls_harder_toward_w_pre_as_p_rises(tmp_path: Path, fresh_memo):
    """Fig. 2 / Corollary 1.1: under mixout(w_pre, p) the distance of the mixed layers falls as p rises.

    Means over two restarts on the tiny setup; p = 0 (no regularizer), 0.4 and 0.8.
    """
    task = tiny_task()
    means = []
    for p in (0.0, 0.4, 0.8):
        runs = [run_digits({"task": task, "regularizer": regularizer(mixout_p=p), "seed": s}, cache_dir=tmp_path,
                           device=CPU) for s in (0, 1)]
        means.append(sum(r["final"]["l2_sq_regularized"] for r in runs) / len(runs))
    assert means[0] > means[1] > means[2], means


@pytest.mark.parametrize("deterministic", [False, True])
def test_a_digits_run_applies_the_runtime_its_id_names(monkeypatch, deterministic):
    """``deterministic`` and ``threads`` are part of a digits run's id, so the run must set them (as a
    finetuning run does through ``setup.runtime``) and record the determinism it ran under."""
    import mixsweep.digits as digits
    from mixsweep.config.settings import parse_run
    from mixsweep.sweeping import execute

    seen = {}

    def fake_run(cfg, *, cache_dir, device):
        seen.update(threads=torch.get_num_threads(), det=torch.are_deterministic_algorithms_enabled())
        return {"status": "ok"}

    monkeypatch.setattr(digits, "run_digits", fake_run)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        run = parse_run({"experiment": "digits", "device": "cpu", "deterministic": deterministic, "threads": 1,
                         "paths": {"cache": "/nonexistent"}, "task": {"kind": "digits"}, "regularizer": {}})
        out = execute._dispatch(run)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=True)
    assert seen == {"threads": 1, "det": deterministic}
    assert out["env_determinism"] == {"deterministic_algorithms": deterministic, "cudnn_benchmark": not deterministic}
    assert out["env_device"] == "cpu"
