"""What a finetuning run returns: its measurements as a dict of :class:`~mixsweep.records.RunRecord`
fields (the store adds identity and environment), and its per-example outputs, which the store writes
beside the record (:mod:`mixsweep.store.outputs`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from mixsweep.config.settings import Record
from mixsweep.data.dev_split import HALVES_RULE
from mixsweep.data.tasks import TaskSpec
from mixsweep.records import best_point
from mixsweep.regularizers import Method, RunContext, squared_distance
from mixsweep.run.evaluate import Evaluator
from mixsweep.store.outputs import RepresentationCapture, run_outputs


def run_record(*, task: TaskSpec, status: str, steps: int, curve: list[dict], losses: list[dict],
               evaluator: Evaluator, capture: RepresentationCapture | None, record: Record,
               model: torch.nn.Module, ctx: RunContext, methods: Sequence[Method], seeds: Any,
               train_loader: DataLoader, device: torch.device, determinism: dict,
               train_s: float, eval_s: float, t_start: float) -> dict[str, Any]:
    """The record of a run that ended with ``status`` after ``steps`` optimizer steps. ``final`` is the
    last eval point's dev metrics of a run that ended ``ok`` (else empty); ``best`` the eval point that
    is best on the task's headline metric; ``distance_sq`` ‖θ − w_pre‖² (None if not finite);
    ``times.total_s`` runs from ``t_start`` to now (the outputs built)."""
    from mixsweep.data.metrics import majority_baseline

    final = curve[-1]["metrics"] if curve and status == "ok" else {}
    best = best_point(curve, task.headline)
    outputs = run_outputs(record, logits=evaluator.logits, curve=curve, task=task, status=status,
                          labels=evaluator.labels, halves=evaluator.subsets, dev_dataset=evaluator.loader.dataset,
                          capture=capture)
    return {
        "status": status,
        "headline": task.headline,
        "final": final,
        "best": best["metrics"] if best else {},
        "best_step": best["step"] if best else None,
        "eval_curve": curve,
        "train_loss": losses,
        "majority": majority_baseline(task, evaluator.labels),
        "distance_sq": _finite_or_none(squared_distance(model, ctx.reference)),
        "times": {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t_start},
        "seeds": {"init": seeds.init, "data": seeds.data, "noise": seeds.noise},
        "extra": {"steps": steps, "train_size": len(train_loader.dataset),
                  "dev_size": len(evaluator.loader.dataset),
                  **({"dev_halves": HALVES_RULE} if "val_half" in evaluator.subsets else {}),
                  "methods": {m.name: m.record() for m in methods}},
        "env_device": str(device),
        "env_determinism": determinism,
        "outputs": outputs,  # per-example dev outputs and representations: written beside the record by the store
    }


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
