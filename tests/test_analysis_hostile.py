"""The analysis side against an unfinished study and hostile text (issue 36, items 7, 8 and 11), each
through the CLI in a subprocess: an unfinished study says so first; no CSV the harness writes holds a
field that a spreadsheet would run as a formula; a bad external CSV is one line, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import one_error_line, run_cli, study_run_ids, sweep_argv, unpadded, write_study
from mixsweep.analysis.synthetic import text_task_record, write_records

CELLS = {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"],
         "mixout_0.5": ["regularizer=mixout", "regularizer.mixout.p=0.5"]}


# ---- 7. an unfinished study says so, per cell, first -----------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A real tiny study, 2 cells × 3 seeds, every run done."""
    root = tmp_path_factory.mktemp("unfinished")
    write_study(root, "part", CELLS, seeds=3)
    code, out, err = run_cli(root, sweep_argv(root / "results", "part"), timeout=600)
    assert code == 0, out + err
    return root


def stopped_early(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The store a sweep leaves when it stops after 3 of its 6 runs (a killed run leaves no folder, see
    store.discard_unfinished; the view, written at launch, lists all 6): dropout_0.1 keeps 1 of its
    3 runs, mixout_0.5 2 of 3."""
    root = tmp_path / "copy"
    shutil.copytree(finished, root)
    results = root / "results"
    by_cell: dict[str, list[str]] = {}
    for e in json.loads((results / "part" / "view.json").read_text())["runs"]:
        by_cell.setdefault(e["cell"], []).append(e["run_id"])
    for rid in by_cell["dropout_0.1"][1:] + by_cell["mixout_0.5"][2:]:
        shutil.rmtree(results / "runs" / rid)
    return root, results


EXPECTED = [  # typed from the store above: 3 of 6 runs have no record; 2 of dropout_0.1's 3, 1 of mixout_0.5's
    "unfinished study: 3 of 6 planned runs have no record yet, so every number here covers the 3 that do; "
    "relaunch the sweep to run the rest (finished runs are kept)",
    "  rte  dropout_0.1: 2 of 3 planned runs without a record",
    "  rte  mixout_0.5: 1 of 3 planned runs without a record",
]


def test_a_finished_study_says_nothing_of_the_kind(finished):
    results = finished / "results"
    assert len(study_run_ids(results, "part")) == 6
    code, out, err = run_cli(finished, ["table", "--sweep", "part", "--results", str(results)])
    assert code == 0 and "unfinished" not in out + err, out + err


def test_the_report_of_an_unfinished_study_says_how_many_runs_are_missing_per_cell_first(finished, tmp_path):
    root, results = stopped_early(finished, tmp_path)
    code, out, err = run_cli(root, ["report", "--sweep", "part", "--results", str(results), "--no-figures"],
                             timeout=300)
    assert code == 0 and "Traceback" not in err, out + err
    assert out.splitlines()[:3] == EXPECTED
    md = (results / "part" / "report.md").read_text()
    assert md.index("## Unfinished study") < md.index("## What ran")  # the report's first section
    section = unpadded(md.split("## Unfinished study")[1].split("\n## ")[0])
    assert "3 of 6 planned runs have no record yet" in section
    assert "| rte | dropout_0.1 | 3 | 2 |" in section and "| rte | mixout_0.5 | 3 | 1 |" in section
    assert "Unfinished study" in (results / "part" / "report.html").read_text()


@pytest.mark.parametrize("fmt", ["md", "latex", "csv"])
def test_the_table_of_an_unfinished_study_says_so_at_the_top(finished, tmp_path, fmt):
    root, results = stopped_early(finished, tmp_path)
    code, out, err = run_cli(root, ["table", "--sweep", "part", "--results", str(results), "--format", fmt])
    assert code == 0 and "Traceback" not in err, out + err
    if fmt == "csv":  # the CSV stays one table: the lines go to stderr
        assert err.splitlines()[:3] == EXPECTED
        assert sorted(pd.read_csv(io.StringIO(out))["n"]) == [1, 2]
    else:
        prefix = "% " if fmt == "latex" else ""
        assert out.splitlines()[:3] == [prefix + line for line in EXPECTED]


def test_the_table_of_chosen_cells_counts_those_cells_only(finished, tmp_path):
    root, results = stopped_early(finished, tmp_path)
    code, out, err = run_cli(root, ["table", "--sweep", "part", "--results", str(results), "--cells", "mixout_0.5"])
    assert code == 0, out + err
    assert out.splitlines()[:2] == [
        "unfinished study: 1 of 3 planned runs have no record yet, so every number here covers the 2 that do; "
        "relaunch the sweep to run the rest (finished runs are kept)",
        "  rte  mixout_0.5: 1 of 3 planned runs without a record"]


# ---- 8. CSV formula injection ------------------------------------------------------------------------

HOSTILE = ["+1+cmd|calc", "-2+3|x", "@cmd|x", "=1+1", "\t=2+2"]
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def formula_fields(text: str) -> list[str]:
    """Every field of a CSV that a spreadsheet would run: it starts with = + - @ tab or CR and is not
    a plain number (-4.1 is a number)."""
    return [f for row in csv.reader(io.StringIO(text)) for f in row
            if f[:1] in ("=", "+", "-", "@", "\t", "\r") and not NUMBER.fullmatch(f)]


def hostile_store(results: Path) -> None:
    """Records (as a store holds them, or a user hands them over) whose cell names read as formulas;
    one cell on CoLA, whose MCC scores are negative numbers that must stay numbers."""
    rng = np.random.default_rng(0)
    records = []
    for i, name in enumerate(HOSTILE):
        for seed in range(2):
            r = text_task_record("rte", "dropout(0.1)", seed, "evil", rng)
            r.run_id, r.cell = f"{i:02d}{seed:010d}", name
            r.config["regularizer"]["dropout"]["p"] = 0.1 + i / 100  # one cell each
            records.append(r)
    for seed in range(2):
        r = text_task_record("cola", "dropout(0.1)", seed, "evil", rng)
        r.run_id, r.final = f"cc{seed:010d}", {"mcc": -4.5 - seed, "accuracy": 60.0}
        records.append(r)
    write_records(records, results)


def test_no_csv_the_harness_writes_holds_a_formula(tmp_path):
    results = tmp_path / "results"
    hostile_store(results)
    base = ["--sweep", "evil", "--results", str(results)]

    code, out, err = run_cli(tmp_path, ["table", *base, "--format", "csv"])
    assert code == 0, out + err
    assert formula_fields(out) == [] and "'+1+cmd|calc" in out and "'@cmd|x" in out and "'\t=2+2" in out
    cola = pd.read_csv(io.StringIO(out)).set_index("task").loc["cola"]  # negative scores stay numbers
    assert (cola["mean"], cola["min"], cola["max"]) == (-5.0, -5.5, -4.5)
    code, out, err = run_cli(tmp_path, ["table", *base, "--format", "csv", "--measure", "all"])
    assert code == 0 and formula_fields(out) == [], out + err

    code, out, err = run_cli(tmp_path, ["report", *base, "--no-figures"], timeout=300)
    assert code == 0, out + err
    text = (results / "evil" / "runs.csv").read_text()
    assert formula_fields(text) == [] and "'-2+3|x" in text and "'=1+1" in text
    runs = pd.read_csv(results / "evil" / "runs.csv")
    assert sorted(runs.loc[runs["task"] == "cola", "final_score"]) == [-5.5, -4.5]  # numbers, not text

    external = tmp_path / "ext.csv"
    external.write_text("task,config,seed,score\nrte,=1+1,0,70.1\nrte,=1+1,1,-3\nrte,@SUM(A1),0,60\n")
    code, out, err = run_cli(tmp_path, ["table", "--from-csv", str(external), "--format", "csv"])
    assert code == 0, out + err
    assert formula_fields(out) == [] and "'=1+1" in out and "'@SUM(A1)" in out
    assert "33.55" in out  # the mean of 70.1 and -3, a number


def test_csv_cell_escapes_text_only():
    from mixsweep.analysis.tables import csv_text

    frame = pd.DataFrame({"name": ["=1+1", "-2+3|x", "-4.1", "+1.5", "1e-3", "ok", None],
                          "score": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0]})
    assert csv_text(frame).splitlines() == ["name,score", "'=1+1,-1.5", "'-2+3|x,2.0", "-4.1,-3.0", "+1.5,4.0",
                                            "1e-3,5.0", "ok,6.0", ",7.0"]


# ---- 11. a bad external CSV ---------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "says"), [
    ("rte,Devlin,zz,71.0", "line 3: seed 'zz' is not a whole number"),
    ("rte,Devlin,1.5,71.0", "line 3: seed 1.5 is not a whole number"),
    ("rte,Devlin,1,abc", "line 3: score 'abc' is not a number"),
])
def test_a_bad_seed_or_score_in_an_external_csv_is_one_line(tmp_path, row, says):
    path = tmp_path / "runs.csv"
    path.write_text(f"task,config,seed,score\nrte,Devlin,0,70.1\n{row}\n")
    for argv in (["table"], ["table", "--format", "csv"], ["plots"]):
        code, out, err = run_cli(tmp_path, [*argv, "--from-csv", str(path)])
        assert code == 2, out + err
        line = one_error_line(err)
        assert f"{path} {says}" in line
    assert not (tmp_path / "figures").exists()


def test_an_empty_score_is_a_run_without_one(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("task,config,seed,score,status\nrte,Devlin,0,70.1,ok\nrte,Devlin,1,,diverged\n")
    code, out, err = run_cli(tmp_path, ["table", "--from-csv", str(path), "--format", "csv"])
    assert code == 0, out + err
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    assert (row["n"], row["mean"], row["n_nan"]) == (1, 70.1, 1)
