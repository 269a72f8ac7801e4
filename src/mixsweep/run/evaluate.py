"""A finetuning run's evaluator: the dev set scored at each eval point.

Each eval point scores the whole dev set (``metrics``) and, where both are non-empty, its fixed
val/test halves (``val_half``, ``test_half``: :func:`mixsweep.data.dev_split.dev_halves`, per class;
STS-B per distinct score, as the reference), which the ``zhang2021`` selection protocol reads. The
evaluator keeps every eval point's dev logits (:attr:`Evaluator.logits`), in order, for the run's
outputs (:mod:`mixsweep.store.outputs`); the final point's pass may also take the dev representations
(a :class:`~mixsweep.store.outputs.RepresentationCapture`), so keeping them costs no extra pass.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mixsweep.data.dev_split import dev_halves
from mixsweep.data.tasks import TaskSpec
from mixsweep.store.outputs import RepresentationCapture


def dev_subsets(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The dev examples each eval point scores, by name: ``metrics`` (all of them), and ``val_half`` and
    ``test_half`` when the split leaves neither empty."""
    subsets = {"metrics": np.arange(len(labels))}
    val_half, test_half = dev_halves(labels)
    if len(val_half) and len(test_half):
        subsets.update(val_half=val_half, test_half=test_half)
    return subsets


class Evaluator:
    """``evaluator(capture)`` -> ``{subset: {metric: value}}`` for the model as it stands; the model is
    put in eval mode for the pass and back in train mode after it."""

    def __init__(self, model: torch.nn.Module, loader: DataLoader, labels: np.ndarray, task: TaskSpec,
                 device: torch.device, amp: Any) -> None:
        self.model, self.loader, self.labels, self.task, self.device, self.amp = \
            model, loader, labels, task, device, amp
        self.subsets = dev_subsets(labels)
        self.logits: list[np.ndarray] = []  # every eval point's dev logits, for the run's outputs

    def __call__(self, capture: RepresentationCapture | None = None) -> dict[str, dict[str, float]]:
        from mixsweep.data.metrics import compute_metrics

        self.model.eval()
        preds, logit_rows = [], []
        forward_kwargs = capture.forward_kwargs if capture is not None else {}
        with torch.no_grad(), self.amp, (capture or contextlib.nullcontext()):
            for batch in self.loader:
                batch = {k: v.to(self.device) for k, v in batch.items() if k != "labels"}
                out = self.model(**batch, **forward_kwargs)
                if capture is not None:
                    capture.add(out, batch["input_ids"].shape[0])
                logits = out.logits.float()
                logit_rows.append(logits)
                preds.append(logits.squeeze(-1) if self.task.is_regression else logits.argmax(-1))
        self.model.train()
        preds = torch.cat(preds).cpu().numpy()
        self.logits.append(torch.cat(logit_rows).cpu().numpy())
        return {name: compute_metrics(self.task, preds[idx], self.labels[idx])
                for name, idx in self.subsets.items()}
