"""The SLURM path against a real scheduler: the one-node cluster of ``make slurm-up``.

Each test submits through ``sbatch`` (hydra-submitit-launcher for sweeps, submitit for HPO
workers) and reads the outcome through the public readers (``load_results``/``store.iter_records``,
``mixsweep plan``), never through the store's file layout. Every test skips, with the reason,
when no cluster answers. Job timings on a shared machine are noisy, so nothing here is timed:
tests wait for states (a record exists, a job ended), with generous upper bounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from conftest import tiny_overrides
from helpers import run_cli, start_cli, sweep_argv, write_study
from mixsweep.analysis import load_results, summary_table
from mixsweep.errors import UserError
from mixsweep.store import runs as store

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_DIR = Path(os.environ.get("MIXSWEEP_SLURM_DIR", "/tmp/mixsweep-slurm"))  # scripts/slurm-up's default
STUDY = "onearray"
N_RUNS = 4  # 2 cells x 2 seeds
LAUNCH_TIMEOUT_S = 420  # an upper bound for hangs, not a timing assertion
# Slows every optimizer step by sleeping (not computing), so a run is surely in flight when the
# scheduler acts; the numbers do not change. Loaded in the jobs through PYTHONPATH, which sbatch
# exports to them with the rest of the submitting environment.
SLOW_STEPS = """\
import os
_sleep = float(os.environ.get("MIXSWEEP_TEST_STEP_SLEEP") or 0)
if _sleep:
    import time
    import torch
    _backward = torch.Tensor.backward
    def backward(self, *args, **kwargs):
        time.sleep(_sleep)
        return _backward(self, *args, **kwargs)
    torch.Tensor.backward = backward
"""


def _slurm(cmd: list[str], env: dict[str, str], timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster() -> dict:
    """The reachable cluster: its environment, default partition and launcher overrides; else skip."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env and (SLURM_DIR / "slurm.conf").exists():
        env["SLURM_CONF"] = str(SLURM_DIR / "slurm.conf")
    if (SLURM_DIR / "bin" / "sacct").exists():  # slurm-up's stand-in for a cluster without accounting
        env["PATH"] = f"{SLURM_DIR / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if not shutil.which("sinfo", path=env["PATH"]):
        pytest.skip("no SLURM cluster: sinfo is not installed (start one with `make slurm-up`, as root)")
    try:
        info = _slurm(["sinfo", "-h", "-o", "%P|%T"], env)
    except subprocess.TimeoutExpired:
        pytest.skip("no SLURM cluster: sinfo did not answer within 15 s (start one with `make slurm-up`)")
    if info.returncode != 0 or not info.stdout.strip():
        why = (info.stderr.strip().splitlines() or ["no partition"])[-1]
        pytest.skip(f"no SLURM cluster reachable (SLURM_CONF={env.get('SLURM_CONF', 'unset')}): {why}; "
                    f"start one with `make slurm-up`")
    rows = [line.split("|") for line in info.stdout.split()]
    partition, state = next((r for r in rows if r[0].endswith("*")), rows[0])
    if not re.match(r"idle|mixed|alloc|completing", state):
        pytest.skip(f"SLURM partition {partition} has no usable node (state {state}): see `sinfo -R`")
    acct = _slurm(["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", "1"], env)
    if acct.returncode != 0:
        pytest.skip(f"sacct fails ({acct.stderr.strip()[:120]}) and there is no stand-in: submitit would wait "
                    f"forever on a cancelled job; start the cluster with `make slurm-up`")
    partition = partition.rstrip("*")
    # conf/launcher/slurm.yaml asks for a GPU node; the test node has 1 core per run and no GPU.
    resources = [f"hydra.launcher.partition={partition}", "hydra.launcher.gpus_per_node=0",
                 "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
    return {"env": {k: env[k] for k in ("SLURM_CONF", "PATH") if k in env}, "resources": resources}


@pytest.fixture(scope="module")
def root(tmp_path_factory, cluster) -> Path:
    root = tmp_path_factory.mktemp("slurm")
    write_study(root, STUDY, seeds=N_RUNS // 2)
    (root / "hook").mkdir()
    (root / "hook" / "sitecustomize.py").write_text(SLOW_STEPS)
    return root


@pytest.fixture(scope="module")
def local(root) -> Path:
    """The same study run in-process with the local launcher: the reference for every SLURM result."""
    results = root / "local"
    code, _, err = run_cli(root, sweep_argv(results, STUDY), timeout=LAUNCH_TIMEOUT_S)
    assert code == 0, err
    return results


def slurm_argv(results: Path, cluster: dict, *extra: str, sweep: str = STUDY) -> list[str]:
    return sweep_argv(results, sweep, "--launcher", "slurm", *cluster["resources"], "device=cpu", *extra)


def job_ids(cluster: dict) -> set[str]:
    """Every job the controller knows, finished ones included (MinJobAge keeps them)."""
    out = _slurm(["squeue", "-h", "-t", "all", "-o", "%i"], {**os.environ, **cluster["env"]})
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def new_arrays(cluster: dict, before: set[str]) -> dict[str, dict[str, str]]:
    """Jobs submitted since ``before``: array job id -> {array task id: state}."""
    out = _slurm(["squeue", "-h", "-t", "all", "-o", "%i|%F|%K|%T"], {**os.environ, **cluster["env"]})
    arrays: dict[str, dict[str, str]] = {}
    for line in out.stdout.split():
        jid, array, task, state = line.split("|")
        if jid not in before:
            arrays.setdefault(array, {})[task] = state
    return arrays


def scancel_since(cluster: dict, before: set[str]) -> None:
    for array in new_arrays(cluster, before):
        _slurm(["scancel", array], {**os.environ, **cluster["env"]})


def launch(root: Path, cluster: dict, argv: list[str], **env: str) -> tuple[int, str, str, dict]:
    """Run a CLI command that submits to the cluster; returns (code, out, err, the arrays it submitted)."""
    before = job_ids(cluster)
    proc = start_cli(root, argv, **cluster["env"], **env)
    try:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        scancel_since(cluster, before)
        pytest.fail(f"`mixsweep {' '.join(argv[:3])}` on SLURM did not end within {LAUNCH_TIMEOUT_S} s")
    return proc.returncode, out, err, settled_arrays(cluster, before)


def settled_arrays(cluster: dict, before: set[str], wait_s: float = 120) -> dict[str, dict[str, str]]:
    """:func:`new_arrays` once no task is still running: submitit returns when a job's result file
    exists, a moment before SLURM sees the job's process end."""
    deadline = time.monotonic() + wait_s
    while True:
        arrays = new_arrays(cluster, before)
        live = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"}
        if time.monotonic() > deadline or not any(live & set(t.values()) for t in arrays.values()):
            return arrays
        time.sleep(0.5)


def stored(results: Path, sweep: str = STUDY) -> dict:
    """run_id -> record, through the analysis reader; a corrupt record fails the test."""
    warnings: list[str] = []
    records = list(store.iter_records(results, sweep, warnings))
    assert not warnings, warnings
    ids = [r.run_id for r in records]
    assert len(ids) == len(set(ids)), f"a run recorded twice: {ids}"
    return {r.run_id: r for r in records}


def record_stamps(results: Path) -> dict[str, tuple[int, int, str]]:
    """run_id -> (mtime_ns, inode, text) of each committed record file, wherever the store keeps it."""
    out = {}
    for path in {p.resolve() for p in results.rglob("result.json")}:
        st = path.stat()
        out[json.loads(path.read_text())["run_id"]] = (st.st_mtime_ns, st.st_ino, path.read_text())
    return out


def plan_counts(root: Path, results: Path, sweep: str = STUDY) -> tuple[int, int, int]:
    code, out, err = run_cli(root, ["plan", "--sweep", sweep, "--results", str(results)])
    assert code == 0, err
    m = re.search(r"(\d+) done, (\d+) failed \(will retry\), (\d+) to do", out)
    assert m, out
    return int(m[1]), int(m[2]), int(m[3])


def same_outcome(a, b) -> bool:
    keys = ("status", "final", "best", "best_step", "eval_curve", "train_loss", "distance_sq", "seeds")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def test_a_study_is_one_array_each_run_recorded_once_and_equal_to_the_local_launcher(root, cluster, local):
    results = root / "slurm"
    code, _, err, arrays = launch(root, cluster, slurm_argv(results, cluster))
    assert code == 0, err

    assert len(arrays) == 1, f"expected one job array, got {arrays}"
    (tasks,) = arrays.values()
    assert sorted(tasks, key=int) == [str(i) for i in range(N_RUNS)]
    assert set(tasks.values()) == {"COMPLETED"}, tasks

    ours, ref = stored(results), stored(local)
    assert len(ours) == N_RUNS and set(ours) == set(ref)
    assert {r.status for r in ours.values()} == {"ok"}
    assert all(r.env.get("slurm", {}).get("SLURM_ARRAY_JOB_ID") == next(iter(arrays)) for r in ours.values())
    # the distances differ from run to run, so equal records are a real check, not four constants
    assert len({r.distance_sq for r in ref.values()}) == N_RUNS
    for rid, rec in ours.items():
        assert same_outcome(rec, ref[rid]), rid

    tidy = load_results(results, STUDY).runs.sort_values("run_id", ignore_index=True)
    pd.testing.assert_frame_equal(tidy, load_results(local, STUDY).runs.sort_values("run_id", ignore_index=True))
    assert summary_table(results, STUDY) == summary_table(local, STUDY)


def test_a_cancelled_array_relaunches_only_the_missing_runs_and_keeps_the_finished_ones(root, cluster, local):
    results = root / "cancel"
    env = {**cluster["env"]}
    before = job_ids(cluster)
    proc = start_cli(root, slurm_argv(results, cluster), **env)
    try:
        # cancel once one run is recorded while others are still running or waiting
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if results.is_dir() and record_stamps(results):
                break
            time.sleep(0.2)
        arrays = new_arrays(cluster, before)
        assert len(arrays) == 1, arrays
        (array, tasks), = arrays.items()
        assert "RUNNING" in tasks.values() or "PENDING" in tasks.values(), f"nothing left in flight: {tasks}"
        assert _slurm(["scancel", array], {**os.environ, **env}).returncode == 0
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            scancel_since(cluster, before)

    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert re.search(r"mixsweep: error: SLURM job \S+ ended as CANCELLED.*: relaunch the same command", err), err

    finished = stored(results)
    ref = stored(local)
    assert finished and len(finished) < N_RUNS, "the cancellation caught no run in flight"
    assert all(r.status == "ok" and same_outcome(r, ref[rid]) for rid, r in finished.items())
    assert not list(results.rglob("*.tmp")), "a temp file survived the cancellation"
    done, failed, todo = plan_counts(root, results)
    assert (done, failed, todo) == (len(finished), 0, N_RUNS - len(finished))
    stamps = record_stamps(results)

    code, _, err, arrays = launch(root, cluster, slurm_argv(results, cluster))
    assert code == 0, err
    assert len(arrays) == 1
    (tasks,) = arrays.values()
    assert len(tasks) == todo and set(tasks.values()) == {"COMPLETED"}, f"submitted {tasks} for {todo} missing runs"

    after = stored(results)
    assert set(after) == set(ref) and all(same_outcome(r, ref[rid]) for rid, r in after.items())
    assert {rid: record_stamps(results)[rid] for rid in stamps} == stamps, "a finished run was rewritten"
    assert not list(results.rglob("*.tmp"))
    assert plan_counts(root, results) == (N_RUNS, 0, 0)


def test_a_run_past_its_time_limit_is_never_recorded_done_and_the_relaunch_finishes_it(root, cluster, local):
    write_study(root, "timelimit", {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"]}, seeds=1)
    results = root / "timelimit"
    # 2 steps x 45 s of sleep cannot end within a 1-minute limit. submitit asks SLURM for USR2
    # signal_delay_s before the limit, and its handler raises wherever the job is: inside the run, which
    # records `failed`, or, on a loaded machine, while the job is still starting (no record). If the
    # signal were lost, the scheduler kills the job at the limit and the run is missing. Never done.
    # The delay must be shorter than the limit: with submitit's default (120 s) slurmctld signals at its
    # first check, which can come before the batch script has started Python and installed the handler,
    # and USR2's default action then kills the job as FAILED.
    argv = slurm_argv(results, cluster, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=30",
                      sweep="timelimit")
    code, _, err, arrays = launch(root, cluster, argv, PYTHONPATH=str(root / "hook"), MIXSWEEP_TEST_STEP_SLEEP="45")
    assert "Traceback" not in err
    (tasks,) = arrays.values()
    try:
        recs = stored(results, "timelimit")
    except UserError:  # not one record: the reader finds no sweep
        recs = {}
    if code == 1:  # the job handled the signal: the run is recorded failed, with why (exit 1: issue 24 §10)
        assert [r.status for r in recs.values()] == ["failed"], recs
        assert "timed-out" in next(iter(recs.values())).error
    elif "before its run began" in err:  # signalled while starting: no record, the limit named
        assert code == 2 and "reached its time limit" in err and "timeout_min" in err and not recs, (tasks, err)
    else:  # the scheduler killed it at the limit (TIMEOUT), or, on a loaded node, USR2 came before Python
        # had installed submitit's handler and its default action killed the job (FAILED): no record at all
        killed = "ended as TIMEOUT" in err or "ended as FAILED" in err
        assert code == 2 and killed and "relaunch the same command" in err and not recs, (tasks, err)
    assert plan_counts(root, results, "timelimit")[0] == 0

    code, _, err, arrays = launch(root, cluster, slurm_argv(results, cluster, sweep="timelimit"))
    assert code == 0, err
    (rec,) = stored(results, "timelimit").values()
    assert rec.status == "ok" and same_outcome(rec, stored(local)[rec.run_id])
    assert plan_counts(root, results, "timelimit") == (1, 0, 0)


HPO_SPACE = """\
base: [regularizer=mixout]
params:
  regularizer.mixout.p: {type: float, low: 0.1, high: 0.9}
  optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
"""


def test_hpo_runs_two_array_workers_on_one_study_and_stops_at_the_trial_cap(root, cluster, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(HPO_SPACE)
    results = tmp_path / "results"
    run = [o for o in tiny_overrides(tmp_path) if not o.startswith(("task=", "paths.results="))]
    argv = ["hpo", "--task", "rte", "--space", str(space), "--trials", "5", "--workers", "2", "--seeds", "1",
            "--study", "s", "--results", str(results), "--launcher", "slurm", "--no-prune",
            *run, *cluster["resources"]]
    # 2 s of sleep per step keeps a trial longer than a worker's start-up, so both workers claim some
    code, out, err, arrays = launch(root, cluster, argv, PYTHONPATH=str(root / "hook"), MIXSWEEP_TEST_STEP_SLEEP="2")
    assert code == 0, err
    assert "Traceback" not in err

    assert len(arrays) == 1, arrays
    (tasks,) = arrays.values()
    assert sorted(tasks) == ["0", "1"] and set(tasks.values()) == {"COMPLETED"}, tasks
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(results / "hpo" / "s" / "journal.log")))
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5, [t.state for t in trials]
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(workers) == 2, f"one array worker did every trial: {workers}"
    assert len(load_results(results, "hpo-s").runs) == 5


def test_slurm_up_finds_the_running_cluster_and_describes_this_machine(cluster):
    script = Path(__file__).resolve().parents[1] / "scripts" / "slurm-up"
    conf = Path(cluster["env"].get("SLURM_CONF", ""))
    if conf != SLURM_DIR / "slurm.conf":
        pytest.skip(f"the reachable cluster ({conf or 'the default config'}) was not started by scripts/slurm-up")
    before = (SLURM_DIR / "pids" / "slurmctld.pid").read_text()
    out = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "already running" in out.stdout and "make slurm-down" in out.stdout
    assert (SLURM_DIR / "pids" / "slurmctld.pid").read_text() == before, "a second controller was started"
    node = re.search(r"NodeName=\S+ .*CPUs=(\d+) RealMemory=(\d+)", conf.read_text())
    mem_total_mb = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())[1]) // 1024
    assert int(node[1]) == os.cpu_count() or int(node[1]) == len(os.sched_getaffinity(0))
    assert 0 < int(node[2]) <= mem_total_mb
