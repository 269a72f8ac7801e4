"""The "Instability beyond SD" analysis: a tiny study end to end, and stores without outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli, sweep_argv, write_study
from mixsweep.analysis.cli import cmd_table
from mixsweep.analysis.load import load_results
from mixsweep.analysis.report import build_report
from mixsweep.analysis.synthetic import demo_store


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("study")
    name = write_study(root, "inst", seeds=3)
    results = root / "results"
    code, out, err = run_cli(root, sweep_argv(results, name), timeout=600)
    assert code == 0, out + err
    return root, results, name


def test_report_has_the_section_with_every_measure_and_the_figure(tiny_study):
    root, results, name = tiny_study
    code, out, err = run_cli(root, ["report", "--sweep", name, "--results", str(results)], timeout=300)
    assert code == 0, out + err
    md = (results / name / "report.md").read_text()
    assert "## Instability beyond SD" in md
    section = md.split("## Instability beyond SD")[1].split("\n## ")[0]
    for symbol in ("SD", "I_pwd", "I_κ", "I_JSD", "I_SVCCA", "I_PWCCA", "I_CKA", "I_OP", "ensemble"):
        assert symbol in section
    assert "Stored per run (mean): outputs" in section
    assert (results / name / "figures" / "instability_layers.png").is_file()
    runs = pd.read_csv(results / name / "runs.csv")
    assert runs["has_outputs"].all() and runs["has_representations"].all()
    assert runs["pwd_final"].between(0, 1).all()


def test_table_measure_per_layer_and_all(tiny_study, capsys):
    import argparse

    _, results, name = tiny_study
    base = dict(sweep=name, results=results, cells=None, from_csv=None, selection="final", failure="default",
                format="csv")
    assert cmd_table(argparse.Namespace(**base, measure="cka")) == 0
    long = capsys.readouterr().out
    rows = pd.read_csv(pd.io.common.StringIO(long))
    assert set(rows["layer"]) == {"layer_1", "layer_2", "head"} and len(set(rows["regularizer"])) == 2
    assert rows["n_runs"].eq(3).all()
    assert cmd_table(argparse.Namespace(**base, measure="all")) == 0
    wide = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert len(wide) == 2 and wide["with outputs"].eq(3).all()


def test_stores_without_outputs_say_so_and_never_fail(tmp_path, capsys):
    import argparse

    results = tmp_path / "results"
    demo_store(results, "old", seeds=3, digits=False)
    table = load_results(results, "old")
    assert not table.runs["has_outputs"].any() and table.runs["pwd_final"].isna().all()
    report = build_report(table, results / "old", "old", figures=False)
    md = report.markdown.read_text()
    assert "## Instability beyond SD" in md and "hold no per-example outputs" in md
    args = argparse.Namespace(sweep="old", results=results, cells=None, from_csv=None, selection="final",
                              failure="default", format="md", measure="pwd")
    assert cmd_table(args) == 0
    assert "hold no per-example outputs" in capsys.readouterr().out
    with pytest.raises(Exception, match="unknown measure"):
        cmd_table(argparse.Namespace(**{**vars(args), "measure": "nope"}))
