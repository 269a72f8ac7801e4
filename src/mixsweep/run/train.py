"""One finetuning run: pretrained encoder + new head, a regularizer, the paper's recipe.

``run(cfg)`` returns the run's measurements as a dict of :class:`~mixsweep.records.RunRecord`
fields; the store adds identity and environment. Randomness comes from three independent
sources: ``init_seed`` (head init), ``data_seed`` (batch order) and ``noise_seed`` (dropout /
mixout masks), all equal to ``seed`` unless overridden. Everything before the first step (the
config check, device, seeds, model and head, methods, optimizer, schedule, evaluation cadence) is
the one run setup, :mod:`mixsweep.run.prepare`, shared with the digits run and ``gpu-check``.

The regularizer block selects methods (:mod:`mixsweep.regularizers.base`); the loop names none of
them and calls their hooks in the documented order. One step (:mod:`mixsweep.run.step`)::

    loss = task loss → transform_loss (each method) → backward → after_backward (each method)
    → clip the global gradient norm at train.max_grad_norm (or the clipping of the one method that owns
    it, CWGNC's per tensor) → before_step → optimizer.step()
    → after_step → scheduler.step()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from mixsweep.config.settings import Fault, Run
from mixsweep.models.pretrained import load_tokenizer
from mixsweep.run import prepare
from mixsweep.run.evaluate import Evaluator
from mixsweep.run.progress import Progress
from mixsweep.run.record import run_record
from mixsweep.run.step import loss_entry, optimizer_step, transform_loss
from mixsweep.store.outputs import representation_capture


def run(
    cfg: Run | DictConfig | Mapping[str, Any],
    *,
    progress: bool = False,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    on_point: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Finetune and evaluate one configured run. ``on_eval(step, dev_metrics)`` is called after
    every dev evaluation; an exception it raises ends the run there (HPO pruning stops runs this way).
    ``on_point(eval_point, losses)`` gets each eval point and the loss entries since the previous one
    (live tracking, :mod:`mixsweep.tracking.live`); it must not raise. The dev set is scored by
    :class:`~mixsweep.run.evaluate.Evaluator`, the record assembled by :func:`~mixsweep.run.record.run_record`.
    ``cfg``: the run's frozen settings, or a resolved config that is parsed into them here (planning checked
    it too; ``rerun`` and HPO trials reach here without planning)."""
    from mixsweep.data.tasks import TaskSpec

    c = prepare.parsed(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg)
    task = TaskSpec.from_config(c.task)
    device, determinism = prepare.runtime(c)
    seeds = c.seeds
    t_start = time.perf_counter()

    train_loader, dev_loader, dev_labels = _loaders(c, task)

    steps_per_epoch = len(train_loader)
    s = prepare.finetune(c, task.num_labels, steps_per_epoch, device)
    model, methods, ctx, optimizer, scheduler = s.model, s.methods, s.ctx, s.optimizer, s.scheduler
    total, max_norm = s.cadence.total_steps, s.cadence.max_grad_norm
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=c.bf16 and device.type == "cuda")
    ctx.forward_context = lambda: amp  # a method's own forward pass (R3F's noisy one) runs like the step's

    evaluate = Evaluator(model, dev_loader, dev_labels, task, device, amp)
    # the final evaluation's pass also takes the dev representations, so keeping them costs no extra pass
    capture = representation_capture(c.record, model, len(dev_labels))

    curve: list[dict] = []
    losses: list[dict] = []
    status, step, eval_s = "ok", 0, 0.0
    logged = 0  # loss entries handed to on_point so far

    def eval_point(step: int) -> None:
        nonlocal eval_s, logged
        t_eval = time.perf_counter()
        curve.append({"step": step, "epoch": step / steps_per_epoch,
                      **evaluate(capture if step == total else None)})
        eval_s += time.perf_counter() - t_eval
        if on_point is not None:
            on_point(curve[-1], losses[logged:])
            logged = len(losses)
        if on_eval is not None:
            on_eval(step, curve[-1]["metrics"])

    if s.cadence.evaluates(0):  # before the noise seed: iterating the dev loader draws its base seed from
        # torch's stream, so training draws the same dropout masks with or without this evaluation
        eval_point(0)
    prepare.seed_noise(seeds.noise)
    model.train()
    bar = Progress(total, f"{task.name} {c.cell or c.regularizer_name} seed {c.seed}", enabled=progress)
    t_train = time.perf_counter()
    while step < total and status == "ok":
        for batch in train_loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with amp:
                outputs = model(**batch)
            ctx.batch, ctx.outputs = batch, outputs
            task_loss = outputs.loss
            loss, added = transform_loss(methods, task_loss, step, ctx)
            loss = _inject_fault(c.fault, step + 1, loss)
            if not torch.isfinite(loss):
                status = "diverged"
                losses.append({"step": step + 1, "loss": float(loss.detach())})
                break
            grad_norm = optimizer_step(methods, ctx, loss, step, optimizer, scheduler, max_norm)
            step += 1
            bar.update(1, loss=float(loss.detach()))
            losses.append(loss_entry(step, task_loss, added, ctx.penalties, grad_norm))
            ctx.penalties.clear()
            ctx.batch = ctx.outputs = None
            if s.cadence.evaluates(step):
                eval_point(step)
            if step >= total:
                break
    bar.close()
    train_s = time.perf_counter() - t_train - eval_s

    return run_record(task=task, status=status, steps=step, curve=curve, losses=losses, evaluator=evaluate,
                      capture=capture, record=c.record, model=model, ctx=ctx, methods=methods,
                      seeds=seeds, train_loader=train_loader, device=device, determinism=determinism,
                      train_s=train_s, eval_s=eval_s, t_start=t_start)


def _loaders(c: Run, task) -> tuple[DataLoader, DataLoader, np.ndarray]:
    """Tokenized (and cached) train/dev loaders; the train order is drawn from ``data_seed``."""
    from transformers import DataCollatorWithPadding

    from mixsweep.data import load_splits, tokenize_splits

    tokenizer = load_tokenizer(c.model.name_or_path, c.model.revision)
    splits = load_splits(task, c.data)
    tokenized = tokenize_splits(
        splits, tokenizer, max_length=c.data.max_length, cache_dir=c.data.cache_dir,
        cache_key={"task": task.name, "tokenizer": c.model.name_or_path},
    )
    collate = DataCollatorWithPadding(tokenizer)
    train = DataLoader(tokenized["train"], batch_size=c.train.batch_size, shuffle=True, collate_fn=collate,
                       generator=torch.Generator().manual_seed(c.seeds.data))
    dev = DataLoader(tokenized["dev"], batch_size=c.train.eval_batch_size, shuffle=False, collate_fn=collate)
    return train, dev, np.asarray(splits["dev"]["label"])


def _inject_fault(fault: Fault | None, step: int, loss: torch.Tensor) -> torch.Tensor:
    """Test hook (``fault={kind: raise|nan_loss, step: N}``): crash, or poison the loss, at step N."""
    if fault is None or step != fault.step:
        return loss
    if fault.kind == "raise":
        raise RuntimeError(f"injected fault at step {step}")
    return loss * float("nan")  # nan_loss, the other kind the schema allows
