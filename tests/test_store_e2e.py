"""End to end with the tiny model: cells that differ in any knob stay apart in plan, table, report and
figures; a run finished by one study is done for another; --cells; two studies sharing runs at once."""

from __future__ import annotations

import re

import pytest

from conftest import GLUE
from helpers import result_files, start_cli, study_run_ids, sweep_argv, write_study
from mixsweep.cli import main

MIX = ["regularizer=mixout", "regularizer.mixout.p=0.5"]
VARIANTS = {
    "optimizer": ({"adamw": [*MIX, "optimizer=adamw"], "bertadam": [*MIX, "optimizer=bertadam"]},
                  ["mixout(w_pre,0.5) [optimizer=adamw]", "mixout(w_pre,0.5) [optimizer=bertadam]"]),
    "epochs": ({"one": [*MIX, "train.epochs=1"], "two": [*MIX, "train.epochs=2"]},
               ["mixout(w_pre,0.5) [train.epochs=1]", "mixout(w_pre,0.5) [train.epochs=2]"]),
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSWEEP_SEARCH_PATH", str(tmp_path))
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    return tmp_path


def table_rows(text: str, labels: list[str]) -> list[str]:
    return [line for line in text.splitlines() if any(label in line for label in labels)]


@pytest.mark.parametrize("knob", sorted(VARIANTS))
def test_cells_that_differ_in_one_knob_are_separate_rows_everywhere(root, knob, capsys):
    cells, labels = VARIANTS[knob]
    write_study(root, "v", cells, seeds=2)
    results = root / "results"

    assert main(["plan", "--sweep", "v", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "4 runs in 2 cells" in out
    for cell, label in zip(cells, labels, strict=True):  # plan: the name CELLS= takes, the counts, the label
        assert re.search(rf"rte\s+{re.escape(cell)}\s+2\s+0\s+0\s+2\s+{re.escape(label)}\n", out), out

    assert main(sweep_argv(results, "v")) == 0
    capsys.readouterr()
    # cells that differ in more than the regularizer: rows are the study's cell names, and a legend
    # under each table gives every row's full label (its config delta)
    assert main(["table", "--sweep", "v", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert sorted(set(rows) & set(cells)) == sorted(cells), out
    assert all(f"{cell}: {label}" in out for cell, label in zip(cells, labels, strict=True)), out

    assert main(["report", "--sweep", "v", "--results", str(results)]) == 0
    capsys.readouterr()
    report = (results / "v" / "report.md").read_text()
    main_table = report.split("## Per-cell results")[1].split("##")[0]
    cols = [[c.strip() for c in line.strip("|").split("|")] for line in main_table.splitlines()
            if line.startswith("| rte ")]
    assert sorted((c[1], c[2]) for c in cols) == [(cell, "2") for cell in sorted(cells)], main_table  # row, n
    assert all(f"{cell}: {label}" in report for cell, label in zip(cells, labels, strict=True)), report

    from mixsweep.analysis.figures import fig_swarms
    from mixsweep.analysis.load import load_results

    fig = fig_swarms(load_results(results, "v").runs, overlay_paper=False)
    # Fig. 3 is horizontal: one row (y tick) per cell
    assert sorted(t.get_text() for t in fig.axes[0].get_yticklabels()) == sorted(cells)

TINY = ["model=tiny", "data.source=glue_dir", f"data.glue_dir={GLUE}", "train.epochs=1", "train.batch_size=8",
        "train.eval_batch_size=16", "threads=1"]


@pytest.mark.slow
def test_mix_prob_after_table1_counts_the_shared_mixout_runs_as_done(root, capsys):
    """`make sweep SWEEP=table1 TASK=rte SEEDS=2`, then `make plan SWEEP=mix_prob TASK=rte SEEDS=2`."""
    results = root / "results"
    common = ["--task", "rte", "--seeds", "2", "--results", str(results)]
    assert main(["sweep", "--sweep", "table1", "--no-summary", *common, *TINY]) == 0
    assert "22 runs in 11 cells; 0 done" in capsys.readouterr().out

    assert main(["plan", "--sweep", "mix_prob", *common, *TINY]) == 0
    out = capsys.readouterr().out
    assert "38 runs in 19 cells; 6 done, 0 failed (will retry), 32 to do" in out
    for p in ("0.7", "0.8", "0.9"):
        assert re.search(rf"rte\s+mixout_{p}\s+2\s+2\s+0\s+0\s+mixout\(w_pre,{p}\)\n", out), out
    assert re.search(r"rte\s+mixout_0.6\s+2\s+0\s+0\s+2\s+mixout\(w_pre,0.6\)\n", out), out

    # The sweep skips them: its view lists the runs, which stay stored once, under table1's records.
    n_stored = len(list((results / "runs").iterdir()))
    shared = "mixout_0.7,mixout_0.8,mixout_0.9"
    assert main(["sweep", "--sweep", "mix_prob", "--cells", shared, "--no-summary", *common, *TINY]) == 0
    out = capsys.readouterr().out
    assert "6 runs in 3 cells; 6 done, 0 failed (will retry), 0 to do" in out and "] ok" not in out
    assert len(list((results / "runs").iterdir())) == n_stored
    assert len(study_run_ids(results, "mix_prob")) == 6
    assert main(["report", "--sweep", "mix_prob", "--results", str(results), "--no-figures"]) == 0
    assert "6 runs (6 ok)" in (results / "mix_prob" / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", "--sweep", "mix_prob", "--results", str(results), "--cells", "mixout_07"]) == 2
    assert "unknown cell 'mixout_07'" in capsys.readouterr().err


def test_an_unknown_cell_is_one_line_listing_the_valid_ones(root, capsys):
    assert main(["plan", "--sweep", "table1", "--task", "mrpc", "--results", "/nonexistent",
                 "--cells", "devlin,mixout_07"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown cell 'mixout_07': choose from devlin, wdecay_0.01" in err[0]
    assert main(["plan", "--sweep", "table1", "--task", "mrpc", "--seeds", "2", "--results", "/nonexistent",
                 "--cells", "devlin,mixout_0.7"]) == 0
    assert "4 runs in 2 cells" in capsys.readouterr().out


DONE_LINE = re.compile(r"^\[rte (\S+) seed (\d+)\] ok", re.M)


@pytest.mark.slow
def test_two_studies_sharing_runs_launched_at_once_run_each_shared_run_once(tmp_path):
    shared = ["regularizer=mixout", "regularizer.mixout.p=0.5"]
    write_study(tmp_path, "first", {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"],
                                    "mixout_0.5": shared}, epochs=2)
    write_study(tmp_path, "second", {"m05": shared, "mixout_0.6": ["regularizer=mixout", "regularizer.mixout.p=0.6"]},
                epochs=2)
    results = tmp_path / "results"
    procs = [start_cli(tmp_path, sweep_argv(results, name)) for name in ("first", "second")]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outs.append(out)
    executed = [m.groups() for out in outs for m in DONE_LINE.finditer(out)]
    assert len(executed) == len(set(executed)) == 12, f"a shared run executed twice: {sorted(executed)}"
    assert len(list((results / "runs").iterdir())) == 12
    first, second = set(study_run_ids(results, "first")), set(study_run_ids(results, "second"))
    assert len(first) == len(second) == 8 and len(first & second) == 4
    assert len(result_files(results, "first")) == len(result_files(results, "second")) == 8
