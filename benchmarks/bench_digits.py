"""Seconds per digits finetuning run (conf/task/digits.yaml), dropout vs mixout and 1 vs 2 CPU threads.

Variants are interleaved round by round and summarised by their medians, so a busy machine slows all of
them alike; the printed ratios are the figures to compare. The projected sweep time is 170 runs (9 p ×
2 regularizers × 10 restarts, p = 0 shared) × the fastest median, without the runner's own overhead.

    .venv/bin/python benchmarks/bench_digits.py [--rounds 5] [--pretrain]

``--pretrain`` also times building w_pre from scratch (the default grid, the task's torch_threads) in a
temporary cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from mixsweep.config.paths import CONF_DIR
from mixsweep.digits import pretrain as pretrain_module
from mixsweep.digits import run_digits
from mixsweep.digits.run import torch_threads

SWEEP_RUNS = 9 * 2 * 10 - 10


def regularizer(kind: str, p: float) -> dict:
    return {
        "dropout": p if kind == "dropout" else 0.0,
        "mixout": {"p": p if kind == "mixout" else 0.0, "layers": "paper", "granularity": "neuron", "grad": "exact"},
        "wdecay": {"lam": 0.0},
        "head": {"policy": "none"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pretrain", action="store_true", help="also time building w_pre from scratch")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    task = yaml.safe_load((CONF_DIR / "task" / "digits.yaml").read_text())
    cache = Path(os.environ.get("MIXSWEEP_CACHE", ".cache/mixsweep"))

    if args.pretrain:
        with tempfile.TemporaryDirectory() as tmp:
            pretrain_module._MEMO.clear()
            t = time.perf_counter()
            with torch_threads(task["torch_threads"]):
                w_pre = pretrain_module.load_or_pretrain(task, Path(tmp))
            print(f"pretrain grid ({len(w_pre.meta['grid'])} runs, {task['torch_threads']} thread(s)): "
                  f"{time.perf_counter() - t:.1f} s, w_pre source-val acc {w_pre.meta['source_val_acc']:.4f}")

    variants = [(kind, threads) for threads in (1, 2) for kind in ("dropout", "mixout")]
    run_digits({"task": task, "regularizer": regularizer("mixout", 0.5), "seed": 0},
               cache_dir=cache, device=torch.device("cpu"))  # warm-up: w_pre, data, first-optimizer imports
    seconds: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for kind, threads in variants:
            cfg = {"task": {**task, "torch_threads": threads}, "regularizer": regularizer(kind, 0.5), "seed": r}
            t = time.perf_counter()
            run_digits(cfg, cache_dir=cache, device=torch.device("cpu"))
            seconds[kind, threads].append(time.perf_counter() - t)

    med = {v: statistics.median(s) for v, s in seconds.items()}
    for (kind, threads), m in med.items():
        print(f"{kind}(0.5), {threads} thread(s): median {m:.3f} s per run ({args.rounds} rounds)")
    for threads in (1, 2):
        print(f"mixout / dropout time, {threads} thread(s): {med['mixout', threads] / med['dropout', threads]:.2f}")
    for kind in ("dropout", "mixout"):
        print(f"{kind}: 2 threads / 1 thread time: {med[kind, 2] / med[kind, 1]:.2f}")
    fastest = min(med.values())
    print(f"projected {SWEEP_RUNS}-run offline sweep: {SWEEP_RUNS * fastest / 60:.1f} min (+ runner overhead)")


if __name__ == "__main__":
    main()
