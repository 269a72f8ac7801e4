"""Section 4: how many small runs per hour one device finishes with k runs at once.

k worker processes (spawned, as the joblib launcher's are) each first warm up (imports, a 1-step
run that loads the model and the tokenized data into the process's caches, CUDA context), then all
start together when the parent releases them and each does ``runs_per_worker`` ordinary runs through the runner
(``mixsweep.run.train.run``) on the same device. ``wall_s`` runs from that release to the last worker's
end, so it includes what a sweep worker pays per run (model copy, data loaders, evaluation) but
not process start-up. runs/hour = k · runs_per_worker / wall_s · 3600; ``gain`` = runs/hour ÷
runs/hour at k = 1. CPU threads are split between workers (cores // k each), as the launcher does.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue as queue_mod
import time
from collections.abc import Callable, Sequence
from typing import Any

from mixsweep.config.settings import Run


def restart(run: Run, seed: int) -> Run:
    """``run`` as restart ``seed``: the restart index and its three seeds (init, data, noise) all ``seed``."""
    return dataclasses.replace(run, seed=seed, init_seed=seed, data_seed=seed, noise_seed=seed)


def one_step(run: Run) -> Run:
    """``run`` capped at one optimizer step (``train.max_steps=1``): the worker's warm-up."""
    return dataclasses.replace(run, train=dataclasses.replace(run.train, max_steps=1))


def _worker(runs: list[Run], threads: int, go: Any, results: Any) -> None:
    try:
        import torch

        from mixsweep.run.train import run as train_run

        torch.set_num_threads(threads)
        train_run(one_step(runs[0]))
        results.put({"ready": True})
        go.wait()
        start, times = time.time(), []
        for run in runs:
            out = train_run(run)
            if out["status"] != "ok":
                raise RuntimeError(f"run ended {out['status']}")
            times.append(out["times"])
        results.put({"ok": True, "start": start, "end": time.time(), "times": times})
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which records it
        results.put({"ok": False, "error": f"{type(e).__name__}: {e}"})


def _collect(results: Any, procs: list, n: int, deadline: float, what: str) -> list[dict]:
    """n messages from the workers; fails fast on a worker's error, a dead worker or the deadline."""
    got: list[dict] = []
    while len(got) < n:
        try:
            msg = results.get(timeout=0.5)
        except queue_mod.Empty:
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not {what} before the time budget ran out") from None
            if not any(p.is_alive() for p in procs):
                raise RuntimeError(f"workers exited before they were {what} (exit codes "
                                   f"{[p.exitcode for p in procs]})") from None
            continue
        if msg.get("ok") is False:
            raise RuntimeError(msg["error"])
        got.append(msg)
    return got


def measure_k(run: Run, k: int, runs_per_worker: int, timeout_s: float) -> dict:
    """Start k workers on ``run`` (seeds differ per run), release them together, time them."""
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // k)
    procs = []
    for w in range(k):
        # the settings are pickled to the spawned worker, its own copy
        runs = [restart(run, w * runs_per_worker + r) for r in range(runs_per_worker)]
        procs.append(ctx.Process(target=_worker, args=(runs, threads, go, results), daemon=True))
    deadline = time.monotonic() + timeout_s
    launched = time.time()
    try:
        for p in procs:
            p.start()
        _collect(results, procs, k, deadline, "ready")
        start = time.time()
        go.set()
        outs = _collect(results, procs, k, deadline, "finished")
    except RuntimeError as e:
        raise RuntimeError(f"k={k}: {e}") from None
    finally:
        go.set()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    wall = max(o["end"] for o in outs) - start
    runs = k * runs_per_worker
    per_run = [t for o in outs for t in o["times"]]
    return {
        "k": k, "runs": runs, "threads_per_worker": threads, "startup_s": start - launched, "wall_s": wall, "runs_per_hour": runs / wall * 3600,
        "run_total_s_mean": sum(t["total_s"] for t in per_run) / runs,
        "run_train_s_mean": sum(t["train_s"] for t in per_run) / runs,
        "run_eval_s_mean": sum(t["eval_s"] for t in per_run) / runs,
    }


def measure(run: Run, ks: Sequence[int], runs_per_worker: int, deadline: float,
            log: Callable[[str], None], out: dict | None = None) -> dict:
    """runs/hour for every k in ``ks`` until ``deadline`` (time.monotonic); later k's are skipped.
    ``out`` (returned) is filled as each k finishes, so a failure keeps the k's measured before it."""
    out = {} if out is None else out
    rows, skipped = out.setdefault("k", []), out.setdefault("skipped_k", [])
    for k in ks:
        left = deadline - time.monotonic()
        # worst case: k runs share the device with no gain over running them one after another
        needed = (rows[-1]["startup_s"] * 1.5 + rows[-1]["wall_s"] * k / rows[-1]["k"] + 10) if rows else 20
        if left < needed:
            skipped.append(k)
            log(f"throughput: k={k} skipped ({left:.0f}s left of the budget)")
            continue
        log(f"throughput: k={k}: starting {k} worker(s)")
        row = measure_k(run, k, runs_per_worker, timeout_s=left)
        rows.append(row)
        log(f"throughput: k={k}: {row['runs']} runs in {row['wall_s']:.1f}s = {row['runs_per_hour']:.0f} runs/hour")
        base = rows[0]["runs_per_hour"] if rows[0]["k"] == 1 else None
        row["gain"] = row["runs_per_hour"] / base if base else None
    return out
