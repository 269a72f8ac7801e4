"""The report files and the report / table / plots subcommands."""

from __future__ import annotations

import base64
import re

import pytest

from helpers import unpadded
from mixsweep.analysis.load import load_results
from mixsweep.analysis.paper import paper_runs_csv
from mixsweep.analysis.report import build_report
from mixsweep.analysis.synthetic import demo_store, write_records
from mixsweep.cli import main
from mixsweep.records import RunRecord
from mixsweep.store.runs import add_to_view


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    demo_store(root, sweep="demo", seeds=4)
    return root


@pytest.fixture(scope="module")
def report(store):
    return build_report(load_results(store, "demo"), store / "demo", "demo report")


def test_markdown_report_has_tables_legend_and_figures(report):
    md = unpadded(report.markdown.read_text())
    for heading in ("## Per-cell results", "## Statistics against the baseline", "## Expected max over restarts",
                    "## Figures", "## How to read this report"):
        assert heading in md
    assert "| rte | Devlin |" in md and "56.5 (73.6)" in md  # ours next to the paper's
    assert "lee2020 (derived thresholds" in md and "admissible (54.2, 58.1]" in md
    for png in report.figures.values():
        assert f"(figures/{png.name})" in md


def test_html_report_is_self_contained(report):
    html = report.html.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == len(report.figures) == 5
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in html and "<script" not in html and 'src="figures/' not in html
    # the Markdown's alignment row reaches the page: names left, numbers right
    assert '<td style="text-align:left">rte</td>' in html and '<td style="text-align:right">4</td>' in html


def test_report_command_writes_files_and_prints_the_table(store, capsys):
    assert main(["report", "--sweep", "demo", "--results", str(store), "--no-figures"]) == 0
    out = unpadded(capsys.readouterr().out)
    assert "| task | regularizer |" in out and "report.html" in out
    for name in ("report.md", "report.html", "runs.parquet", "runs.csv"):
        assert (store / "demo" / name).is_file()


def test_missing_sweep_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--sweep", "smoke", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "make sweep SWEEP=smoke" in err and str(tmp_path / "smoke") in err


@pytest.fixture(scope="module")
def fig3_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "fig3.csv"
    paper_runs_csv().to_csv(path, index=False)
    return path


def test_table_from_csv_formats(fig3_csv, capsys):
    assert main(["table", "--from-csv", str(fig3_csv)]) == 0
    md = unpadded(capsys.readouterr().out)
    assert md.splitlines()[0] == "| regularizer | rte | mrpc | cola | stsb |"
    assert "| Devlin | 56.5 (73.6) [14] | 83.4 (90.4) [14] | 38.8 (63.3) [7] | 82.4 (90.3) [2] |" in md
    assert main(["table", "--from-csv", str(fig3_csv), "--format", "latex", "--failure", "all"]) == 0
    latex = capsys.readouterr().out
    assert r"\begin{tabular}" in latex and "[7/–/7]".replace("–", "--") in latex
    assert main(["table", "--from-csv", str(fig3_csv), "--format", "csv", "--failure", "majority"]) == 0
    csv = capsys.readouterr().out
    assert csv.splitlines()[0].startswith("task,label,cell,n,mean,std,median,min,max")


def test_table_rejects_unknown_failure_definition(fig3_csv, capsys):
    assert main(["table", "--from-csv", str(fig3_csv), "--failure", "nope"]) == 2
    assert "lee2020, majority, dodge2020" in capsys.readouterr().err


def test_plots_command_from_csv(fig3_csv, tmp_path, capsys):
    assert main(["plots", "--from-csv", str(fig3_csv), "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "fig3_swarms.pdf").is_file() and (tmp_path / "f" / "expected_max.png").is_file()


def test_report_counts_diverged_runs_as_failed(tmp_path):
    recs = [RunRecord(run_id=f"r{s}", sweep="d", task="rte", cell="c", label="none", seed=s,
                      status="diverged" if s == 0 else "ok", headline="accuracy",
                      final={"accuracy": float("nan") if s == 0 else 70.0}) for s in range(3)]
    write_records(recs, tmp_path)
    report = build_report(load_results(tmp_path, "d"), tmp_path / "d", "d", figures=False,
                          failures=("lee2020",))
    row = next(line for line in unpadded(report.main_table).splitlines() if line.startswith("| rte | none"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "2" and cells[7] == "1" and cells[8] == "1/0"  # n, #fail lee2020, nan/err


def test_report_with_only_corrupt_records_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "result.json").write_text("{")
    add_to_view(tmp_path, "e", [{"run_id": "x", "task": "rte", "cell": "c"}])
    assert main(["report", "--sweep", "e", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no run records for sweep 'e'" in err and "1 unreadable" in err
    assert not (tmp_path / "e" / "report.md").exists() and not (tmp_path / "e" / "runs.csv").exists()


def test_report_on_an_empty_sweep_exits_2_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    # a study that was launched (its view lists a run) but holds no finished run
    add_to_view(tmp_path, "empty", [{"run_id": "0123abcd", "task": "rte", "cell": "c"}])
    before = sorted(p.name for p in (tmp_path / "empty").iterdir())
    proc = subprocess.run([sys.executable, "-m", "mixsweep.cli", "report", "--sweep", "empty", "--results",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"no run records for sweep 'empty' in {tmp_path / 'empty'}" in err
    assert f"make sweep SWEEP=empty RESULTS={tmp_path}" in err
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == before  # nothing written


def test_smoke_like_report_names_its_rows_and_compares_against_dropout(tmp_path):
    import numpy as np

    from mixsweep.analysis.synthetic import text_task_record

    rng = np.random.default_rng(0)
    labels = ["dropout(0.1)", "mixout(w_pre,0.9)"]
    write_records([text_task_record("rt_polarity", lab, s, "smoke", rng) for lab in labels for s in range(3)],
                  tmp_path)
    report = build_report(load_results(tmp_path, "smoke"), tmp_path / "smoke", "smoke", figures=False)
    text = unpadded((tmp_path / "smoke" / "report.md").read_text())
    paper_style = text.split("## Paper-style table")[1].split("##")[0]
    assert "| regularizer | rt_polarity |" in paper_style and "| mixout(w_pre,0.9) |" in paper_style
    stats = text.split("## Statistics against the baseline")[1].split("##")[0]
    assert "dropout(0.1)" in stats and "Δmean" in stats, "no Devlin or none cell: dropout(0.1) is the baseline"
    assert report is not None


def test_baseline_is_found_when_cells_carry_appended_settings():
    """Cells keyed by their whole config carry suffixes; Devlin's cell (named devlin) stays the baseline."""
    import pandas as pd

    from mixsweep.analysis.report import _baseline

    devlin = "dropout(0.1)+wdecay(0,0.01)"
    cell = pd.DataFrame({
        "label": [f"{devlin} [optimizer=adamw, train.epochs=20]", f"{devlin} [optimizer=bertadam]",
                  "mixout(w_pre,0.9) [optimizer=bertadam]"],
        "regularizer": [devlin, devlin, "mixout(w_pre,0.9)"],
        "cell": ["mosbach", "devlin", "mixout_0.9"],
    })
    assert _baseline(cell) == f"{devlin} [optimizer=bertadam]"
    assert _baseline(cell.assign(cell=["a", "b", "c"])) == f"{devlin} [optimizer=bertadam]"  # the shortest
    assert _baseline(cell.iloc[2:]) is None


def _opt_record(cell: str, label: str, optimizer: str, seed: int, score: float):
    from mixsweep.analysis.synthetic import regularizer_of

    return RunRecord(run_id=f"{cell}-{seed}", sweep="lab", task="rte", cell=cell, label=label, seed=seed,
                     status="ok", headline="accuracy", final={"accuracy": score}, best={"accuracy": score},
                     config={"regularizer": regularizer_of(label), "optimizer": {"name": optimizer}})


def test_each_cell_is_compared_with_the_baseline_of_its_own_optimizer(tmp_path):
    """Worked by hand: devlin 62 (BERTAdam) / 72 (adamw_hf), mixout 65 / 73. Paired within an optimizer,
    mixout gains +3.0 on BERTAdam and +1.0 on adamw_hf (across optimizers it would read -7.0 and +11.0);
    devlin on adamw_hf is the optimizer's own effect, against devlin on BERTAdam: +10.0."""
    from mixsweep.analysis.report import _stats_table

    devlin, mixout = "dropout(0.1)+wdecay(0,0.01)", "mixout(w_pre,0.9)"
    scores = {("devlin", devlin, "bertadam"): [60, 62, 64], ("devlin", devlin, "adamw_hf"): [70, 72, 74],
              ("mixout_0.9", mixout, "bertadam"): [63, 65, 67], ("mixout_0.9", mixout, "adamw_hf"): [71, 73, 75]}
    write_records([_opt_record(f"{c}@{o}", lab, o, s, float(x))
                   for (c, lab, o), xs in scores.items() for s, x in enumerate(xs)], tmp_path)
    runs = load_results(tmp_path, "lab").runs
    assert sorted(set(runs.optimizer)) == ["adamw_hf", "bertadam"]
    table = _stats_table(runs, "final", seed=0).set_index("regularizer")
    # cells that differ in more than the regularizer are rows named by the study's cell names
    row = {(reg, opt): f"{c}@{opt}" for c, reg in (("devlin", devlin), ("mixout_0.9", mixout))
           for opt in ("bertadam", "adamw_hf")}
    assert sorted(row.values()) == sorted(table.index), table.index.tolist()
    delta = {k: table.loc[v, "Δmean [95% CI]"].split(" ")[0] for k, v in row.items()}
    vs = {k: table.loc[v, "vs"] for k, v in row.items()}
    assert delta[(mixout, "bertadam")] == "3.0" and vs[(mixout, "bertadam")] == row[(devlin, "bertadam")]
    assert delta[(mixout, "adamw_hf")] == "1.0" and vs[(mixout, "adamw_hf")] == row[(devlin, "adamw_hf")]
    assert delta[(devlin, "adamw_hf")] == "10.0" and vs[(devlin, "adamw_hf")] == row[(devlin, "bertadam")]
    assert delta[(devlin, "bertadam")] == ""  # the reference baseline is compared with nothing
    fisher = next(c for c in table.columns if c.startswith("p Fisher"))
    assert table.loc[row[(mixout, "adamw_hf")], fisher] == "1"  # no failures on either side of its own pair
