"""The table renderers (Markdown through ``to_markdown``, LaTeX through ``Styler.to_latex``, CSV), each
checked against its whole output typed here by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from mixsweep.analysis.tables import render
from mixsweep.gpucheck.summary import render_markdown


def two_by_two() -> pd.DataFrame:
    return pd.DataFrame({"regularizer": ["Devlin", "mixout(0.9)"], "rte": ["56.5 (73.6) [14]", "–"]})


def test_markdown_pads_columns_and_aligns_names_left_numbers_right():
    assert render(two_by_two(), "md") == (
        "| regularizer   |              rte |\n"
        "|:--------------|-----------------:|\n"
        "| Devlin        | 56.5 (73.6) [14] |\n"
        "| mixout(0.9)   |                – |\n"
    )


def test_markdown_escapes_a_pipe_in_a_cell_and_a_header():
    table = pd.DataFrame({"cell": ["a|b"], "n|runs": ["1"]})
    assert render(table, "md") == (
        "| cell   |   n\\|runs |\n"
        "|:-------|----------:|\n"
        "| a\\|b   |         1 |\n"
    )


def test_markdown_prints_formatted_numbers_verbatim():
    """tabulate would parse "0.850" as 0.85 and "+1.5" as 1.5; the cells are formatted already."""
    table = pd.DataFrame({"value": ["0.850", "+1.5", "1e-05"]})
    assert render(table, "md") == (
        "|   value |\n"
        "|--------:|\n"
        "|   0.850 |\n"
        "|    +1.5 |\n"
        "|   1e-05 |\n"
    )


def test_markdown_with_the_index():
    table = two_by_two().set_index("regularizer")
    assert render(table, "md", index=True) == render(two_by_two(), "md")


def test_latex_is_booktabs_with_text_columns_left_and_numbers_right():
    assert render(two_by_two(), "latex") == (
        "\\begin{tabular}{lr}\n"
        "\\toprule\n"
        "regularizer & rte \\\\\n"
        "\\midrule\n"
        "Devlin & 56.5 (73.6) [14] \\\\\n"
        "mixout(0.9) & -- \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


def test_latex_escapes_specials_and_sets_the_symbols_and_marks():
    table = pd.DataFrame({"regularizer": ["a_b & c%", "x #1 in C:\\dir"], "mean ± std": ["65.0† ± 5.00", "–‡"]})
    assert render(table, "latex") == (
        "\\begin{tabular}{lr}\n"
        "\\toprule\n"
        "regularizer & mean $\\pm$ std \\\\\n"
        "\\midrule\n"
        "a\\_b \\& c\\% & 65.0\\textsuperscript{\\dag} $\\pm$ 5.00 \\\\\n"
        "x \\#1 in C:\\textbackslash dir & --\\textsuperscript{\\ddag} \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


def test_latex_headers_and_cells_with_delta_pipe_and_angle_brackets():
    table = pd.DataFrame({"Δmean": ["+1.5"], "label": ["a|b <c>"]})
    assert render(table, "latex") == (
        "\\begin{tabular}{rl}\n"
        "\\toprule\n"
        "$\\Delta$mean & label \\\\\n"
        "\\midrule\n"
        "+1.5 & a\\textbar{}b \\textless{}c\\textgreater{} \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


@pytest.mark.parametrize("fmt", ["md", "latex"])
def test_an_empty_table_says_no_runs(fmt):
    assert render(two_by_two().iloc[:0], fmt) == "(no runs)\n"


def test_csv_is_to_csv_empty_or_not():
    assert render(two_by_two(), "csv") == "regularizer,rte\nDevlin,56.5 (73.6) [14]\nmixout(0.9),–\n"
    assert render(two_by_two().iloc[:0], "csv") == "regularizer,rte\n"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown table format 'html'"):
        render(two_by_two(), "html")


def test_gpucheck_summary_tables_are_the_same_markdown():
    run = {"model": "tiny", "task": "rte", "train_size": 8, "dev_size": 8, "epochs": 1, "batch": 4,
           "regularizer": "none"}
    k1 = {"k": 1, "runs": 1, "wall_s": 2.5, "runs_per_hour": 1440.0, "gain": 1.0, "run_total_s_mean": 2.5}
    md = render_markdown({"device": "cpu", "started": "t", "budget_s": 60.0, "passed": None, "sections": {
        "throughput": {"status": "ok", "run": run, "k": [k1], "skipped_k": []}}})
    table = (
        "|   k |   runs |   wall s |   runs/hour |   gain vs k=1 |   mean run s |\n"
        "|----:|-------:|---------:|------------:|--------------:|-------------:|\n"
        "|   1 |      1 |      2.5 |       1,440 |             1 |          2.5 |\n"
    )
    assert md.endswith("released together after a warm-up:\n\n" + table)
