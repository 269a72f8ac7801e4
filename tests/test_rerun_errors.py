"""``mixsweep rerun`` on records it cannot reproduce (issue 36 §5, §12): a record whose config is gone,
empty or edited, a run that raises, and an ambiguous prefix: one line each, a non-zero exit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import run_cli, study_run_ids, sweep_argv, write_study
from test_hostile_input import one_error_line

CELL = {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"]}
CRASH = "fault={kind: raise, step: 1}"  # train._inject_fault: the run raises at its first step


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rerun")
    write_study(root, "rr", CELL, seeds=1)
    for results, extra in (("ok", []), ("crashed", [CRASH])):
        code, out, err = run_cli(root, [*sweep_argv(root / results, "rr"), *extra], timeout=300)
        assert code == (1 if extra else 0), err
    return root


def stored(root: Path, results: str) -> tuple[Path, str]:
    (rid,) = study_run_ids(root / results, "rr")
    return root / results / "runs" / rid / "result.json", rid


@pytest.fixture
def edited(root):
    """The stored record of the ok run, to edit; restored after the test."""
    path, rid = stored(root, "ok")
    text = path.read_text()
    yield path, rid, json.loads(text)
    path.write_text(text)


def edit_experiment(c): del c["config"]["experiment"]
def edit_task(c): del c["config"]["task"]
def edit_config(c): c["config"] = []
def edit_lr(c): c["config"]["optimizer"]["lr"] = 0.5


@pytest.mark.parametrize("edit", [edit_experiment, edit_task, edit_config, edit_lr])
def test_a_record_whose_config_was_edited_is_refused_in_one_line(root, edited, edit):
    path, rid, record = edited
    edit(record)
    path.write_text(json.dumps(record))
    code, out, err = run_cli(root, ["rerun", rid, "--results", str(root / "ok")], timeout=300)
    line = one_error_line(code, err)
    assert str(path) in line, line
    if edit is edit_config:
        assert "holds no run config" in line
    else:
        assert f"no longer matches its run id {rid}" in line and "edited" in line
    assert "nondeterministic" not in out + err and "rerunning" not in out  # nothing was run


def test_the_unedited_record_still_reruns_and_matches(root):
    path, rid = stored(root, "ok")
    code, out, err = run_cli(root, ["rerun", rid, "--results", str(root / "ok")], timeout=300)
    assert code == 0, err
    assert "metrics match exactly" in out


def test_a_run_that_raises_is_one_line_and_exit_1(root):
    path, rid = stored(root, "crashed")
    code, out, err = run_cli(root, ["rerun", rid, "--results", str(root / "crashed")], timeout=300)
    assert code == 1 and "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith(f"mixsweep: the rerun of run {rid} failed as the stored run did: RuntimeError: "
                           "injected fault at step 1"), line
    assert "--debug" in line


def test_an_ambiguous_prefix_lists_the_runs_it_matches(root, tmp_path):
    path, rid = stored(root, "ok")
    results = tmp_path / "results"
    twin = rid[:6] + ("0" if rid[6] != "0" else "1") + rid[7:]  # a second run id sharing 6 characters
    shutil.copytree(path.parent, results / "runs" / rid)
    shutil.copytree(path.parent, results / "runs" / twin)
    code, _, err = run_cli(tmp_path, ["rerun", rid[:6], "--results", str(results)])
    line = one_error_line(code, err)
    assert f"'{rid[:6]}' is ambiguous (2 runs: " in line and rid in line and twin in line, line
    assert "rte dropout_0.1 seed 0" in line
