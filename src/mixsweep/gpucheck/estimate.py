"""Table 1's wall time from measured step costs: pure arithmetic, no torch.

A Table 1 run (Lee et al. 2020) finetunes BERT-large for 3 epochs at batch 32 on one of RTE, MRPC,
CoLA, STS-B; the table has 11 regularizer rows × 4 tasks × 20 restarts = 880 runs. One run costs

    t_run = steps · t_step(row) + evals · n_dev · t_eval_example + t_overhead,
    steps = ⌈n_train / 32⌉ · 3,   evals = 3 (once per epoch, the harness's default),

where t_step(row) is the measured step time of the row's regularizer at B32×L128. Every batch is
priced at the full 128 tokens, so this is an upper bound: the harness pads per batch and GLUE
sentences are mostly shorter (CoLA's by far). On G GPUs with one process per GPU (the joblib
launcher's layout) the wall time is the makespan of the 880 runs on G workers, taken longest
run first (LPT), which is within max(t_run) of the ideal Σ t_run / G.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping

# GLUE train / dev sizes (dev = the labelled validation split).
GLUE_SIZES = {"rte": (2490, 277), "mrpc": (3668, 408), "cola": (8551, 1043), "stsb": (5749, 1500)}
# Table 1's rows by the regularizer config they use: Devlin, Wiese λ ∈ {.01,.04,.07,.10},
# mixout p ∈ {.7,.8,.9}, mixout p ∈ {.7,.8,.9} + wdecay(w_pre, .01). p and λ do not change a step's work.
TABLE1_ROWS = {"devlin": 1, "wdecay": 4, "mixout": 3, "mixout_wdecay": 3}
SEEDS, EPOCHS, BATCH = 20, 3, 32


def steps_per_run(n_train: int, batch: int = BATCH, epochs: int = EPOCHS) -> int:
    return math.ceil(n_train / batch) * epochs


def table1_runs(step_s: Mapping[str, float], eval_s_per_example: float, overhead_s: float,
                batch: int = BATCH) -> list[float]:
    """Seconds of each of Table 1's 880 runs, given seconds per step (of ``batch`` examples) for every
    row's regularizer."""
    missing = sorted(set(TABLE1_ROWS) - set(step_s))
    if missing:
        raise ValueError(f"no step time for {', '.join(missing)}")
    runs = []
    for n_train, n_dev in GLUE_SIZES.values():
        for reg, rows in TABLE1_ROWS.items():
            t = steps_per_run(n_train, batch) * step_s[reg] + EPOCHS * n_dev * eval_s_per_example + overhead_s
            runs += [t] * (rows * SEEDS)
    return runs


def makespan(durations: Iterable[float], workers: int) -> float:
    """Wall time of independent jobs on ``workers`` identical workers, longest job first (LPT)."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def table1_estimate(step_s: Mapping[str, float], eval_s_per_example: float, overhead_s: float,
                    gpus: Iterable[int] = (1, 8), concurrency_gain: float = 1.0, batch: int = BATCH) -> dict:
    """Wall-time estimate (seconds and hours) for Table 1 on each GPU count.

    ``concurrency_gain`` > 1 divides every figure: it is the measured speed-up of running k small
    runs at once on one GPU, reported as an optimistic variant because a BERT-large B32 step fills a
    GPU far more than the small runs it was measured on.
    """
    runs = table1_runs(step_s, eval_s_per_example, overhead_s, batch)
    out = {"runs": len(runs), "batch": batch, "run_s": {"min": min(runs), "max": max(runs), "sum": sum(runs)}, "gpus": {}}
    for g in gpus:
        wall = makespan(runs, g) / concurrency_gain
        out["gpus"][str(g)] = {"wall_s": wall, "wall_h": wall / 3600}
    return out
