"""Per-cell aggregates, the paper comparison and the terminal summary table."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from helpers import unpadded
from mixsweep.analysis import summary_table
from mixsweep.analysis.cells import aggregate, compare_with_paper
from mixsweep.analysis.load import load_external_csv, load_results
from mixsweep.analysis.naming import OUR_W
from mixsweep.analysis.paper import paper_runs_csv, paper_table
from mixsweep.analysis.synthetic import text_task_record, write_records


@pytest.fixture(scope="module")
def fig3_agg(tmp_path_factory):
    path = tmp_path_factory.mktemp("paper") / "fig3.csv"
    paper_runs_csv().to_csv(path, index=False)
    return aggregate(load_external_csv(path).runs)


def test_fig3_runs_reproduce_table1_mean_and_max(fig3_agg):
    table1 = paper_table("table1").set_index(["task", "label"])
    cells = table1.index.intersection(fig3_agg.index)
    assert len(cells) == 16
    for cell in cells:
        assert fig3_agg.loc[cell, "max"] == pytest.approx(table1.loc[cell, "max"], abs=0.05), cell
        if cell == ("mrpc", OUR_W):
            # The values read off the figure give 87.74 here; the paper's own Fig. 3 statistics say 87.7 and
            # Table 1 says 87.8, so this one cell agrees with Table 1 only to the read-off accuracy (+-0.1).
            assert fig3_agg.loc[cell, "mean"] == pytest.approx(87.7, abs=0.05)
            assert fig3_agg.loc[cell, "mean"] == pytest.approx(table1.loc[cell, "mean"], abs=0.1)
        else:
            assert fig3_agg.loc[cell, "mean"] == pytest.approx(table1.loc[cell, "mean"], abs=0.05), cell


def test_std_is_the_population_std(fig3_agg):
    cell = fig3_agg.loc[("cola", "dropout(0.1)+wdecay(0,0.01)")]
    assert cell["std"] == pytest.approx(28.54, abs=0.005)  # the paper's error bar; ddof=1 gives 29.28


def test_aggregate_statistics_and_paper_order(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["mixout(w_pre,0.9)", OUR_W, "dropout(0.1)+wdecay(0,0.01)"]
    write_records([text_task_record("cola", lab, s, "a", rng) for lab in labels for s in range(5)], tmp_path)
    runs = load_results(tmp_path, "a").runs
    agg = aggregate(runs)
    assert agg.index.get_level_values("label").tolist() == ["dropout(0.1)+wdecay(0,0.01)", OUR_W,
                                                              "mixout(w_pre,0.9)"]
    x = runs[runs.label == OUR_W].final_score
    row = agg.loc[("cola", OUR_W)]
    assert (row.n, row["min"], row["max"]) == (5, x.min(), x.max())
    assert row["median"] == pytest.approx(np.median(x))


def test_selection_best_uses_the_best_eval(tmp_path):
    rng = np.random.default_rng(1)
    write_records([text_task_record("rte", OUR_W, s, "a", rng) for s in range(4)], tmp_path)
    runs = load_results(tmp_path, "a").runs
    final, best = aggregate(runs, "final"), aggregate(runs, "best")
    assert best.iloc[0]["mean"] == pytest.approx(runs.best_score.mean())
    assert best.iloc[0]["mean"] >= final.iloc[0]["mean"]


def test_compare_with_paper_only_joins_cells_the_paper_has(fig3_agg):
    both = compare_with_paper(fig3_agg)
    assert len(both) == 16
    row = both.loc[("rte", OUR_W)]
    assert row.d_mean == pytest.approx(row["mean"] - 65.3)
    assert row.paper_fail == 3 and row.d_fail == 0


def test_summary_table_lists_cells_and_paper_values(tmp_path):
    rng = np.random.default_rng(2)
    write_records([text_task_record(t, OUR_W, s, "smoke", rng) for t in ("rte", "rt_polarity") for s in range(3)],
                  tmp_path)
    text = summary_table(tmp_path, "smoke")
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith(("rte ", "rt_polarity"))}
    assert "65.3 (74.4)" in lines["rte"] and lines["rte"].split()[1] == "Our+W"
    # the report's failure columns: one number per definition, "–" where the task lacks it
    header = next(line for line in text.splitlines() if line.startswith("task"))
    assert "#fail lee2020" in header and "#fail majority" in header and not re.search(r"\d [LM]\b", text)
    assert re.search(r"\s–\s+\d+\s*$", lines["rt_polarity"])  # no lee2020 threshold there; majority counts
    assert re.search(r"\s\d+\s+\d+\s+\d", lines["rte"])  # rte has both, then the paper's values
    assert lines["rt_polarity"].split()[1] == OUR_W  # no paper cell there: the label, not "Our+W"


def test_summary_without_paper_numbers_has_no_paper_column_and_describes_only_its_columns(tmp_path):
    rng = np.random.default_rng(3)
    write_records([text_task_record("rt_polarity", OUR_W, s, "smoke", rng) for s in range(3)], tmp_path)
    text = summary_table(tmp_path, "smoke")
    header = next(line for line in text.splitlines() if line.startswith("task"))
    assert header.split() == ["task", "regularizer", "n", "mean", "std", "max", "#fail", "majority"]
    assert "lee2020" not in text and "paper" not in text  # neither the column nor its description
    assert "#fail majority: final score <= the majority class" in text


def test_summary_table_does_not_import_plotting(tmp_path):
    write_records([text_task_record("rte", OUR_W, 0, "s", np.random.default_rng(0))], tmp_path)
    code = ("import sys; from mixsweep.analysis import summary_table; "
            f"summary_table({str(tmp_path)!r}, 's'); print('matplotlib' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _cells_with_one_diverged_run(tmp_path):
    """RTE: an Our+W cell with a diverged run among three, and a Devlin cell whose three runs all scored."""
    from mixsweep.records import RunRecord

    def rec(label, seed, score, status="ok"):
        final = {"accuracy": score} if status == "ok" else {}
        curve = [{"step": 10, "epoch": 1.0, "metrics": final}] if final else []
        return RunRecord(run_id=f"{label}-{seed}", sweep="m", task="rte", cell=label, label=label, seed=seed,
                         status=status, headline="accuracy", final=final, best=dict(final), eval_curve=curve,
                         majority={"accuracy": 52.7})

    records = [rec(OUR_W, 0, 70.0), rec(OUR_W, 1, 60.0), rec(OUR_W, 2, 0.0, status="diverged"),
               rec("dropout(0.1)+wdecay(0,0.01)", 0, 50.0), rec("dropout(0.1)+wdecay(0,0.01)", 1, 60.0),
               rec("dropout(0.1)+wdecay(0,0.01)", 2, 70.0)]
    write_records(records, tmp_path)
    return load_results(tmp_path, "m")


def test_a_cell_with_diverged_runs_is_marked_in_every_table(tmp_path):
    from mixsweep.analysis.report import build_report
    from mixsweep.analysis.tables import cell_table, paper_style, render

    table = _cells_with_one_diverged_run(tmp_path)
    agg = aggregate(table.runs, failures=("lee2020",))
    # Means over the finite runs only: Our+W (70 + 60)/2 = 65.0 over 2 of 3 runs, Devlin 60.0 over 3 of 3.
    styled = paper_style(agg, ("lee2020",))
    assert styled.loc["Our+W", "rte"] == "65.0† (70.0) [1]"
    assert styled.loc["Devlin", "rte"] == "60.0 (70.0) [1]"
    assert r"65.0\textsuperscript{\dag} (70.0) [1]" in render(styled, "latex", index=True)
    main = cell_table(agg, ("lee2020",)).set_index("regularizer")
    assert main.loc["Our+W", "mean ± std"] == "65.0† ± 5.00"
    assert main.loc["Devlin", "mean ± std"] == "60.0 ± 8.16"
    summary = {line.split()[1]: line for line in summary_table(tmp_path, "m").splitlines()
               if line.startswith("rte ")}
    assert summary["Our+W"].split()[3] == "65.0†" and summary["Devlin"].split()[3] == "60.0"
    assert "† the cell's runs include diverged or NaN ones" in summary_table(tmp_path, "m")
    report = build_report(table, tmp_path / "report", "t", failures=("lee2020",), figures=False)
    text = unpadded(report.markdown.read_text())
    assert "| rte | Our+W | 2 | 65.0† ± 5.00 |" in text
    assert "| 65.0† (70.0) [1] |" in text and "| 60.0 (70.0) [1] |" in text
    assert "65.0† [" in text  # the statistics table's mean
    assert text.count("† the cell's runs include diverged or NaN ones") >= 3
