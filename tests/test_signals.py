"""SIGTERM and Ctrl-C (issue 36 §10): a sweep stopped by a scheduler's time limit, ``kill`` or Ctrl-C
ends with one line that says so and that relaunching resumes, keeps its finished run and leaves no
folder of the run it stopped (a relaunch plans it as to do)."""

from __future__ import annotations

import signal

import pytest

from helpers import run_cli, run_dirs, sweep_argv, write_study

# The signal comes while the second run is under way (inside its run lock, before training).
SIGNAL_IN_SECOND_RUN = """
import os, signal
import mixsweep.sweeping.execute as ex
_dispatch, _calls = ex._dispatch, []
def _dispatch_then_signal(cfg, *a, **k):
    _calls.append(1)
    if len(_calls) == 2:
        os.kill(os.getpid(), getattr(signal, os.environ["SEND_SIGNAL"]))
    return _dispatch(cfg, *a, **k)
ex._dispatch = _dispatch_then_signal
"""


@pytest.mark.parametrize(("name", "code", "says"), [
    ("SIGTERM", 128 + signal.SIGTERM, "mixsweep: stopped by SIGTERM"),
    ("SIGINT", 130, "mixsweep: interrupted (Ctrl-C)"),
])
def test_a_stopped_sweep_says_so_in_one_line_and_relaunching_resumes(tmp_path, name, code, says):
    write_study(tmp_path, "stop", {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"]}, seeds=2)
    results = tmp_path / "results"
    rc, out, err = run_cli(tmp_path, sweep_argv(results, "stop"), prelude=SIGNAL_IN_SECOND_RUN, SEND_SIGNAL=name,
                           timeout=300)
    assert rc == code, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(says) and "relaunch the same command to resume" in lines[0], lines[0]
    dirs = run_dirs(results, "stop")
    assert [sorted(p.name for p in d.iterdir() if p.suffix != ".npz") for d in dirs] == \
        [[".lock", "curve.jsonl", "result.json"]], "the stopped run left its folder"

    rc, out, err = run_cli(tmp_path, ["plan", "--sweep", "stop", "--results", str(results)])
    assert rc == 0 and "1 done, 0 failed (will retry), 1 to do" in out, out + err
