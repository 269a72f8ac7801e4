"""Tiny end-to-end sweeps, in-process: records, resume, failures, determinism, plan, submitit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import CELLS, result_files, write_study
from mixsweep.cli import main


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSWEEP_SEARCH_PATH", str(tmp_path))
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    write_study(tmp_path, "t2x2", CELLS, seeds=2)
    return tmp_path


def records(results: Path, sweep: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(result_files(results, sweep))]


def sweep(results: Path, name: str, *extra: str) -> int:
    return main(["sweep", "--sweep", name, "--results", str(results), "--no-summary", *extra])


def test_tiny_multirun_writes_one_record_per_run(study, capsys):
    results = study / "results"
    assert sweep(results, "t2x2") == 0
    recs = records(results, "t2x2")
    assert len(recs) == 4
    assert {(r["label"], r["seed"]) for r in recs} == {
        ("dropout(0.1)", 0), ("dropout(0.1)", 1), ("mixout(w_pre,0.5)", 0), ("mixout(w_pre,0.5)", 1)
    }
    for r in recs:
        assert r["status"] == "ok" and r["task"] == "rte" and r["headline"] == "accuracy"
        assert 0.0 <= r["final"]["accuracy"] <= 100.0
        assert r["eval_curve"] and r["train_loss"] and r["distance_sq"] > 0
        assert r["env"]["versions"]["torch"] and "commit" in r["env"]["git"]
        assert r["config"]["regularizer"]["name"] in ("dropout", "mixout")
        run_dir = results / "runs" / r["run_id"]
        assert (run_dir / "curve.jsonl").read_text().count("\n") == len(r["eval_curve"])
    out = capsys.readouterr().out
    assert "run 4/4 done (0 skipped, 0 failed)" in out

    # Relaunching the same command resumes: nothing new runs, nothing is rewritten.
    mtimes = {p: p.stat().st_mtime_ns for p in result_files(results, "t2x2")}
    assert sweep(results, "t2x2") == 0
    assert "4 done, 0 failed (will retry), 0 to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in result_files(results, "t2x2")} == mtimes


def test_same_seed_gives_identical_metrics_and_curves(study):
    a, b = study / "a", study / "b"
    assert sweep(a, "t2x2", "--task", "rte") == 0
    assert sweep(b, "t2x2") == 0
    ra = {r["run_id"]: r for r in records(a, "t2x2")}
    rb = {r["run_id"]: r for r in records(b, "t2x2")}
    assert ra.keys() == rb.keys()
    for rid in ra:
        assert ra[rid]["final"] == rb[rid]["final"]
        assert ra[rid]["eval_curve"] == rb[rid]["eval_curve"]
        assert ra[rid]["train_loss"] == rb[rid]["train_loss"]
    seed0 = [r for r in ra.values() if r["seed"] == 0 and r["label"] == "dropout(0.1)"][0]
    seed1 = [r for r in ra.values() if r["seed"] == 1 and r["label"] == "dropout(0.1)"][0]
    assert seed0["train_loss"] != seed1["train_loss"], "different restarts differ"


def test_an_exception_in_one_cell_is_recorded_and_the_others_complete(study):
    cells = dict(CELLS, broken=["regularizer=dropout", "+fault={kind: raise, step: 1}"])
    write_study(study, "tfault", cells, seeds=2)
    results = study / "results"
    assert sweep(results, "tfault") == 1  # the others complete; a run of this launch failed (issue 24 §10)
    recs = records(results, "tfault")
    assert len(recs) == 6
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(failed) == 2 and all("injected fault" in r["error"] for r in failed)
    assert sum(r["status"] == "ok" for r in recs) == 4


def test_failed_runs_are_retried_on_relaunch(study, capsys):
    write_study(study, "tfail", {"broken": ["regularizer=dropout", "+fault={kind: raise, step: 1}"]}, seeds=2)
    results = study / "results"
    sweep(results, "tfail")
    capsys.readouterr()
    sweep(results, "tfail")
    assert "0 done, 2 failed (will retry), 0 to do" in capsys.readouterr().out


def test_a_nan_loss_stops_the_run_as_diverged(study):
    write_study(study, "tnan", {"nan": ["regularizer=none", "+fault={kind: nan_loss, step: 2}"]}, seeds=2)
    results = study / "results"
    assert sweep(results, "tnan", "--seeds", "1") == 0
    (rec,) = records(results, "tnan")
    assert rec["status"] == "diverged"
    assert rec["final"] == {} and rec["extra"]["steps"] == 1


def test_plan_counts_done_failed_and_todo_and_runs_nothing(study, capsys):
    results = study / "results"
    assert main(["plan", "--sweep", "t2x2", "--results", str(results)]) == 0
    assert "4 runs in 2 cells; 0 done, 0 failed (will retry), 4 to do" in capsys.readouterr().out
    assert not results.exists()
    sweep(results, "t2x2", "--seeds", "1")
    capsys.readouterr()
    assert main(["plan", "--sweep", "t2x2", "--results", str(results), "--seeds", "3"]) == 0
    assert "6 runs in 2 cells; 2 done, 0 failed (will retry), 4 to do" in capsys.readouterr().out


def test_paper_study_plan_counts_220_runs_for_one_task(capsys):
    assert main(["plan", "--sweep", "table1", "--task", "mrpc", "--seeds", "20", "--results", "/nonexistent"]) == 0
    assert "220 runs in 11 cells" in capsys.readouterr().out


def test_user_overrides_beat_cell_overrides(capsys):
    assert main(["plan", "--sweep", "table1", "--task", "rte", "--seeds", "1", "--results", "/nonexistent",
                 "regularizer.wdecay.lam=0.02"]) == 0
    out = capsys.readouterr().out
    assert "wdecay(w_pre,0.02)" in out and "wdecay(w_pre,0.04)" not in out
    # the mixout rows now carry wdecay(w_pre, 0.02) too, so 6 of the 11 rows repeat others
    assert "5 runs in 5 cells" in out and "6 grid points are the same run as another" in out


@pytest.mark.slow
def test_submitit_local_executor_runs_the_slurm_code_path(study):
    results = study / "results"
    assert sweep(results, "t2x2", "--seeds", "1", "--launcher", "submitit_local") == 0
    recs = records(results, "t2x2")
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    assert list((results / "t2x2" / ".hydra").glob("*/.submitit/*")), "submitit wrote its job folders"
