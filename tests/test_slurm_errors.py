"""What submitit raises when SLURM refuses an array or ends a job early becomes a one-line error.

The messages are submitit 1.5's own (submitit/core/utils.py CommandFunction, core.py
_get_outcome_and_result); no cluster is needed.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from submitit.core.utils import FailedJobError, UncompletedJobError

from mixsweep.sweeping import slurm
from mixsweep.sweeping.slurm import scheduler_error

TIMED_OUT = UncompletedJobError("Job 12_3 (task: 0) with path /r/.submitit/12_3/12_3_0_result.pkl\n"
                                "has not produced any output (state: TIMEOUT)\nError stream produced:\n----\nfoo")


def test_a_refused_submission_names_sbatchs_reason_and_the_settings_to_fix():
    e = FailedJobError("sbatch: error: Batch job submission failed: More processors requested than permitted\n")
    msg = str(scheduler_error(e))
    assert "\n" not in msg
    assert "(sbatch: error: Batch job submission failed: More processors requested than permitted)" in msg
    assert "conf/launcher/slurm.yaml" in msg and "hydra.launcher.partition=" in msg


def test_a_job_the_scheduler_ended_names_the_job_and_its_state_and_says_relaunch(monkeypatch):
    monkeypatch.setattr(slurm, "live_tasks", lambda array: None)  # squeue cannot answer
    msg = str(scheduler_error(TIMED_OUT, out=io.StringIO()))
    assert msg.startswith("SLURM job 12_3 ended as TIMEOUT before its run finished: relaunch the same command "
                          "(after `squeue` shows the array done)")
    assert "\n" not in msg


def fake_squeue(tmp_path: Path, monkeypatch, answers: list[str], code: int = 0, stderr: str = "") -> Path:
    """A ``squeue`` on PATH that prints ``answers[i]`` on its i-th call (then the last one), logging its argv."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for i, text in enumerate(answers):
        (tmp_path / f"answer{i}").write_text(text)
    script = bindir / "squeue"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
n=$(wc -l < {tmp_path}/calls)
i=$((n - 1)); [ $i -ge {len(answers)} ] && i={len(answers) - 1}
cat {tmp_path}/answer$i
echo -n "{stderr}" >&2
exit {code}
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(slurm, "POLL_S", 0.01)
    return tmp_path / "calls"


def test_an_ended_job_waits_for_the_rest_of_its_array_before_it_answers(tmp_path, monkeypatch):
    calls = fake_squeue(tmp_path, monkeypatch, ["RUNNING\nPENDING\n", "RUNNING\nCOMPLETED\n", ""])
    out = io.StringIO()
    msg = str(scheduler_error(TIMED_OUT, out=out))
    assert msg == ("SLURM job 12_3 ended as TIMEOUT before its run finished, and the other tasks of array 12 "
                   "have ended: relaunch the same command to run only what is missing; finished runs are kept")
    lines = calls.read_text().splitlines()
    assert len(lines) == 3 and all(line.split()[-3:-2] == ["12"] for line in lines), lines
    said = out.getvalue().splitlines()  # one progress line a minute: the first poll only, here
    assert len(said) == 1 and "waiting for the 2 other task(s) of array 12 still pending or running" in said[0]


def test_a_forgotten_job_counts_as_ended_and_an_unreachable_squeue_does_not(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, [""], code=1, stderr="slurm_load_jobs error: Invalid job id specified")
    assert slurm.live_tasks("12") == 0
    (tmp_path / "calls").unlink()
    (tmp_path / "bin" / "squeue").unlink()
    (tmp_path / "bin").rmdir()
    fake_squeue(tmp_path, monkeypatch, [""], code=1, stderr="Unable to contact slurm controller")
    assert slurm.live_tasks("12") is None


def test_ctrl_c_while_waiting_stops_the_wait_and_keeps_the_relaunch_advice(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, ["RUNNING\n"])

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(slurm.time, "sleep", interrupted)
    msg = str(scheduler_error(TIMED_OUT, out=io.StringIO()))
    assert "(after `squeue` shows the array done)" in msg and "have ended" not in msg


@pytest.mark.parametrize("text", ["RUNNING\n", ""])
def test_a_single_job_without_an_array_index_is_waited_for_by_its_id(tmp_path, monkeypatch, text):
    calls = fake_squeue(tmp_path, monkeypatch, [text, ""])
    e = UncompletedJobError("Job 105 (task: 0) with path /r/105_0_result.pkl\nhas not produced any output "
                            "(state: FAILED)")
    assert "and the other tasks of array 105 have ended" in str(scheduler_error(e, out=io.StringIO()))
    assert calls.read_text().split()[:5] == ["-h", "-r", "-j", "105", "-o"]


def test_other_errors_are_left_alone():
    assert scheduler_error(ValueError("Job 1 (state: X)")) is None
    assert scheduler_error(FailedJobError("something else")) is None


def failed_job(job: str, last_line: str) -> FailedJobError:
    """submitit 1.5's message for a job whose function raised (core.py Job.exception)."""
    return FailedJobError(
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        "Traceback (most recent call last):\n  File \"/v/submitit/core/submission.py\", line 55, in process_job\n"
        f"    result = delayed.result()\n{last_line}\n\n----------------------\n"
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
        f"  - /r/.submitit/{job}/{job}_0_log.err\n  - /r/.submitit/{job}/{job}_0_log.out")


def test_a_job_signalled_for_its_time_limit_before_its_run_began_says_raise_the_limit(monkeypatch):
    monkeypatch.setattr(slurm, "live_tasks", lambda array: 0)
    e = failed_job("105", "submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.")
    msg = str(scheduler_error(e, out=io.StringIO()))
    assert msg == ("SLURM job 105 reached its time limit before its run began (submitit's USR2 came while it "
                   "started), and the other tasks of array 105 have ended: raise hydra.launcher.timeout_min (keep "
                   "hydra.launcher.signal_delay_s below it in seconds), then relaunch the same command to run only "
                   "what is missing; finished runs are kept")


def test_a_job_that_raised_outside_its_run_names_the_error_and_its_log(monkeypatch):
    monkeypatch.setattr(slurm, "live_tasks", lambda array: None)
    msg = str(scheduler_error(failed_job("12_3", "ModuleNotFoundError: No module named 'mixsweep'"), out=io.StringIO()))
    assert msg.startswith("SLURM job 12_3 failed outside its run: ModuleNotFoundError: No module named 'mixsweep' "
                          "(log: /r/.submitit/12_3/12_3_0_log.err): fix that on the node")
    assert "(after `squeue` shows the array done)" in msg and "\n" not in msg


def test_a_time_limit_signal_carried_back_in_hydras_job_return_says_raise_the_limit():
    """submitit's handler raised inside Hydra's job wrapper, which returned the exception as the job's result."""
    msg = str(scheduler_error(UncompletedJobError("Job not requeued because: timed-out too many times."),
                              out=io.StringIO()))
    assert msg == ("a SLURM job reached its time limit before its run began (submitit's USR2 came while it started): "
                   "raise hydra.launcher.timeout_min (keep hydra.launcher.signal_delay_s below it in seconds), then "
                   "relaunch the same command (after `squeue` shows the array done) to run only what is missing; "
                   "finished runs are kept")
