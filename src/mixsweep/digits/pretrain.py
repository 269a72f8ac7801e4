"""w_pre: pretrain on the source digits over a seeds × epochs grid, keep the best by source-val accuracy.

Each (seed, epochs) cell is a separate run with its own warmup/decay schedule, as in the paper's
grid of 5 runs × {1, …, 20} epochs. The winner is cached on disk under a key that hashes
everything that determines it, so every finetuning run of a sweep (and every worker process)
reuses one w_pre; it is also memoized in-process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from mixsweep.config.digits import DigitsModel, DigitsPretrain, DigitsTask
from mixsweep.config.settings import as_settings
from mixsweep.digits.data import DigitsData, load_dataset
from mixsweep.digits.model import DigitsMLP
from mixsweep.digits.train import Recipe, accuracy, fit
from mixsweep.store.atomic import atomic_write_with

CACHE_FORMAT = 1  # bump when the training code changes what a given config produces


@dataclass(frozen=True)
class PretrainedWeights:
    state: dict[str, torch.Tensor]  # state_dict of DigitsMLP, on the CPU
    meta: dict[str, Any]  # key, chosen seed/epochs, source_val_acc, the grid's accuracies, seconds


_MEMO: dict[str, PretrainedWeights] = {}


def cache_key(task: DigitsTask | Mapping[str, Any]) -> str:
    """Hash of what determines w_pre: model, pretrain recipe and grid, source data spec, split seed.

    ``sha256`` of the JSON (sorted keys, tuples as lists) of those typed settings, first 16 hex digits. For a
    task file that gives every key and writes its numbers as floats (conf/task/digits.yaml) these are the
    bytes the file's own mappings gave, so the caches written before the settings were typed stay valid; a
    key left out now hashes as its default, and ``0`` as ``0.0``."""
    task = as_settings(DigitsTask, task, "task")
    relevant = {
        "format": CACHE_FORMAT,
        "model": dataclasses.asdict(task.model),
        "pretrain": dataclasses.asdict(task.pretrain),
        "source": dataclasses.asdict(task.data.source),
        "split_seed": task.data.split_seed,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def load_or_pretrain(task: DigitsTask | Mapping[str, Any], cache_dir: Path) -> PretrainedWeights:
    """Return the cached w_pre for ``task``, building it once if no process has done so yet."""
    task = as_settings(DigitsTask, task, "task")
    key = cache_key(task)
    if key in _MEMO:
        return _MEMO[key]
    path = Path(cache_dir) / "digits" / f"w_pre-{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The lock makes a concurrent builder wait for the first one and then read its file.
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            weights = _load(path)
        else:
            source = load_dataset(task.data.source, task.data.split_seed)
            weights = pretrain_grid(source, task.model, task.pretrain)
            weights.meta["key"] = key
            _save_atomic(path, weights)
    _MEMO[key] = weights
    return weights


def pretrain_grid(
    source: DigitsData,
    model_cfg: DigitsModel,
    pretrain_cfg: DigitsPretrain,
    train_one: Callable[..., tuple[dict[str, torch.Tensor], float]] | None = None,
) -> PretrainedWeights:
    """Train every (seed, epochs) cell; keep the highest source-val accuracy (ties: fewer epochs, lower seed)."""
    train_one = train_one or pretrain_one
    t0 = time.perf_counter()
    grid: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor], dict[str, Any]] | None = None
    for seed in pretrain_cfg.seeds:
        for epochs in pretrain_cfg.epochs:
            state, acc = train_one(source, model_cfg, pretrain_cfg, seed=seed, epochs=epochs)
            cell = {"seed": seed, "epochs": epochs, "source_val_acc": acc}
            grid.append(cell)
            if best is None or acc > best[0]:
                best = (acc, state, cell)
    if best is None:
        raise ValueError("the pretraining grid is empty: give at least one seed and one epoch count")
    acc, state, cell = best
    meta = {**cell, "grid": grid, "pretrain_s": time.perf_counter() - t0}
    return PretrainedWeights(state, meta)


def pretrain_one(
    source: DigitsData, model_cfg: DigitsModel, pretrain_cfg: DigitsPretrain, *, seed: int, epochs: int
) -> tuple[dict[str, torch.Tensor], float]:
    """One pretraining run: init, dropout noise and data order all follow ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    model = build_model(model_cfg, dropout=pretrain_cfg.dropout, generator=rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        result = fit(model, source.train, Recipe.pretraining(pretrain_cfg, epochs), order=rng)
    acc = 0.0 if result.diverged else accuracy(model, source.val)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, acc


def build_model(model_cfg: DigitsModel, dropout: float, generator: torch.Generator | None = None) -> DigitsMLP:
    """The 784-hidden-10 MLP of ``model_cfg`` (weights ~ N(0, init_std²), biases 0)."""
    return DigitsMLP((784, *model_cfg.hidden, 10), dropout=dropout, init_std=model_cfg.init_std, generator=generator)


def _save_atomic(path: Path, weights: PretrainedWeights) -> None:
    atomic_write_with(path, lambda tmp: torch.save({"state": weights.state, "meta": weights.meta}, tmp))


def _load(path: Path) -> PretrainedWeights:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return PretrainedWeights(blob["state"], blob["meta"])
