"""``mixsweep hpo`` end to end on the tiny model: cap and resume, reuse, stale trials, workers, pruning."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import tiny_overrides
from mixsweep.cli import main
from mixsweep.errors import UserError
from mixsweep.hpo.driver import make_storage, run_study
from mixsweep.hpo.request import HpoRequest

# Learning rates the tiny random-init model can move with (the shipped spaces target real models).
SPACE = """\
base: [regularizer=mixout]
params:
  regularizer.mixout.p: {type: float, low: 0.1, high: 0.9}
  optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
"""


@pytest.fixture
def make_req(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    space = tmp_path / "tiny_space.yaml"
    space.write_text(SPACE)
    base = [o for o in tiny_overrides(tmp_path) if not o.startswith(("task=", "paths.results="))]

    def make(**kw) -> HpoRequest:
        kw.setdefault("trials", 4)
        kw.setdefault("seeds", 1)
        return HpoRequest(task="rte", space=str(space), results=str(tmp_path / "results"), study="t",
                          overrides=[*base, "train.eval_every=1"], **kw)

    return make


def trials(req: HpoRequest) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=req.study_name, storage=make_storage(req)).get_trials()


def result_files(req: HpoRequest) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (Path(req.results) / "runs").glob("*/result.json")}


def test_a_study_runs_to_its_cap_resumes_without_new_trials_and_reuses_stored_runs(make_req, capsys):
    req = make_req()
    best = run_study(req)
    ts = trials(req)
    assert [t.number for t in ts] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in ts)
    assert best is not None and best.values == [max(t.value for t in ts)]
    out_dir = req.study_dir
    assert sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")) == \
        ["best.json", "history.png", "importance.png", "journal.log", "sweeps", "trials.csv"]
    assert len((out_dir / "trials.csv").read_text().strip().splitlines()) == 1 + 4
    summary = json.loads((out_dir / "best.json").read_text())
    assert summary["best"]["number"] == best.number and summary["trials"] == {"COMPLETE": 4}
    out = capsys.readouterr().out
    assert f"best trial #{best.number}" in out and "make sweep SWEEP=hpo_t TASK=rte SEEDS=20" in out
    stored = result_files(req)
    assert len(stored) == 4 and all(json.loads(p.read_text())["status"] == "ok" for p in stored)

    # The same command again: the cap counts the total, so nothing runs and nothing is rewritten.
    run_study(req)
    assert len(trials(req)) == 4 and result_files(req) == stored

    # A trial that repeats trial 0's point reads its run back from the store.
    study = optuna.load_study(study_name=req.study_name, storage=make_storage(req))
    study.enqueue_trial(ts[0].params)
    run_study(make_req(trials=5))
    again = trials(req)[4]
    assert again.params == ts[0].params and again.value == ts[0].value
    assert result_files(req) == stored


def test_the_confirming_sweep_file_composes_tuned_and_untuned_cells(make_req, monkeypatch, capsys):
    req = make_req(trials=2)
    best = run_study(req)
    monkeypatch.setenv("MIXSWEEP_SEARCH_PATH", str(req.study_dir))
    capsys.readouterr()
    assert main(["plan", "--sweep", "hpo_t", "--seeds", "20", "--results", req.results]) == 0
    out = capsys.readouterr().out
    assert "40 runs in 2 cells" in out
    p = best.params["regularizer.mixout.p"]
    assert f"mixout(w_pre,{float(f'{p:.6g}'):g})" in out and "mixout(w_pre,0.9)" in out  # tuned, untuned


def test_a_changed_objective_refuses_to_resume_the_study(make_req):
    run_study(make_req(trials=1))
    with pytest.raises(UserError, match="created with different seeds"):
        run_study(make_req(trials=2, seeds=2))


KILLED_WORKER = """
import os, sys
from mixsweep.hpo.driver import open_study, worker_id
from mixsweep.hpo.request import HpoRequest
from mixsweep.hpo.space import load_space, suggest
req = HpoRequest(task="rte", space={space!r}, results={results!r}, study="t", seeds=1, overrides={overrides!r})
space = load_space(req.space)
study = open_study(req, space)
trial = study.ask()
trial.set_user_attr("worker", worker_id())
suggest(trial, space)
os._exit(0)  # killed mid-trial: the trial stays RUNNING
"""


def test_a_killed_workers_trial_is_failed_on_relaunch_and_its_params_retried(make_req):
    req = make_req(trials=2, retry_failed=1)
    script = KILLED_WORKER.format(space=req.space, results=req.results, overrides=req.overrides)
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True)
    (orphan,) = trials(req)
    assert orphan.state == TrialState.RUNNING

    run_study(req)
    ts = trials(req)
    assert ts[0].state == TrialState.FAIL
    retry = next(t for t in ts if t.user_attrs.get("retry_of") == 0)
    assert retry.params == orphan.params and retry.state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in ts) == 2

    run_study(req)  # the failed trial was retried once already: nothing is enqueued again
    assert len(trials(req)) == len(ts)


@pytest.mark.slow  # two spawned processes each import torch and transformers (~30 s on 2 busy cores)
def test_two_concurrent_workers_reach_the_cap_exactly(make_req):
    req = make_req(trials=5, workers=2)
    run_study(req)
    ts = trials(req)
    assert sorted(t.number for t in ts) == list(range(5))
    assert all(t.state == TrialState.COMPLETE for t in ts)
    # each worker claims its first trial at start-up, long before the other could finish them all
    assert len({t.user_attrs["worker"] for t in ts}) == 2


def test_pruning_stops_a_trial_mid_run_and_its_unfinished_run_leaves_no_record(make_req):
    keep = optuna.pruners.ThresholdPruner(lower=-1.0)  # scores are >= 0: never prunes
    run_study(make_req(trials=2, seeds=2), pruner=keep)
    first = trials(make_req())
    # 2 train steps per run, evaluated after each: restart 2 continues at steps 3, 4
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in first)
    stored = result_files(make_req())
    assert len(stored) == 4

    always = optuna.pruners.ThresholdPruner(lower=101.0)  # any score is below: prune at the first eval
    run_study(make_req(trials=3, seeds=2), pruner=always)
    pruned = trials(make_req())[2]
    assert pruned.state == TrialState.PRUNED and sorted(pruned.intermediate_values) == [1]
    assert result_files(make_req()) == stored, "the abandoned run wrote no record"


def test_multi_objective_study_reports_a_pareto_front(make_req):
    req = make_req(trials=2, multi_objective=True)
    run_study(req)
    assert all(len(t.values) == 2 and 0.0 <= t.values[1] <= 1.0 for t in trials(req))
    summary = json.loads((req.study_dir / "best.json").read_text())
    assert summary["pareto"] and summary["best"]["number"] in {p["number"] for p in summary["pareto"]}


def test_cli_bad_space_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  regularizer.mixout.p: {type: float, low: 0.9, high: 0.1}\n")
    assert main(["hpo", "--task", "rte", "--space", str(bad), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "low 0.9 > high 0.1: swap them" in err
    assert not (tmp_path / "r").exists()
