"""Concurrency: two sweeps on one results directory execute each run once (per-run lock), and the
tokenization and pretrained-weight caches stay valid when two processes build them at once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import GLUE
from helpers import assert_store_consistent, cli_env, start_cli, sweep_argv, write_study

SWEEP = "conc"
N_RUNS = 8
DONE_LINE = re.compile(r"^\[rte (\S+) seed (\d+)\] ok", re.M)


def run_two_sweeps(root: Path, first: tuple[str, ...] = (), second: tuple[str, ...] = ()) -> list[str]:
    """Launch the same sweep twice at once (each with its own extra arguments) on one results dir."""
    write_study(root, SWEEP, epochs=2)
    results = root / "results"
    procs = [start_cli(root, sweep_argv(results, SWEEP, *extra)) for extra in (first, second)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outs.append(out)
    assert_store_consistent(results, SWEEP, N_RUNS)
    executed = [m.groups() for out in outs for m in DONE_LINE.finditer(out)]
    assert len(executed) == len(set(executed)) == N_RUNS, f"some run executed twice: {sorted(executed)}"
    return outs


@pytest.mark.slow
def test_two_sweeps_at_once_execute_each_run_once(tmp_path):
    run_two_sweeps(tmp_path)


@pytest.mark.slow
def test_a_joblib_sweep_with_two_workers_beside_a_local_one_executes_each_run_once(tmp_path):
    """Three executors (two joblib worker processes and a serial sweep) race over the same runs."""
    run_two_sweeps(tmp_path, ("--launcher", "joblib", "--workers", "2"), ("--launcher", "local"))


BUILD_CACHES = """
import hashlib, json, os, sys, time
from pathlib import Path
from mixsweep.data import load_splits, tokenize_splits
from mixsweep.digits.pretrain import load_or_pretrain
from mixsweep.models.pretrained import load_tokenizer
from mixsweep.data.tasks import TaskSpec
from omegaconf import OmegaConf

cache, glue, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
rte = TaskSpec.from_config(OmegaConf.to_container(OmegaConf.load("conf/task/rte.yaml")))
digits = OmegaConf.to_container(OmegaConf.load("conf/task/digits.yaml"))
digits["data"]["source"]["limit"] = 300
digits["pretrain"].update(seeds=[0], epochs=[1, 2])
splits = load_splits(rte, {"source": "glue_dir", "glue_dir": glue})
tokenizer = load_tokenizer("tiny")
while not go.exists():  # start both builds at the same moment
    time.sleep(0.005)
data = tokenize_splits(splits, tokenizer, max_length=64, cache_dir=cache / "tokenized", cache_key={"task": "rte"})
weights = load_or_pretrain(digits, cache)
digest = lambda b: hashlib.sha256(b).hexdigest()
print(json.dumps({
    "tokens": {s: digest(json.dumps(list(data[s]["input_ids"])).encode()) for s in sorted(data)},
    "weights": {k: digest(v.numpy().tobytes()) for k, v in sorted(weights.state.items())},
}))
"""


@pytest.mark.slow
def test_caches_built_by_two_processes_at_once_stay_valid(tmp_path):
    from mixsweep.config.paths import ROOT

    cache, go = tmp_path / "cache", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_CACHES, str(cache), str(GLUE), str(go)], cwd=ROOT,
                              env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    time.sleep(1.0)
    go.touch()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0] == outs[1], "both processes see the same tokens and weights"

    entries = sorted(p.name for p in (cache / "tokenized").iterdir() if not p.name.endswith(".lock"))
    assert len(entries) == 1 and not entries[0].startswith("."), entries
    weight_files = sorted(p.name for p in (cache / "digits").iterdir() if not p.name.endswith(".lock"))
    assert len(weight_files) == 1 and weight_files[0].endswith(".pt"), weight_files
    assert not list(cache.rglob("*.tmp"))

    # What is on disk is what a fresh process reads back: run the script once more on the built cache.
    go.touch()
    again = subprocess.run([sys.executable, "-c", BUILD_CACHES, str(cache), str(GLUE), str(go)], cwd=ROOT,
                           env=cli_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == outs[0]
