"""One finetuning restart of the paper's Section 4 experiment: the function the runner calls."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from mixsweep.config.digits import DigitsTask
from mixsweep.config.settings import Run, parse
from mixsweep.digits.data import DigitsData, load_dataset
from mixsweep.digits.finetune import context, squared_distance
from mixsweep.digits.model import DigitsMLP, fed_by_dropout
from mixsweep.digits.pretrain import build_model, load_or_pretrain
from mixsweep.digits.train import Recipe, accuracy, fit, total_steps
from mixsweep.records import best_point
from mixsweep.regularizers import build_methods, lifecycle
from mixsweep.run import prepare

DISTANCE_PARAMS = "all trainable parameters: weights and biases of fc.0-fc.2 and the LayerNorm gains and biases"


def run_digits(cfg: Run | Mapping[str, Any], *, cache_dir: Path, device: torch.device) -> dict[str, Any]:
    """Finetune w_pre on the target digits under the run's ``regularizer`` and report the three Fig. 2 metrics.

    Every restart starts from the same cached w_pre; ``data_seed`` sets the data order and
    ``noise_seed`` the dropout/mixout masks (both default to ``seed``). Per epoch it records the
    target-val accuracy, the source-val accuracy (forgetting) and ``l2_sq`` = ‖w_ft − w_pre‖² over
    :data:`DISTANCE_PARAMS`. The returned dict holds the run-record fields (see mixsweep.records).
    """
    run = prepare.parsed(cfg)  # planning checked it too; rerun reaches here without planning
    task = parse(DigitsTask, run.task, "task")  # the task block, typed once: nothing below reads it by key
    with torch_threads(task.torch_threads):
        return _run(run, task, Path(cache_dir), torch.device(device))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op CPU threads inside the block (None: leave the caller's setting)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(run: Run, task: DigitsTask, cache_dir: Path, device: torch.device) -> dict[str, Any]:
    methods = build_methods(run.regularizer)  # validates every setting before any work
    seeds = run.seeds
    seed, data_seed, noise_seed = seeds.restart, seeds.data, seeds.noise

    t0 = time.perf_counter()
    w_pre = load_or_pretrain(task, cache_dir)
    pretrain_s = time.perf_counter() - t0
    source = load_dataset(task.data.source, task.data.split_seed).to(device)
    target = load_dataset(task.data.target, task.data.split_seed).to(device)

    model = build_model(task.model, dropout=task.pretrain.dropout)
    model.load_state_dict(w_pre.state)
    model.to(device)
    zero_shot = accuracy(model, target.val)
    recipe = Recipe.finetuning(task.finetune)
    ctx = context(model, total_steps=total_steps(len(target.train), recipe), noise_seed=noise_seed,
                  init_seed=int(w_pre.meta["seed"]), device=device)
    lifecycle.prepare(methods, ctx)  # dropout 0, then each method (dropout p, mixout's MixLinear layers)

    curve: list[dict[str, Any]] = []
    eval_s = 0.0

    def evaluate(epoch: int, step: int) -> None:
        nonlocal eval_s
        t = time.perf_counter()
        curve.append({"step": step, "epoch": epoch, "metrics": _metrics(model, source, target, w_pre.state)})
        eval_s += time.perf_counter() - t

    t1 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(noise_seed)  # dropout masks; mixout masks come from the generator above
        result = fit(
            model, target.train, recipe,
            order=torch.Generator().manual_seed(data_seed),
            after_epoch=evaluate,
            log_every=task.finetune.log_every,
            methods=methods, ctx=ctx,
        )
    train_s = time.perf_counter() - t1 - eval_s
    if result.diverged or not curve:
        evaluate(len(curve), result.steps)

    final = curve[-1]["metrics"]
    best = best_point(curve, "target_acc")
    distances = squared_distance(model, w_pre.state)
    return {
        "status": "diverged" if result.diverged else "ok",
        "headline": "target_acc",
        "final": final,
        "best": best["metrics"] if best else {},
        "best_step": best["step"] if best else None,
        "eval_curve": curve,
        "train_loss": result.train_loss,
        "distance_sq": final["l2_sq"],
        "majority": {"target_acc": _majority_fraction(target)},
        "times": {"train_s": train_s, "eval_s": eval_s, "pretrain_s": pretrain_s},
        "seeds": {"init": int(w_pre.meta["seed"]), "data": data_seed, "noise": noise_seed, "restart": seed},
        "extra": {
            "distance_params": DISTANCE_PARAMS,
            "l2_sq_by_param": distances,
            "methods": {m.name: m.record() for m in methods},
            "w_pre": {
                "key": w_pre.meta["key"],
                "seed": w_pre.meta["seed"],
                "epochs": w_pre.meta["epochs"],
                "source_val_acc": w_pre.meta["source_val_acc"],
                "target_val_acc_zero_shot": zero_shot,
                "grid": w_pre.meta["grid"],
            },
            "sizes": {
                "source_train": len(source.train), "source_val": len(source.val),
                "target_train": len(target.train), "target_val": len(target.val),
            },
            "steps": result.steps,
        },
    }


def _metrics(model: DigitsMLP, source: DigitsData, target: DigitsData, w_pre: Mapping[str, torch.Tensor]) -> dict:
    """``l2_sq`` covers :data:`DISTANCE_PARAMS`; ``l2_sq_regularized`` only the weight matrices of the layers
    that dropout feeds and mixout replaces, where the paper's App. B puts mixout's adaptive L2 pull. Their
    biases are left out: mixout never touches a bias, so its pull says nothing about them."""
    distances = squared_distance(model, w_pre)
    regularized = {f"{name}.weight" for name in fed_by_dropout(model)}
    return {
        "target_acc": accuracy(model, target.val),
        "source_acc": accuracy(model, source.val),
        "l2_sq": sum(distances.values()),
        "l2_sq_regularized": sum(v for k, v in distances.items() if k in regularized),
    }


def _majority_fraction(data: DigitsData) -> float:
    return float(torch.bincount(data.val.y).max()) / len(data.val)
