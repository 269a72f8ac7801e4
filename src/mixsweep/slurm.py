"""What the scheduler says through submitit, turned into one-line messages that give the fix.

Two things go wrong on a cluster that are not bugs: ``sbatch`` refuses the array (an unknown
partition or account, more CPUs, memory or GPUs than a node has), or the scheduler ends a job
before its run returns (``scancel``, the time limit, a lost node). submitit raises
``FailedJobError`` / ``UncompletedJobError`` with multi-line messages for both. Matched by
class name so that local sweeps never import submitit.

hydra-submitit-launcher collects an array's results in order and raises at the first job that ended
early, while the array's other tasks run on. Relaunching then would find their runs locked and
in flight, so before it answers, :func:`scheduler_error` waits (with a line every minute) until
``squeue`` lists none of the array's tasks as pending or running.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import TextIO

from mixsweep.errors import UserError

RESOURCES_FIX = ("fix the partition, account, qos or resources in conf/launcher/slurm.yaml, or override them, "
                 "e.g. ARGS=\"hydra.launcher.partition=NAME hydra.launcher.gpus_per_node=0\"")


POLL_S = 15.0  # seconds between squeue calls while waiting for the rest of an array
SAY_EVERY_S = 60.0  # seconds between progress lines while waiting
# squeue's states of a job that holds or waits for a node
LIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                         "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"})


def scheduler_error(e: BaseException, *, out: TextIO | None = None) -> UserError | None:
    """The one-line error for a refused submission or a job the scheduler ended; None otherwise.
    For an ended job it first waits for the other tasks of its array (:func:`wait_for_array`)."""
    text = " ".join(str(e).split())
    name = type(e).__name__
    if name == "FailedJobError" and "sbatch: error" in text:
        return UserError(f"SLURM refused the job array ({text[text.index('sbatch: error'):][:200]}): {RESOURCES_FIX}")
    if name == "UncompletedJobError":
        m = re.search(r"Job (\S+) .*?\(state: ([^)]*)\)", text)
        what = (f"SLURM job {m.group(1)} ended as {m.group(2)} before its run finished" if m
                else text[:200] or "a SLURM job ended without a result")
        array = m.group(1).split("_")[0] if m else None
        if array and wait_for_array(array, m.group(1), out=sys.stderr if out is None else out):
            return UserError(f"{what}, and the other tasks of array {array} have ended: relaunch the same "
                             f"command to run only what is missing; finished runs are kept")
        return UserError(f"{what}: relaunch the same command (after `squeue` shows the array done) to run "
                         f"only what is missing; finished runs are kept")
    return None


def live_tasks(array: str) -> int | None:
    """How many tasks of job ``array`` squeue lists as pending or running; None if it cannot say."""
    try:
        done = subprocess.run(["squeue", "-h", "-r", "-j", array, "-o", "%T"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:  # a job the controller has already forgotten is over
        return 0 if "invalid job id" in done.stderr.lower() else None
    return sum(state in LIVE_STATES for state in done.stdout.split())


def wait_for_array(array: str, ended: str, *, out: TextIO) -> bool:
    """Block until no task of ``array`` is pending or running; True then. False, at once, when squeue
    cannot answer, or when the user presses Ctrl-C (the tasks keep running)."""
    said = -SAY_EVERY_S
    start = time.monotonic()
    try:
        while (n := live_tasks(array)) is not None:
            if n == 0:
                return True
            if time.monotonic() - said >= SAY_EVERY_S:
                said = time.monotonic()
                waited = f" ({int(said - start)} s so far)" if said > start + 1 else ""
                print(f"mixsweep: SLURM job {ended} ended early; waiting for the {n} other task(s) of array "
                      f"{array} still pending or running{waited}, so that a relaunch finds them done "
                      f"(Ctrl-C stops waiting; they keep running)", file=out, flush=True)
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        print(file=out, flush=True)
    return False
