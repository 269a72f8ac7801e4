"""MLflow tracking against the real thing (issue 35): a tiny study is trained, exported to a real
``mlflow server`` (SQLite backend) on a free port, and read back through MLflow's REST API with plain
HTTP. Expected values come from the records' JSON files, read here without the code under test.

Also: live logging (``+tracking=mlflow``) during a sweep, a tracker that is down (a warning, never a
run), the command without mlflow installed, secrets kept out of MLflow, and the tracking keys outside
the run id.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GLUE
from helpers import CELLS, run_cli, sweep_argv, write_study
from mlflow_server import MlflowServer, free_port, metrics, params, tags

pytest.importorskip("mlflow", reason="mlflow is the optional extra `tracking` (make setup installs it)")

BROKEN = {"broken": ["regularizer=dropout", "+fault={kind: raise, step: 2}"]}
EVAL_EVERY = "train.eval_every=1"  # a point per step: 4 per curve (2 epochs of 2 steps on the RTE fixture)


def records(results: Path, sweep: str) -> list[dict]:
    """The study's records as stored: its view, then each run's result.json."""
    view = json.loads((results / sweep / "view.json").read_text())["runs"]
    out = []
    for entry in view:
        path = results / "runs" / entry["run_id"] / "result.json"
        if path.exists():
            record = json.loads(path.read_text())
            record["cell"] = entry["cell"]
            out.append(record)
    return out


def by_kind(runs: list[dict], kind: str) -> list[dict]:
    return [r for r in runs if tags(r).get("mixsweep.kind") == kind]


def experiment_named(server: MlflowServer, name: str) -> list[dict]:
    return [e for e in server.experiments() if e["name"] == name]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as s:
        yield s
    # stopped: nothing of its process group is left
    assert subprocess.run(["ps", "-o", "pid=", "-g", str(s.proc.pid)], capture_output=True,
                          text=True).stdout.strip() == ""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A trained tiny study: 2 cells × 2 seeds, and a cell whose runs crash at step 2 (status failed)."""
    root = tmp_path_factory.mktemp("study")
    write_study(root, "tmlf", {**CELLS, **BROKEN}, seeds=2, epochs=2)
    results = root / "results"
    code, out, err = run_cli(root, sweep_argv(results, "tmlf", EVAL_EVERY), timeout=600)
    assert len(records(results, "tmlf")) == 6, err[-2000:]
    return root, results


def export(root: Path, results: Path, sweep: str, uri: str, **env: str):
    return run_cli(root, ["export", "mlflow", "--sweep", sweep, "--results", str(results), "--tracking-uri", uri],
                   timeout=300, **env)


@pytest.mark.slow
def test_export_to_a_real_server_then_again_adds_nothing(server, study):
    root, results = study
    stored = records(results, "tmlf")
    code, out, err = export(root, results, "tmlf", server.url)
    assert code == 0, err
    assert "runs (child runs):   6 new, 0 updated, 0 unchanged" in out

    (exp,) = experiment_named(server, "tmlf")  # one experiment per study
    runs = server.runs(exp["experiment_id"])
    parents, children = by_kind(runs, "cell"), by_kind(runs, "run")
    assert len(runs) == len(parents) + len(children)
    assert sorted(tags(p)["mixsweep.cell"] for p in parents) == ["broken", "dropout_0.1", "mixout_0.5"]
    assert sorted(tags(c)["mixsweep.run_id"] for c in children) == sorted(r["run_id"] for r in stored)

    parent_cell = {p["info"]["run_id"]: tags(p)["mixsweep.cell"] for p in parents}
    for record in stored:
        (child,) = [c for c in children if tags(c)["mixsweep.run_id"] == record["run_id"]]
        t, p, run_id = tags(child), params(child), child["info"]["run_id"]
        assert parent_cell[t["mlflow.parentRunId"]] == record["cell"]
        assert (t["mixsweep.study"], t["mixsweep.seed"], t["mixsweep.status"]) == (
            "tmlf", str(record["seed"]), record["status"])
        git = record["env"]["git"]
        assert t["mixsweep.commit"] == git["commit"] + ("-dirty" if git["dirty"] else "")
        assert t["mixsweep.data_source"] == f"glue_dir:{GLUE}"
        assert (p["optimizer.lr"], p["train.epochs"], p["task.name"], p["train.eval_every"]) == (
            "0.001", "2", "rte", "1")
        if record["status"] == "failed":
            assert child["info"]["status"] == "FAILED"
            continue
        assert child["info"]["status"] == "FINISHED"
        curve = record["eval_curve"]
        assert len(curve) >= 3
        assert server.history(run_id, "dev.accuracy") == [(e["step"], e["metrics"]["accuracy"]) for e in curve]
        assert server.history(run_id, "val_half.accuracy") == [(e["step"], e["val_half"]["accuracy"])
                                                               for e in curve]
        assert server.history(run_id, "train.loss") == [(e["step"], e["loss"]) for e in record["train_loss"]]
        assert metrics(child)["final.accuracy"] == record["final"]["accuracy"]
        assert metrics(child)["best.accuracy"] == max(e["metrics"]["accuracy"] for e in curve)

    # the parents' aggregates, worked from the records: n, mean and population std of the final scores
    for parent in parents:
        cell = tags(parent)["mixsweep.cell"]
        scores = [r["final"]["accuracy"] for r in stored if r["cell"] == cell and r["status"] == "ok"]
        m = metrics(parent)
        assert m["final.n_error"] == sum(r["cell"] == cell and r["status"] == "failed" for r in stored)
        if not scores:
            assert m["final.n"] == 0 and "final.mean" not in m
            continue
        mean = sum(scores) / len(scores)
        assert m["final.n"] == len(scores)
        assert m["final.mean"] == pytest.approx(mean)
        assert m["final.std"] == pytest.approx(math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores)))
        assert m["final.max"] == max(scores)
        assert "final.fail.majority" in m  # rte has a majority class

    # again: nothing added, nothing replaced
    code, out, err = export(root, results, "tmlf", server.url)
    assert code == 0, err
    assert "runs (child runs):   0 new, 0 updated, 6 unchanged" in out
    assert len(experiment_named(server, "tmlf")) == 1
    again = server.runs(exp["experiment_id"])
    assert sorted(r["info"]["run_id"] for r in again) == sorted(r["info"]["run_id"] for r in runs)


@pytest.mark.slow
def test_live_logging_mirrors_each_run_and_the_export_keeps_it(server, tmp_path):
    write_study(tmp_path, "tlive", {"dropout_0.1": CELLS["dropout_0.1"], **BROKEN}, seeds=1, epochs=2)
    results = tmp_path / "results"
    code, out, err = run_cli(tmp_path, sweep_argv(results, "tlive", EVAL_EVERY, "+tracking=mlflow",
                                                  f"tracking.uri={server.url}"), timeout=600)
    assert "warning" not in err, err
    stored = records(results, "tlive")
    assert sorted(r["status"] for r in stored) == ["failed", "ok"]
    assert all(r["config"]["tracking"] == {"backend": "mlflow", "uri": server.url} for r in stored)

    (exp,) = experiment_named(server, "tlive")
    children = by_kind(server.runs(exp["experiment_id"]), "run")
    assert len(children) == 2
    for record in stored:
        (child,) = [c for c in children if tags(c)["mixsweep.run_id"] == record["run_id"]]
        assert child["info"]["status"] == ("FINISHED" if record["status"] == "ok" else "FAILED")
        assert tags(child)["mixsweep.live"] == "true"
        if record["status"] == "ok":
            assert server.history(child["info"]["run_id"], "dev.accuracy") == [
                (e["step"], e["metrics"]["accuracy"]) for e in record["eval_curve"]]

    code, out, err = export(tmp_path, results, "tlive", server.url)
    assert code == 0, err
    assert "runs (child runs):   0 new, 0 updated, 2 unchanged" in out  # live wrote what the export would


@pytest.mark.slow
def test_a_tracker_that_is_down_costs_one_warning_line_never_the_run(tmp_path):
    write_study(tmp_path, "tdown", {"dropout_0.1": CELLS["dropout_0.1"]}, seeds=1)
    results = tmp_path / "results"
    dead = f"http://user:s3cret@127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, err = run_cli(tmp_path, sweep_argv(results, "tdown", "+tracking=mlflow", f"tracking.uri={dead}"),
                             timeout=600)
    assert code == 0, err
    (record,) = records(results, "tdown")
    assert record["status"] == "ok"
    warnings = [line for line in err.splitlines() if "MLflow at" in line]
    assert len(warnings) == 1 and warnings[0].startswith("mixsweep: warning:"), err
    assert "s3cret" not in out + err
    assert "s3cret" not in (results / "runs" / record["run_id"] / "result.json").read_text()
    assert time.monotonic() - started < 300


def test_export_to_a_server_that_is_down_is_one_line_with_the_password_masked(tmp_path):
    from mixsweep.analysis.synthetic import demo_store

    demo_store(tmp_path / "results", sweep="demo", seeds=1, digits=False)
    code, out, err = export(tmp_path, tmp_path / "results", "demo", f"http://u:s3cret@127.0.0.1:{free_port()}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mixsweep: error: MLflow at http://u:***@127.0.0.1"), err
    assert "s3cret" not in out + err


def test_without_mlflow_the_command_says_how_to_install_it(tmp_path):
    code, out, err = run_cli(tmp_path, ["export", "mlflow", "--results", str(tmp_path)],
                             prelude="import sys\nsys.modules['mlflow'] = None")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "pip install 'mixsweep[tracking]'" in err


def test_an_unknown_study_is_one_line(tmp_path):
    code, out, err = run_cli(tmp_path, ["export", "mlflow", "--sweep", "nosuch", "--results", str(tmp_path)])
    assert code == 2 and err.strip().count("\n") == 0 and "nosuch" in err, err


# --- the mapping, on a record written by hand -----------------------------------------------------------


def hand_record():
    from mixsweep.records import RunRecord

    curve = [{"step": 5, "epoch": 0.5, "metrics": {"accuracy": 60.0}, "val_half": {"accuracy": 70.0},
              "test_half": {"accuracy": 50.0}},
             {"step": 10, "epoch": 1.0, "metrics": {"accuracy": 55.0}, "val_half": {"accuracy": 65.0},
              "test_half": {"accuracy": 45.0}}]
    return RunRecord(
        run_id="abc123abc123", sweep="s", task="rte", cell="c", label="dropout(0.1)", seed=3, status="diverged",
        headline="accuracy", final={"accuracy": 55.0}, eval_curve=curve,
        train_loss=[{"step": 1, "loss": 0.7, "task_loss": 0.6, "penalty": {"wdecay": 0.1}}],
        config={"optimizer": {"lr": 1e-05, "betas": [0.9, 0.999]}, "train": {"max_steps": None},
                "data": {"source": "glue_dir", "glue_dir": "s3://key:hunter2@bucket/glue"},
                "task": {"default_source": "hub"}},
        env={"git": {"commit": "f00", "dirty": True}})


def test_the_mapping_of_a_record_worked_by_hand():
    from mixsweep.tracking import mapping

    r = hand_record()
    assert mapping.params(r.config) == {"optimizer.lr": "1e-05", "optimizer.betas": "[0.9, 0.999]",
                                        "train.max_steps": "null", "data.source": "glue_dir",
                                        "data.glue_dir": "s3://key:***@bucket/glue", "task.default_source": "hub"}
    t = mapping.tags(r)
    assert (t["mixsweep.commit"], t["mixsweep.status"], t["mixsweep.seed"]) == ("f00-dirty", "diverged", "3")
    assert t["mixsweep.data_source"] == "glue_dir:s3://key:***@bucket/glue"
    assert mapping.status("diverged") == mapping.status("failed") == "FAILED" and mapping.status("ok") == "FINISHED"
    got = set(mapping.metrics(r))
    assert {("dev.accuracy", 60.0, 5), ("dev.accuracy", 55.0, 10), ("test_half.accuracy", 45.0, 10),
            ("epoch", 0.5, 5), ("train.loss", 0.7, 1), ("train.task_loss", 0.6, 1),
            ("train.penalty.wdecay", 0.1, 1), ("final.accuracy", 55.0, 10)} <= got
    assert ("best.accuracy", 60.0, 10) in got  # the best point is step 5's, logged at the last step
    assert ("zhang2021.accuracy", 50.0, 10) in got  # val half best at step 5 (70): its test half, 50


def test_the_tracking_keys_are_in_the_schema_and_outside_the_run_id():
    from mixsweep.config import schema
    from mixsweep.store.cell_id import cell_id
    from mixsweep.store.runid import run_id

    base = {"experiment": "finetune", "seed": 0, "optimizer": {"lr": 1e-05}, "task": {"name": "rte"}}
    tracked = {**base, "tracking": {"backend": "mlflow", "uri": "http://127.0.0.1:5000"}}
    assert run_id(tracked) == run_id(base) and cell_id(tracked) == cell_id(base)
    assert run_id({**base, "seed": 1}) != run_id(base)  # the comparison can fail
    assert schema.problems({"tracking": {"backend": "mlflow", "uri": None}}) == []
    assert schema.problems({"tracking": {"backend": "wandb"}}) == [
        "tracking.backend=wandb: must be one of mlflow"]
    assert schema.problems({"tracking": {"url": "x"}})[0].startswith("tracking.url: unknown setting: did you mean "
                                                                     "tracking.uri?")


def test_a_changed_record_replaces_its_run_and_a_new_one_is_added(tmp_path):
    """Exporting again updates: a record that changed (a failed run redone) replaces its MLflow run, a new
    record adds one, and nothing is duplicated. A SQLite store, read with MLflow's client."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    from mixsweep.analysis.synthetic import text_task_record, write_records
    from mixsweep.export.to_mlflow import export_study

    results, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    rng = np.random.default_rng(0)
    first = [text_task_record("rte", "mixout(w_pre,0.7)", s, "upd", rng) for s in range(2)]
    first[1].status, first[1].final = "failed", {}
    write_records(first, results)
    export_study(results, "upd", uri)

    redone = text_task_record("rte", "mixout(w_pre,0.7)", 1, "upd", rng)
    redone.final = {"accuracy": 71.25}
    third = text_task_record("rte", "mixout(w_pre,0.7)", 2, "upd", rng)
    write_records([redone, third], results)
    done = export_study(results, "upd", uri)
    assert (done.runs.new, done.runs.updated, done.runs.unchanged) == (1, 1, 1)
    assert (done.cells.new, done.cells.updated) == (0, 1)  # its aggregates changed

    c = MlflowClient(uri)
    runs = c.search_runs([done.experiment_id])
    children = {r.data.tags["mixsweep.run_id"]: r for r in runs if r.data.tags.get("mixsweep.kind") == "run"}
    assert len(runs) == 4 and sorted(children) == sorted(r.run_id for r in (first[0], redone, third))
    assert children[redone.run_id].info.status == "FINISHED"
    assert children[redone.run_id].data.metrics["final.accuracy"] == 71.25
    (parent,) = [r for r in runs if r.data.tags.get("mixsweep.kind") == "cell"]
    assert parent.data.metrics["final.n"] == 3
    assert parent.data.metrics["final.mean"] == pytest.approx(
        (first[0].final["accuracy"] + 71.25 + third.final["accuracy"]) / 3)
