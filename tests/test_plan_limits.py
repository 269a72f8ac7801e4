"""Planning a study (issue 36 §3, §9): its size is counted before it is listed, with a one-line error
above the limit; thousands of runs plan in seconds, with the same run ids as composing each run
alone; an empty seed range and cell names Hydra cannot read are one-line study errors."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from helpers import cli_env, run_cli, write_study
from mixsweep.store.cell_id import cell_id
from mixsweep.store.runid import run_id
from mixsweep.sweeping.compose import compose_run
from mixsweep.sweeping.plan import build_plan
from test_hostile_input import one_error_line

ROOT = Path(__file__).resolve().parents[1]
MAX_RUNS = 10_000  # the limit the error names (mixsweep.sweeping.expand.MAX_RUNS)
MEMORY_CAP = 6 * 2**30  # bytes of address space: plenty for a plan, far below what listing 3e8 runs takes


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def test_a_study_over_the_limit_is_one_line_at_once_and_never_listed(tmp_path):
    # Before the check, `plan --seeds 100000000` listed 300 million runs and the OOM killer ended it
    # at ~21.5 GB; here the address space is capped, so a build without the check dies of MemoryError.
    argv = [sys.executable, "-m", "mixsweep.cli", "plan", "--seeds", "100000000", "--results", str(tmp_path / "r")]
    start = time.monotonic()
    proc = subprocess.run(argv, env=cli_env(tmp_path), capture_output=True, text=True, timeout=300,
                          preexec_fn=_capped)
    line = one_error_line(proc.returncode, proc.stderr)
    assert time.monotonic() - start < 60
    assert "300,000,000 runs" in line and f"limit of {MAX_RUNS:,} runs" in line, line
    assert "--cells" in line and "--task" in line and "--seeds" in line  # how to split it
    assert not (tmp_path / "r").exists()


def test_a_study_just_over_the_limit_is_refused(tmp_path):
    # smoke has 3 cells: 3,334 seeds are 10,002 runs
    code, _, err = run_cli(tmp_path, ["plan", "--seeds", str(MAX_RUNS // 3 + 1), "--results", str(tmp_path / "r")])
    assert f"{3 * (MAX_RUNS // 3 + 1):,} runs" in one_error_line(code, err)


def test_three_thousand_runs_plan_in_seconds(tmp_path):
    # 202 s before (four copies and three resolutions of the composed config per run), 8.5 s after, side by
    # side on a loaded 2-core machine
    start = time.monotonic()
    code, out, err = run_cli(tmp_path, ["plan", "--seeds", "1000", "--results", str(tmp_path / "r")], timeout=300)
    elapsed = time.monotonic() - start
    assert code == 0, err
    assert "3000 runs in 3 cells; 0 done, 0 failed (will retry), 3000 to do" in out
    assert elapsed < 60, f"planning 3,000 runs took {elapsed:.0f} s"


def test_planned_ids_are_those_of_each_run_composed_alone(tmp_path, monkeypatch):
    """The plan resolves each run on its cell's shared config; every seed key is set per run, so a run
    that overrides init_seed does not leak it into the next (whose init_seed follows its seed again)."""
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    jobs = [["task=rte", "regularizer=mixout", "seed=0", "init_seed=9"], ["task=rte", "regularizer=mixout", "seed=1"],
            ["task=rte", "regularizer=mixout", "seed=2", "data_seed=5"], ["task=rte", "regularizer=mixout", "seed=3"],
            ["task=mrpc", "regularizer=dropout", "seed=0"], ["task=mrpc", "regularizer=dropout", "seed=1"]]
    plan = build_plan(jobs, compose_run)
    alone = [compose_run(job) for job in jobs]
    assert [j.run_id for j in plan.jobs] == [run_id(cfg) for cfg in alone]
    assert [j.cell_id for j in plan.jobs] == [cell_id(cfg) for cfg in alone]
    assert len(set(j.run_id for j in plan.jobs)) == 6 and len(set(j.cell_id for j in plan.jobs)) == 2


# ---- §9: study errors up front --------------------------------------------------------------------

def test_an_empty_seed_range_is_one_study_error(tmp_path):
    text = (ROOT / "sweeps" / "smoke.yaml").read_text().replace("seed: range(0,3)", 'seed: "range(3,1)"')
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "empty.yaml").write_text(text.replace("sweep: smoke", "sweep: empty"))
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "empty", "--results", str(tmp_path / "r")])
    line = one_error_line(code, err)
    assert "seed=range(3,1) gives no values" in line and "sweeps/empty.yaml" in line, line
    assert "dry_run" not in line and "runs" not in out  # nothing planned, no "1 runs"


BAD_NAMES = ["a&b", "a#b", "a~b", "a'b", "a<b", "a{b}", "a^b", "a,b", "a=b", "+1+cmd|calc", "-2+3|x", "@cmd|x"]


def test_cell_names_hydra_cannot_read_are_refused_up_front_with_the_allowed_characters(tmp_path):
    # quoted as YAML keys (json.dumps), so that YAML reads each name as written
    cells = {json.dumps(name): ["regularizer=dropout", "regularizer.dropout.p=0.1"] for name in BAD_NAMES}
    write_study(tmp_path, "names", {"fine_0.1@x-y": ["regularizer=none"], **cells}, seeds=1)
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "names", "--results", str(tmp_path / "r")])
    line = one_error_line(code, err)
    assert "letters, digits and _ . - @" in line and "sweeps/names.yaml" in line, line
    assert all(repr(name) in line for name in BAD_NAMES), line
    assert "fine_0.1@x-y" not in line


def test_a_study_of_allowed_cell_names_plans(tmp_path):
    write_study(tmp_path, "okay", {"fine_0.1@x-y": ["regularizer=none"], "Mixout.7": ["regularizer=mixout"]}, seeds=1)
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "okay", "--results", str(tmp_path / "r")])
    assert code == 0, err
    assert "fine_0.1@x-y" in out and "Mixout.7" in out


def test_restarts_filled_into_a_cell_template_equal_resolving_each_in_full():
    """Seeds reach other keys by interpolation, copies, chains, strings, lists and resolvers: each
    restart's config equals OmegaConf's own resolution of the config with that restart's seeds."""
    from omegaconf import OmegaConf

    from mixsweep.sweeping.restarts import CellRestarts

    base = {"seed": 0, "init_seed": "${data_seed}", "data_seed": "${seed}", "noise_seed": 3,
            "name": "run_${init_seed}_x", "block": {"s": "${seed}"}, "copy": "${block}",
            "listed": ["${seed}", "k${noise_seed}"], "home": "${oc.env:HOME}"}
    restarts = ({"seed": 1}, {"seed": 7}, {"seed": 2, "data_seed": 9}, {"seed": 4, "noise_seed": 0})
    for extra in ({}, {"picked": "${oc.select:seed,0}"}, {"decoded": '${oc.decode:"${seed}"}'}):
        cell = CellRestarts(OmegaConf.create({**base, **extra}))
        for seeds in restarts:
            alone = OmegaConf.create({**base, **extra})
            for key, value in seeds.items():
                alone[key] = value
            assert cell.resolved(seeds) == OmegaConf.to_container(alone, resolve=True), (extra, seeds)
    # worked by hand: seed 2 with data_seed 9 -> init_seed 9 (via data_seed), name run_9_x
    cell = CellRestarts(OmegaConf.create(base))
    out = cell.resolved({"seed": 2, "data_seed": 9})
    assert (out["init_seed"], out["name"], out["copy"], out["listed"]) == (9, "run_9_x", {"s": 2}, [2, "k3"])
    assert cell.template is not None  # the shortcut was taken, not the full resolution
