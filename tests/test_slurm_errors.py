"""What submitit raises when SLURM refuses an array or ends a job early becomes a one-line error.

The messages are submitit 1.5's own (submitit/core/utils.py CommandFunction, core.py
_get_outcome_and_result); no cluster is needed.
"""

from __future__ import annotations

from submitit.core.utils import FailedJobError, UncompletedJobError

from mixsweep.slurm import scheduler_error


def test_a_refused_submission_names_sbatchs_reason_and_the_settings_to_fix():
    e = FailedJobError("sbatch: error: Batch job submission failed: More processors requested than permitted\n")
    msg = str(scheduler_error(e))
    assert "\n" not in msg
    assert "(sbatch: error: Batch job submission failed: More processors requested than permitted)" in msg
    assert "conf/launcher/slurm.yaml" in msg and "hydra.launcher.partition=" in msg


def test_a_job_the_scheduler_ended_names_the_job_and_its_state_and_says_relaunch():
    e = UncompletedJobError("Job 12_3 (task: 0) with path /r/.submitit/12_3/12_3_0_result.pkl\n"
                            "has not produced any output (state: TIMEOUT)\nError stream produced:\n----\nfoo")
    msg = str(scheduler_error(e))
    assert msg.startswith("SLURM job 12_3 ended as TIMEOUT before its run finished: relaunch the same command")
    assert "\n" not in msg


def test_other_errors_are_left_alone():
    assert scheduler_error(FailedJobError("Job (task=0) failed during processing with trace: ...")) is None
    assert scheduler_error(ValueError("Job 1 (state: X)")) is None
