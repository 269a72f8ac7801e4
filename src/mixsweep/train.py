"""One finetuning run: pretrained encoder + new head, a regularizer, the paper's recipe.

``run(cfg)`` returns the run's measurements as a dict of :class:`~mixsweep.records.RunRecord`
fields; the store adds identity and environment. Randomness comes from three independent
sources: ``init_seed`` (head init), ``data_seed`` (batch order) and ``noise_seed`` (dropout /
mixout masks), all equal to ``seed`` unless overridden.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from mixsweep.errors import UserError
from mixsweep.models import init_head, load_pretrained, load_tokenizer
from mixsweep.optim import build_optimizer, linear_warmup_decay
from mixsweep.progress import Progress
from mixsweep.regularizers import (
    WDecay,
    apply_mixout,
    head_module_names,
    pretrained_reference,
    set_dropout,
    squared_distance,
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name} was requested but no CUDA GPU is visible: use device=auto or device=cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def set_determinism(enabled: bool) -> dict:
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
    return {"deterministic_algorithms": enabled, "cudnn_benchmark": not enabled}


def seed_noise(seed: int) -> None:
    """Seed every global RNG that dropout and mixout masks draw from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def apply_noise_regularizer(model: torch.nn.Module, reg: Mapping[str, Any], head: list[str]) -> None:
    """Configure dropout or mixout as ``conf/regularizer/*.yaml`` describes.

    mixout(w_pre, p) *replaces* dropout (apply_mixout zeroes every dropout); otherwise the
    dropout probability is set everywhere, the head's input included.
    """
    mix, head_cfg = reg["mixout"], reg["head"]
    p = float(mix["p"])
    policy = head_cfg["policy"]
    if p > 0 or policy == "mixout_init":
        apply_mixout(model, p, layers=mix["layers"], output_layer=policy, output_p=head_cfg.get("p"),
                     granularity=mix["granularity"], grad=mix["grad"], head_names=head)
        return
    if reg.get("dropout") is not None:
        set_dropout(model, float(reg["dropout"]))
    if policy == "dropout":
        apply_mixout(model, 0.0, output_layer="dropout", output_p=head_cfg.get("p"), head_names=head)


def build_wdecay(model: torch.nn.Module, reg: Mapping[str, Any], head: list[str],
                 reference: Mapping[str, torch.Tensor]) -> WDecay | None:
    wd = reg["wdecay"]
    if float(wd["lam"]) <= 0:
        return None
    return WDecay(model, float(wd["lam"]), target=wd["target"], form=wd["form"], head=reg["head"]["wdecay"],
                  head_names=head, reference=reference)


def run(
    cfg: DictConfig | Mapping[str, Any],
    *,
    progress: bool = False,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Finetune and evaluate one configured run. ``on_eval(step, dev_metrics)`` is called after
    every dev evaluation; an exception it raises ends the run there (HPO pruning stops runs this way)."""
    from mixsweep.metrics import compute_metrics, majority_baseline
    from mixsweep.tasks import TaskSpec

    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    task = TaskSpec.from_config(c["task"])
    tr, reg = c["train"], c["regularizer"]
    device = resolve_device(str(c.get("device", "auto")))
    determinism = set_determinism(bool(c.get("deterministic", True)))
    if c.get("threads"):
        torch.set_num_threads(int(c["threads"]))
    t_start = time.perf_counter()

    train_loader, dev_loader, dev_labels = _loaders(c, task)

    model = load_pretrained(c["model"], task.num_labels)
    head = head_module_names(model)
    init_head(model, head, float(tr["head_init_std"]), int(c["init_seed"]))
    apply_noise_regularizer(model, reg, head)
    model.to(device)
    # One copy of w_pre serves wdecay(w_pre) and the ||w - w_pre||^2 log; mixout targets are shared.
    reference = pretrained_reference(model, head)
    wdecay = build_wdecay(model, reg, head, reference)

    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], c["optimizer"])
    steps_per_epoch = len(train_loader)
    total = int(tr["epochs"]) * steps_per_epoch
    if tr.get("max_steps"):
        total = min(total, int(tr["max_steps"]))
    scheduler = linear_warmup_decay(optimizer, total, float(tr["warmup_ratio"]))
    eval_every = int(tr.get("eval_every") or 0) or steps_per_epoch
    fault = c.get("fault") or {}
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(c.get("bf16")) and device.type == "cuda")

    def evaluate() -> dict[str, float]:
        model.eval()
        preds = []
        with torch.no_grad(), amp:
            for batch in dev_loader:
                batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
                logits = model(**batch).logits.float()
                preds.append(logits.squeeze(-1) if task.is_regression else logits.argmax(-1))
        model.train()
        return compute_metrics(task, torch.cat(preds).cpu().numpy(), dev_labels)

    seed_noise(int(c["noise_seed"]))
    model.train()
    curve: list[dict] = []
    losses: list[dict] = []
    status, step, eval_s = "ok", 0, 0.0
    bar = Progress(total, f"{task.name} {c.get('cell') or reg.get('name')} seed {c['seed']}", enabled=progress)
    t_train = time.perf_counter()
    while step < total and status == "ok":
        for batch in train_loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with amp:
                loss = model(**batch).loss
            if wdecay is not None:
                loss = loss + wdecay.penalty()
            loss = _inject_fault(fault, step + 1, loss)
            if not torch.isfinite(loss):
                status = "diverged"
                losses.append({"step": step + 1, "loss": float(loss.detach())})
                break
            loss.backward()
            if tr.get("max_grad_norm"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(tr["max_grad_norm"]))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            if wdecay is not None:
                wdecay.apply_decoupled(lr)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1, loss=float(loss.detach()))
            losses.append({"step": step, "loss": float(loss.detach())})
            if step % eval_every == 0 or step == total:
                t_eval = time.perf_counter()
                curve.append({"step": step, "epoch": step / steps_per_epoch, "metrics": evaluate()})
                eval_s += time.perf_counter() - t_eval
                if on_eval is not None:
                    on_eval(step, curve[-1]["metrics"])
            if step >= total:
                break
    bar.close()
    train_s = time.perf_counter() - t_train - eval_s

    final = curve[-1]["metrics"] if curve and status == "ok" else {}
    best_point = max(curve, key=lambda e: _score(e["metrics"].get(task.headline)), default=None)
    return {
        "status": status,
        "headline": task.headline,
        "final": final,
        "best": best_point["metrics"] if best_point else {},
        "best_step": best_point["step"] if best_point else None,
        "eval_curve": curve,
        "train_loss": losses,
        "majority": majority_baseline(task, dev_labels),
        "distance_sq": _finite_or_none(squared_distance(model, reference)),
        "times": {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t_start},
        "seeds": {"init": int(c["init_seed"]), "data": int(c["data_seed"]), "noise": int(c["noise_seed"])},
        "extra": {"steps": step, "train_size": len(train_loader.dataset), "dev_size": len(dev_loader.dataset)},
        "env_device": str(device),
        "env_determinism": determinism,
    }


def _loaders(c: Mapping[str, Any], task) -> tuple[DataLoader, DataLoader, np.ndarray]:
    """Tokenized (and cached) train/dev loaders; the train order is drawn from ``data_seed``."""
    from transformers import DataCollatorWithPadding

    from mixsweep.data import load_splits, tokenize_splits

    tokenizer = load_tokenizer(str(c["model"]["name_or_path"]), c["model"].get("revision"))
    splits = load_splits(task, c["data"])
    data = tokenize_splits(
        splits, tokenizer, max_length=int(c["data"]["max_length"]), cache_dir=c["data"].get("cache_dir"),
        cache_key={"task": task.name, "tokenizer": str(c["model"]["name_or_path"])},
    )
    collate = DataCollatorWithPadding(tokenizer)
    tr = c["train"]
    train = DataLoader(data["train"], batch_size=int(tr["batch_size"]), shuffle=True, collate_fn=collate,
                       generator=torch.Generator().manual_seed(int(c["data_seed"])))
    dev = DataLoader(data["dev"], batch_size=int(tr["eval_batch_size"]), shuffle=False, collate_fn=collate)
    return train, dev, np.asarray(splits["dev"]["label"])


def _inject_fault(fault: Mapping[str, Any], step: int, loss: torch.Tensor) -> torch.Tensor:
    """Test hook (``fault={kind: raise|nan_loss, step: N}``): crash, or poison the loss, at step N."""
    if not fault or step != int(fault.get("step", 1)):
        return loss
    if fault.get("kind") == "raise":
        raise RuntimeError(f"injected fault at step {step}")
    if fault.get("kind") == "nan_loss":
        return loss * float("nan")
    return loss


def _score(v: float | None) -> float:
    return -math.inf if v is None or math.isnan(v) else v


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
