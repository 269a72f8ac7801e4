"""Crash and resume: a sweep killed with SIGKILL during a run, between two runs or while committing
a record, then relaunched, keeps what finished, leaves no partial file, and ends bit for bit equal
to a sweep that was never interrupted."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import (
    assert_store_consistent,
    outcome,
    records,
    result_stamps,
    run_cli,
    run_dirs,
    start_cli,
    sweep_argv,
    write_study,
)
from mixsweep.cli import main

N_RUNS = 8  # 2 cells x 4 seeds
EPOCHS = 3  # long enough (~0.5 s a run) for a poller to catch a run in flight
SWEEP = "crash"

KILL_AFTER_RUNS = """
import os, signal
import mixsweep.sweeping.execute as ex
_execute, _done = ex.execute, []
def execute(cfg, **kw):
    out = _execute(cfg, **kw)
    _done.append(out)
    if len(_done) == int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)  # the record is committed, the next run not started
    return out
ex.execute = execute
"""
KILL_AT_COMMIT = """
import os, signal
_replace, _commits = os.replace, []
def replace(src, dst, **kw):
    if os.fspath(dst).endswith("result.json"):
        _commits.append(dst)
        if len(_commits) == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)  # temp record written and fsynced, not yet renamed
    return _replace(src, dst, **kw)
os.replace = replace
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    write_study(root, SWEEP, epochs=EPOCHS)
    return root


@pytest.fixture(scope="module")
def reference(root) -> dict:
    """The records of the same sweep, never interrupted, in its own results directory."""
    results = root / "reference"
    code, out, err = run_cli(root, sweep_argv(results, SWEEP))
    assert code == 0, err
    assert_store_consistent(results, SWEEP, N_RUNS)
    return records(results, SWEEP)


def unfinished(results: Path) -> list[Path]:
    return [d for d in run_dirs(results, SWEEP) if not (d / "result.json").exists()]


def relaunch_and_check(root: Path, results: Path, reference: dict, before: dict) -> None:
    """Relaunch; finished runs are skipped untouched, and the store ends equal to the reference."""
    code, out, err = run_cli(root, sweep_argv(results, SWEEP))
    assert code == 0, err
    assert f"{len(before)} done, 0 failed (will retry), {N_RUNS - len(before)} to do" in out
    assert out.count("] ok") == N_RUNS - len(before), "only the missing runs are executed"
    after = result_stamps(results, SWEEP)
    assert {rid: after[rid] for rid in before} == before, "a finished run was rewritten"
    assert_store_consistent(results, SWEEP, N_RUNS)
    resumed = records(results, SWEEP)
    assert resumed.keys() == reference.keys()
    for rid, rec in resumed.items():
        assert outcome(rec) == outcome(reference[rid]), f"run {rid} differs from the uninterrupted sweep"
    assert_same_aggregates(results, root / "reference")


def assert_same_aggregates(a: Path, b: Path) -> None:
    from mixsweep.analysis import aggregate, load_results

    pd.testing.assert_frame_equal(aggregate(load_results(a, SWEEP).runs), aggregate(load_results(b, SWEEP).runs),
                                  check_exact=True)


@pytest.mark.slow
def test_sigkill_during_a_run_then_relaunch(root, reference):
    results = root / "killed_in_run"
    proc = start_cli(root, sweep_argv(results, SWEEP))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        # A run directory exists from the moment its run takes the lock; it is committed by result.json.
        if len(result_stamps(results, SWEEP)) >= 2 and unfinished(results):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it could be killed mid-run"
    assert unfinished(results), "the kill landed during a run"
    before = result_stamps(results, SWEEP)
    assert 2 <= len(before) < N_RUNS
    relaunch_and_check(root, results, reference, before)


@pytest.mark.slow
def test_sigkill_between_two_runs_then_relaunch(root, reference):
    results = root / "killed_between"
    code, _, _ = run_cli(root, sweep_argv(results, SWEEP), prelude=KILL_AFTER_RUNS, KILL_AFTER="3")
    assert code == -signal.SIGKILL
    before = result_stamps(results, SWEEP)
    assert len(before) == 3 and not unfinished(results)
    relaunch_and_check(root, results, reference, before)


@pytest.mark.slow
def test_sigkill_while_committing_a_record_then_relaunch(root, reference):
    results = root / "killed_in_write"
    code, _, _ = run_cli(root, sweep_argv(results, SWEEP), prelude=KILL_AT_COMMIT, KILL_AT="4")
    assert code == -signal.SIGKILL
    before = result_stamps(results, SWEEP)
    assert len(before) == 3
    (half,) = unfinished(results)
    assert list(half.glob(".result.json.*.tmp")), "the kill left the uncommitted record as a temp file"
    relaunch_and_check(root, results, reference, before)


def test_a_failing_record_write_is_one_error_line_and_leaves_no_partial_run(tmp_path, monkeypatch, capsys):
    """A write error at the commit point (a full disk): the run leaves no directory and no temp
    file, the other runs are kept, the command fails with one line, and a relaunch completes."""
    monkeypatch.setenv("MIXSWEEP_SEARCH_PATH", str(tmp_path))
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    write_study(tmp_path, SWEEP, seeds=2)
    results = tmp_path / "results"
    real_replace, commits = os.replace, []

    def full_disk_once(src, dst, **kw):
        if os.fspath(dst).endswith("result.json"):
            commits.append(dst)
            if len(commits) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", full_disk_once)
    assert main(sweep_argv(results, SWEEP)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mixsweep: error: cannot write the record of run") and "No space left" in err
    assert len(err.splitlines()) == 1
    assert len(run_dirs(results, SWEEP)) == 3 and not unfinished(results), "the failed commit left its run dir"
    assert not list(results.rglob("*.tmp"))

    monkeypatch.setattr(os, "replace", real_replace)
    before = result_stamps(results, SWEEP)
    assert main(sweep_argv(results, SWEEP)) == 0
    assert "3 done, 0 failed (will retry), 1 to do" in capsys.readouterr().out
    assert {rid: s for rid, s in result_stamps(results, SWEEP).items() if rid in before} == before
    assert_store_consistent(results, SWEEP, 4)
