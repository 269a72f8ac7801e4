"""Section 3: what a finetuning step costs per regularizer, measured side by side in one process.

Every regularizer gets its own copy of the model and optimizer (built by ``prepare_model``); the
variants are interleaved, every round runs each once in a rotating order, so drift of the machine
hits all alike. Reported per variant, per precision (fp32, and bf16 autocast where supported):

- ``step_s``: median wall-clock seconds of one optimizer step (forward, backward, step, hooks) at
  batch × seq tokens, with ``torch.cuda.synchronize()`` before and after on CUDA; ``steps_per_s``
  = 1 / step_s; ``ratio``: step_s / step_s of ``none`` (no regularization).
- ``resident_mib``: what the run keeps for its whole life (parameters, buffers such as mixout's
  targets, the frozen w_pre, optimizer state), counted as unique tensor storages on any device.
- ``step_peak_mib`` (CUDA only; the CPU has no peak counter): ``max_memory_allocated`` during one
  step minus ``memory_allocated`` just before it: activations, gradients, masks, temporaries.
- ``peak_mib`` = resident + step peak: about what a process training only this variant peaks at.

``eval_s_per_example``: a no-grad forward of the ``none`` model at 64 × seq tokens, per example
(what the Table 1 estimate charges for dev evaluations). The paper's App. E reference is
mixout / dropout = 843 s / 636 s = 1.325 (BERT-large, hardware not stated).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from mixsweep.config.settings import Model
from mixsweep.gpucheck.correctness import random_batch
from mixsweep.gpucheck.env import autocast
from mixsweep.gpucheck.prepare import Prepared, load_model, prepare_model, train_step

PAPER_MIXOUT_OVER_DROPOUT = 843 / 636
MIB = 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def unique_bytes(tensors: Sequence[Tensor]) -> int:
    seen: dict[tuple[int, str], int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), str(t.device))] = storage.nbytes()
    return sum(seen.values())


def timed_step(prep: Prepared, batch: dict[str, Tensor], amp: Any, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    train_step(prep, batch, amp)
    sync(device)
    return time.perf_counter() - start


def peak_step_bytes(prep: Prepared, batch: dict[str, Tensor], amp: Any, device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    train_step(prep, batch, amp)
    sync(device)
    return torch.cuda.max_memory_allocated(device) - before


def eval_seconds_per_example(prep: Prepared, seq: int, amp: Any, device: torch.device, repeats: int) -> float:
    batch = {k: v for k, v in random_batch(prep.model, 64, seq, device, seed=2).items() if k != "labels"}
    prep.model.eval()
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            with amp:
                prep.model(**batch)
            sync(device)
            if i:  # the first call warms up
                times.append(time.perf_counter() - start)
    prep.model.train()
    return statistics.median(times) / 64


def measure_model(model: Model, regularizers: Sequence[str], device: torch.device, *, batch: int, seq: int,
                  precisions: Sequence[str], warmup: int, rounds: int, deadline: float,
                  log: Callable[[str], None]) -> dict:
    """Interleaved step costs of ``regularizers`` on one model; ``deadline`` (perf_counter) cuts rounds short."""
    t0 = time.perf_counter()
    preps: list[Prepared] = []
    build_s: list[float] = []
    out: dict[str, Any] = {"model": str(model.name_or_path), "batch": batch, "seq": seq, "precisions": {}}
    try:  # every model copy is released at the end, also when building one runs out of memory
        for name in regularizers:
            start = time.perf_counter()
            preps.append(prepare_model(load_model(model), name, device))
            build_s.append(time.perf_counter() - start)
        out["parameters"] = n_params = sum(p.numel() for p in preps[0].model.parameters())
        # the first build reads the weights; later ones copy the cached model, as a sweep worker does
        out["setup_s"] = statistics.median(build_s[1:] or build_s)
        log(f"cost: {out['model']}: {len(preps)} variants built "
            f"({n_params / 1e6:.1f}M parameters each) in {time.perf_counter() - t0:.1f}s")
        data = random_batch(preps[0].model, batch, seq, device)
        for precision in precisions:
            amp = autocast(device, precision == "bf16")
            times: list[list[float]] = [[] for _ in preps]
            done = 0
            for r in range(warmup + rounds):
                if r >= warmup and done and time.perf_counter() > deadline:
                    break
                shift = r % len(preps)
                for i in [*range(shift, len(preps)), *range(shift)]:
                    if r < warmup:
                        train_step(preps[i], data, amp)
                    else:
                        times[i].append(timed_step(preps[i], data, amp, device))
                done += r >= warmup
            base = statistics.median(times[0])
            variants = []
            for prep, ts in zip(preps, times, strict=True):
                step_s = statistics.median(ts)
                resident = unique_bytes(prep.state_tensors())
                peak = peak_step_bytes(prep, data, amp, device)
                variants.append({
                    "regularizer": prep.name, "label": prep.label, "step_s": step_s, "steps_per_s": 1 / step_s,
                    "ratio": step_s / base, "step_s_all": ts, "resident_mib": resident / MIB,
                    "step_peak_mib": None if peak is None else peak / MIB,
                    "peak_mib": None if peak is None else (resident + peak) / MIB,
                })
            by_name = {v["regularizer"]: v for v in variants}
            entry = {"rounds": done, "warmup": warmup, "variants": variants,
                     "eval_s_per_example": eval_seconds_per_example(preps[0], seq, amp, device, 3)}
            if "mixout" in by_name and "dropout" in by_name:
                entry["mixout_over_dropout"] = by_name["mixout"]["step_s"] / by_name["dropout"]["step_s"]
                entry["paper_mixout_over_dropout"] = PAPER_MIXOUT_OVER_DROPOUT
            out["precisions"][precision] = entry
            log(f"cost: {out['model']} {precision}: " + ", ".join(
                f"{v['regularizer']} {v['steps_per_s']:.2f} steps/s (x{v['ratio']:.3f})" for v in variants))
    finally:
        preps.clear()
        free(device)
    return out


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
