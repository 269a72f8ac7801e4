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
    """The one-line error for a refused submission, a job the scheduler ended, or a job that raised
    outside its run (its run records its own errors); None otherwise. For an ended or failed job it
    first waits for the other tasks of its array (:func:`wait_for_array`)."""
    text = " ".join(str(e).split())
    name = type(e).__name__
    out = sys.stderr if out is None else out
    if name == "FailedJobError" and "sbatch: error" in text:
        return UserError(f"SLURM refused the job array ({text[text.index('sbatch: error'):][:200]}): {RESOURCES_FIX}")
    if name == "UncompletedJobError":
        m = re.search(r"Job (\S+) .*?\(state: ([^)]*)\)", text)
        if m:
            what = f"SLURM job {m.group(1)} ended as {m.group(2)} before its run finished"
            return _after_array(m.group(1), what, "relaunch the same command", out)
        if "timed-out" in text:  # submitit's handler raised in the job, and Hydra's job return carried it here
            return _after_array(None, _time_limit_before_run("a SLURM job"), TIME_LIMIT_FIX, out)
        return _after_array(None, text[:200] or "a SLURM job ended without a result", "relaunch the same command",
                            out)
    if name == "FailedJobError" and "failed during processing" in text:
        job = re.search(r"([0-9]+(?:_[0-9]+)?)_[0-9]+_log\.err", str(e))
        log = re.search(r"(\S+_log\.err)", str(e))
        trace = str(e).split("-" * 22)
        lines = [line.strip() for line in (trace[1] if len(trace) > 2 else str(e)).splitlines() if line.strip()]
        last = lines[-1] if lines else "an error"
        jid = job.group(1) if job else "?"
        if "UncompletedJobError" in last and "timed-out" in last:
            what, fix = _time_limit_before_run(f"SLURM job {jid}"), TIME_LIMIT_FIX
        else:
            what = f"SLURM job {jid} failed outside its run: {last[:200]} (log: {log.group(1) if log else '?'})"
            fix = ("fix that on the node (its Python environment: the setup lines in conf/launcher/slurm.yaml), "
                   "then relaunch the same command")
        return _after_array(jid if job else None, what, fix, out)
    return None


TIME_LIMIT_FIX = ("raise hydra.launcher.timeout_min (keep hydra.launcher.signal_delay_s below it in seconds), "
                  "then relaunch the same command")


def _time_limit_before_run(job: str) -> str:
    # submitit's USR2 handler raises wherever the job is; inside the run, the run records `failed` itself
    return f"{job} reached its time limit before its run began (submitit's USR2 came while it started)"


def _after_array(job: str | None, what: str, fix: str, out: TextIO) -> UserError:
    """``what: fix ...`` once the other tasks of ``job``'s array have ended, or with advice to wait."""
    array = job.split("_")[0] if job else None
    if array and wait_for_array(array, job, out=out):
        return UserError(f"{what}, and the other tasks of array {array} have ended: {fix} to run only what is "
                         f"missing; finished runs are kept")
    return UserError(f"{what}: {fix} (after `squeue` shows the array done) to run only what is missing; "
                     f"finished runs are kept")


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
