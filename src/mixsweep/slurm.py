"""What the scheduler says through submitit, turned into one-line messages that give the fix.

Two things go wrong on a cluster that are not bugs: ``sbatch`` refuses the array (an unknown
partition or account, more CPUs, memory or GPUs than a node has), or the scheduler ends a job
before its run returns (``scancel``, the time limit, a lost node). submitit raises
``FailedJobError`` / ``UncompletedJobError`` with multi-line messages for both. Matched by
class name so that local sweeps never import submitit.
"""

from __future__ import annotations

import re

from mixsweep.errors import UserError

RESOURCES_FIX = ("fix the partition, account, qos or resources in conf/launcher/slurm.yaml, or override them, "
                 "e.g. ARGS=\"hydra.launcher.partition=NAME hydra.launcher.gpus_per_node=0\"")


def scheduler_error(e: BaseException) -> UserError | None:
    """The one-line error for a refused submission or a job the scheduler ended; None otherwise."""
    text = " ".join(str(e).split())
    name = type(e).__name__
    if name == "FailedJobError" and "sbatch: error" in text:
        return UserError(f"SLURM refused the job array ({text[text.index('sbatch: error'):][:200]}): {RESOURCES_FIX}")
    if name == "UncompletedJobError":
        m = re.search(r"Job (\S+) .*?\(state: ([^)]*)\)", text)
        what = (f"SLURM job {m.group(1)} ended as {m.group(2)} before its run finished" if m
                else text[:200] or "a SLURM job ended without a result")
        return UserError(f"{what}: relaunch the same command (after `squeue` shows the array done) to run "
                         f"only what is missing; finished runs are kept")
    return None
