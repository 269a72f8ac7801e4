"""The shipped paper data: complete, internally consistent, and in line with the paper's tables."""

from __future__ import annotations

import numpy as np
import pytest

from mixsweep.analysis.naming import DEVLIN, OUR, OUR_W, WIESE
from mixsweep.analysis.paper import (
    paper_appendix_f,
    paper_curves,
    paper_fig_stats,
    paper_reference,
    paper_runs,
    paper_table,
)

PAPER_TASKS = ["rte", "mrpc", "cola", "stsb"]


def test_table1_has_every_row_and_task():
    t1 = paper_table("table1")
    assert len(t1) == 11 * 4
    assert set(t1.task) == set(PAPER_TASKS)
    assert t1.groupby("label").size().eq(4).all()
    row = t1[(t1.label == "mixout(w_pre,0.8)") & (t1.task == "cola")].iloc[0]
    assert (row["mean"], row["max"]) == (57.9, 63.8)


def test_tables_2_to_4_shapes():
    assert set(paper_table("table2").task) == {"sst2"}
    assert len(paper_table("table3")) == 4 * 4
    assert len(paper_table("table4")) == 3 * 4
    with pytest.raises(ValueError):
        paper_table("table9")


def test_every_figure_category_has_twenty_runs():
    counts = paper_runs().groupby(["figure", "task", "label"]).size()
    assert counts.eq(20).all()
    assert len(counts.loc["Fig. 3"]) == 16
    assert len(counts.loc["Fig. 4"]) == 19


def test_fig3_std_and_max_match_the_read_off_statistics():
    runs = paper_runs()
    stats = paper_fig_stats()
    for _, s in stats[stats.source == "Fig. 3"].iterrows():
        x = runs[(runs.figure == "Fig. 3") & (runs.task == s.task) & (runs.label == s.label)].score
        assert np.std(x) == pytest.approx(s["std"], abs=0.006), (s.task, s.label)
        assert x.max() == s["max"]


def test_fig4_statistics_follow_from_its_runs():
    runs = paper_runs()
    stats = paper_fig_stats()
    for _, s in stats[stats.source == "Fig. 4"].iterrows():
        x = runs[(runs.figure == "Fig. 4") & (runs.label == s.label)].score
        assert x.mean() == pytest.approx(s["mean"], abs=0.05), s.label
        assert np.std(x) == pytest.approx(s["std"], abs=0.006), s.label
        assert (x < 55).sum() == s.n_fail, s.label


def test_fig4_mixout_07_is_the_fig3_rte_our_run_set():
    runs = paper_runs()
    fig3 = sorted(runs[(runs.figure == "Fig. 3") & (runs.task == "rte") & (runs.label == OUR)].score)
    fig4 = sorted(runs[(runs.figure == "Fig. 4") & (runs.label == OUR)].score)
    assert fig3 == fig4


def test_appendix_f_rte_column_is_fig4():
    appf = paper_appendix_f()
    fig4 = paper_fig_stats().query("source == 'Fig. 4'").set_index("label")
    for _, r in appf[appf.task == "rte"].iterrows():
        assert (r["mean"], r["max"]) == (fig4.loc[r.label, "mean"], fig4.loc[r.label, "max"])
    assert appf[appf.approx].task.unique().tolist() == ["stsb"]


def test_fig2_curves_share_p0_and_diverge():
    c = paper_curves()
    assert sorted(set(c.p)) == pytest.approx([round(0.1 * i, 1) for i in range(9)])
    drop, mix = (c[c.family == f].set_index("p").drop(columns="family") for f in ("dropout", "mixout"))
    assert drop.loc[0.0].equals(mix.loc[0.0])
    assert drop.l2_sq.is_monotonic_increasing and mix.l2_sq.is_monotonic_decreasing


def test_reference_prefers_tables_over_figures():
    ref = paper_reference()
    assert ref.loc[("mrpc", OUR_W), "source"] == "Table 1"
    assert ref.loc[("mrpc", OUR_W), "mean"] == 87.8  # the figure read-off says 87.7
    assert ref.loc[("rte", "mixout(w_pre,0.3)"), "source"] == "Fig. 4"
    assert ref.loc[("stsb", "dropout(0.3)"), "source"] == "App. F"
    assert {DEVLIN, WIESE, OUR, OUR_W} <= set(ref.loc["rte"].index)
    assert "best-of-table1" not in set(ref.index.get_level_values("label"))
