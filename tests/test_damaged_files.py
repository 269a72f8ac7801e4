"""A damaged run file never breaks an analysis command (issue 36, items 2 and 4), each through the CLI
in a subprocess: a damaged ``outputs.npz`` / ``representations.npz`` is read as a run without that
file and named in one warning line; a record whose fields have the wrong types is corrupt, like a
``[]`` record: warned about, left out of the analysis, redone by the next launch."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import run_cli, study_run_ids, sweep_argv, unpadded, write_study

ONE_CELL = {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"]}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A real tiny study (1 cell × 4 seeds, 8 dev examples): every run keeps outputs.npz (final point
    at step 2) and representations.npz (layer_1, layer_2, head: 8 × 32 fp16)."""
    root = tmp_path_factory.mktemp("damaged")
    write_study(root, "dmg", ONE_CELL, seeds=4)
    code, out, err = run_cli(root, sweep_argv(root / "results", "dmg"), timeout=600)
    assert code == 0, out + err
    return root


def copy_of(study: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    root = tmp_path / "copy"
    shutil.copytree(study, root)
    results = root / "results"
    return root, results, sorted(study_run_ids(results, "dmg"))


# ---- the damaged files: each written here by hand from what save_npz writes -----------------------

def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _resave(path: Path, change) -> None:
    arrays = _arrays(path)
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _npy(path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(8))
    path.write_bytes(buf.getvalue())


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


def _pickled_member(path: Path) -> None:
    arrays = _arrays(path)
    arrays["labels"] = np.array([{"a": 1}] * len(arrays["labels"]), dtype=object)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # np.savez pickles an object array; np.load(allow_pickle=False) refuses it


DAMAGE = {  # (file, variant) -> what is done to the first run's file, and a word the warning must say
    ("outputs.npz", "truncated"): (_truncate, "truncated"),
    ("outputs.npz", "npy_under_npz_name"): (_npy, ".npy"),
    ("outputs.npz", "meta_not_json"): (lambda p: _resave(p, lambda a: a.update(meta=np.array("{points: 2"))),
                                       "not JSON"),
    ("outputs.npz", "meta_not_object"): (lambda p: _resave(p, lambda a: a.update(meta=np.array("[1, 2]"))),
                                         "not an object"),
    ("outputs.npz", "no_labels"): (lambda p: _resave(p, lambda a: a.pop("labels")), "labels"),
    ("outputs.npz", "no_prob_2"): (lambda p: _resave(p, lambda a: a.pop("prob_2")), "prob_2"),
    ("outputs.npz", "short_pred_2"): (lambda p: _resave(p, lambda a: a.update(pred_2=a["pred_2"][:3])), "pred_2"),
    ("outputs.npz", "pred_2_out_of_range"): (lambda p: _resave(p, lambda a: a.update(pred_2=a["pred_2"] + 7)),
                                             "class ids"),
    ("outputs.npz", "pickled"): (lambda p: p.write_bytes(pickle.dumps({"labels": [0, 1]})), "pickle"),
    ("outputs.npz", "pickled_member"): (_pickled_member, "pickled"),
    ("outputs.npz", "empty"): (lambda p: p.write_bytes(b""), "empty"),
    ("outputs.npz", "folder"): (_folder, "folder"),
    ("representations.npz", "truncated"): (_truncate, "truncated"),
    ("representations.npz", "wrong_shape"): (
        lambda p: _resave(p, lambda a: a.update(rep_layer_2=a["rep_layer_2"].reshape(4, -1))), "rep_layer_2"),
    ("representations.npz", "no_positions"): (lambda p: _resave(p, lambda a: a.pop("positions")), "positions"),
    ("representations.npz", "pickled"): (lambda p: p.write_bytes(pickle.dumps([1, 2])), "pickle"),
    ("representations.npz", "empty"): (lambda p: p.write_bytes(b""), "empty"),
    ("representations.npz", "folder"): (_folder, "folder"),
}


def warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mixsweep: warning: ")]


def assert_warned_once(err: str, path: Path, word: str) -> None:
    """Exactly one line, on stderr, names the damaged file, why, and what to do; no traceback."""
    assert "Traceback" not in err, err
    lines = warning_lines(err)
    assert len(lines) == 1, err
    assert f"damaged {path} (" in lines[0] and word in lines[0], lines[0]
    assert "relaunch the sweep" in lines[0] and f"delete {path.parent}/" in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant"), list(DAMAGE), ids=[f"{f.split('.')[0]}-{v}" for f, v in DAMAGE])
def test_a_damaged_run_file_is_named_in_a_warning_and_read_as_absent(study, tmp_path, name, variant):
    root, results, rids = copy_of(study, tmp_path)
    path = results / "runs" / rids[0] / name
    damage, word = DAMAGE[(name, variant)]
    damage(path)

    code, out, err = run_cli(root, ["report", "--sweep", "dmg", "--results", str(results)], timeout=300)
    assert code == 0, out + err
    assert_warned_once(err, path, word)
    runs = pd.read_csv(results / "dmg" / "runs.csv").set_index("run_id")
    column = "has_outputs" if name == "outputs.npz" else "has_representations"
    assert not runs.loc[rids[0], column] and runs.drop(index=rids[0])[column].all()
    md = (results / "dmg" / "report.md").read_text()
    assert f"damaged {path}" in md  # the report says it too (What ran: Skipped)
    section = md.split("## Instability beyond SD")[1].split("\n## ")[0]
    if name == "outputs.npz":  # the measures are over the other 3 runs
        assert "1 run(s) hold no per-example outputs" in section
        assert "| rte | dropout(0.1) | 4 | 3 |" in unpadded(section)  # n, with outputs

    code, out, err = run_cli(root, ["table", "--sweep", "dmg", "--results", str(results), "--format", "csv"])
    assert code == 0, out + err
    assert_warned_once(err, path, word)
    table = pd.read_csv(io.StringIO(out))  # the warning is on stderr: stdout stays one CSV
    assert table["n"].tolist() == [4]


COMMANDS = {"table": ["table"], "table-measure": ["table", "--measure", "all"], "plots": ["plots"],
            "sweep-summary": ["sweep"]}  # every run is done: a launch prints the closing summary only


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_analysis_command_and_the_sweeps_closing_summary_hold(study, tmp_path, command):
    """A truncated outputs.npz in one run and a wrong-shape representations.npz in another: each
    command ends with rc 0, names both files, and still reads every run's score."""
    root, results, rids = copy_of(study, tmp_path)
    outputs = results / "runs" / rids[0] / "outputs.npz"
    reps = results / "runs" / rids[1] / "representations.npz"
    _truncate(outputs)
    _resave(reps, lambda a: a.update(rep_head=a["rep_head"][:3, :5].copy()))
    code, out, err = run_cli(root, [*COMMANDS[command], "--sweep", "dmg", "--results", str(results)], timeout=300)
    assert code == 0, out + err
    assert "Traceback" not in err + out
    said = out + err
    assert f"damaged {outputs} (truncated" in said and f"damaged {reps} (rep_head has shape (3, 5)" in said
    if command == "sweep-summary":
        assert "4 done, 0 failed (will retry), 0 to do" in out and "rte   dropout(0.1)  4" in out
    if command == "table":  # mean (max) [#failed] over all 4 runs (the tiny model stays at chance, 50.0)
        assert "| dropout(0.1) | 50.0 (50.0) [4] |" in unpadded(out)
    if command == "table-measure":  # the measures over the 3 runs with outputs
        assert "| rte | dropout(0.1) | 4 | 3 |" in unpadded(out)  # n, with outputs


# ---- item 4: a record with a wrong-typed field ----------------------------------------------------

WRONG_TYPES = {  # field -> a hand-edited value of the wrong type
    "seed": "abc",
    "final": "high",
    "eval_curve": "x",
    "config": [],
    "label": 5,
    "best": [1],
    "best_step": "last",
    "majority": {"accuracy": "half"},
    "distance_sq": "far",
    "train_loss": 3,
    "sweep": None,
    "task": ["rte"],
    "cell": {"name": "x"},
}
WRONG_NESTED = {  # (field, key) -> a wrong-typed value inside a field that is itself the right type
    ("eval_curve", "metrics"): "x",
    ("config", "optimizer"): "adamw",
    ("config", "regularizer"): 0.1,
    ("env", "git"): "abc123",
}


def _edit_record(path: Path, field: str, value, key: str | None = None) -> None:
    record = json.loads(path.read_text())
    if key is None:
        record[field] = value
    elif field == "eval_curve":
        record[field][0][key] = value
    else:
        record[field][key] = value
    path.write_text(json.dumps(record))


CASES = [(f, None, v) for f, v in WRONG_TYPES.items()] + [(f, k, v) for (f, k), v in WRONG_NESTED.items()]


@pytest.mark.slow
@pytest.mark.parametrize(("field", "key", "value"), CASES,
                         ids=[f"{f}.{k}" if k else f for f, k, _ in CASES])
def test_a_record_with_a_wrong_typed_field_is_corrupt_like_an_empty_one(study, tmp_path, field, key, value):
    root, results, rids = copy_of(study, tmp_path)
    path = results / "runs" / rids[0] / "result.json"
    _edit_record(path, field, value, key)

    for argv in (["report", "--no-figures"], ["table", "--format", "csv"]):
        code, out, err = run_cli(root, [*argv, "--sweep", "dmg", "--results", str(results)], timeout=300)
        assert code == 0 and "Traceback" not in err, out + err
        (line,) = warning_lines(err)
        assert line.startswith(f"mixsweep: warning: corrupt record {path}: run record field '{field}'"), line
        assert "relaunching the sweep redoes the run" in line
    assert pd.read_csv(io.StringIO(out))["n"].tolist() == [3]  # the other three runs
    runs = pd.read_csv(results / "dmg" / "runs.csv")
    assert sorted(runs["run_id"]) == rids[1:]

    # the planner treats it as the [] record: warned about once and redone by the next launch
    code, out, err = run_cli(root, ["plan", "--sweep", "dmg", "--results", str(results)])
    assert code == 0 and "Traceback" not in err, out + err
    assert f"corrupt record {path}" in out and "will be redone" in out
    assert "3 done, 0 failed (will retry), 1 to do" in out
