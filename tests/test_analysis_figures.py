"""Figures: the right panels for the tasks and cells present, written as PNG and PDF."""

from __future__ import annotations

import numpy as np
import pytest

from mixsweep.analysis import figures as F
from mixsweep.analysis.load import load_results
from mixsweep.analysis.naming import PAPER_ORDER
from mixsweep.analysis.synthetic import digits_record, text_task_record, write_records


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != F.PAPER_REF_LABEL]


@pytest.fixture(scope="module")
def four_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("res")
    rng = np.random.default_rng(0)
    recs = [text_task_record(t, lab, s, "p", rng, n_evals=2) for t in ("rte", "mrpc", "cola", "stsb")
            for lab in PAPER_ORDER for s in range(4)]
    recs += [text_task_record("rte", lab, s, "p", rng, n_evals=2)
             for lab in ("none", "dropout(0.3)", "dropout(0.7)", "mixout(w_pre,0.3)") for s in range(4)]
    recs += [digits_record(f, p, s, "p", rng) for f, p in (("dropout", 0.0), ("dropout", 0.5), ("mixout", 0.5))
             for s in range(2)]
    write_records(recs, root)
    return load_results(root, "p").runs


def test_fig3_has_one_panel_per_text_task(four_tasks):
    fig = F.fig_swarms(four_tasks)
    assert [ax.get_title() for ax in panels(fig)] == [F.TASK_TITLES[t] for t in ("rte", "mrpc", "cola", "stsb")]
    # RTE: 4 paper categories + none + 2 dropout + 1 mixout, one row each, labels never rotated; the
    # mixout(w_pre, p) family in increasing p at the place of "Our" (named by its label inside the
    # sweep), then the dropout family.
    rows = [t.get_text() for t in panels(fig)[0].get_yticklabels()]
    assert rows == ["Devlin", "Wiese", "mixout(w_pre,0.3)", "mixout(w_pre,0.7)", "Our+W", "dropout(0.3)",
                    "dropout(0.7)", "none"]
    assert all(t.get_rotation() == 0 for t in panels(fig)[0].get_yticklabels())


def test_fig3_dots_are_jittered_and_clear_of_the_mean_bar(tmp_path):
    rng = np.random.default_rng(0)
    recs = [text_task_record("rt_polarity", "none", s, "j", rng) for s in range(6)]
    for r in recs:  # six runs with the same score: only jitter tells them apart
        r.final["accuracy"] = 70.0
    write_records(recs, tmp_path)
    fig = F.fig_swarms(load_results(tmp_path, "j").runs, overlay_paper=False)
    (ax,) = panels(fig)
    dots = ax.collections[0].get_offsets()
    ys = np.asarray(dots[:, 1])
    assert len(set(np.round(ys, 6))) == 6 and np.ptp(ys) > 0.1  # visibly apart
    mean_y = ax.lines[0].get_ydata()[0]  # the mean marker of the error bar
    assert mean_y > ys.max() + 0.05  # under the dots (the y axis runs downward): hides none


def test_p_sweep_orders_dropout_down_then_mixout_up(four_tasks):
    fig = F.fig_p_sweep(four_tasks)
    (ax,) = panels(fig)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.7", "0.3", "0.0", "0.3", "0.7"]


def test_dropout_sweep_and_digits_panels(four_tasks):
    assert len(panels(F.fig_dropout_sweep(four_tasks))) == 1  # only RTE has a dropout(p) sweep
    fig = F.fig_digits(four_tasks)
    assert len(panels(fig)) == 3
    assert sum(ax.get_label() == F.PAPER_REF_LABEL for ax in fig.axes) == 3
    assert len(panels(F.fig_digits(four_tasks, overlay_paper=False))) == len(F.fig_digits(four_tasks,
                                                                                          overlay_paper=False).axes)


def test_digits_records_with_the_mixed_layer_distance_get_a_fourth_panel(tmp_path):
    rng = np.random.default_rng(0)
    recs = [digits_record(f, p, s, "dg", rng) for f in ("dropout", "mixout") for p in (0.0, 0.4, 0.8) for s in range(2)]
    for r in recs:
        r.final["l2_sq_regularized"] = r.final["l2_sq"] / 4
    write_records(recs, tmp_path)
    fig = F.fig_digits(load_results(tmp_path, "dg").runs)
    assert len(panels(fig)) == 4 and "mixed layers" in panels(fig)[3].get_title()


def test_smoke_sweep_draws_single_panels(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["dropout(0.1)+wdecay(0,0.01)", "mixout(w_pre,0.7)", "none"]
    write_records([text_task_record("rt_polarity", lab, s, "smoke", rng) for lab in labels for s in range(2)],
                  tmp_path)
    runs = load_results(tmp_path, "smoke").runs
    written = F.draw_figures(runs, tmp_path / "figs")
    assert set(written) == {"fig3_swarms", "expected_max"}  # no p sweep, no digits
    for png in written.values():
        assert png.stat().st_size > 0 and png.with_suffix(".pdf").stat().st_size > 0
    assert len(panels(F.fig_swarms(runs))) == 1
    assert F.fig_p_sweep(runs) is None and F.fig_digits(runs) is None


def test_one_dropout_and_one_mixout_cell_are_no_p_sweep(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["dropout(0.1)", "mixout(w_pre,0.9)", "mixout(w_pre,0.9)+wdecay(w_pre,0.01)"]  # the smoke study
    write_records([text_task_record("rt_polarity", lab, s, "smoke", rng) for lab in labels for s in range(2)],
                  tmp_path)
    runs = load_results(tmp_path, "smoke").runs
    assert F.fig_p_sweep(runs) is None
    assert "fig4_p_sweep" not in F.draw_figures(runs, tmp_path / "figs")


def test_many_runs_per_category_fall_back_to_a_strip(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    write_records([text_task_record("rte", lab, s, "big", rng, n_evals=1) for lab in ("none", "dropout(0.3)")
                   for s in range(12)], tmp_path)
    runs = load_results(tmp_path, "big").runs
    monkeypatch.setattr(F, "SWARM_LIMIT", 5)
    calls = []
    import seaborn as sns

    monkeypatch.setattr(sns, "stripplot", lambda **kw: calls.append(kw))
    F.fig_dropout_sweep(runs, overlay_paper=False)
    assert len(calls) == 1


def test_expected_max_has_integer_ticks_and_names_the_paper_only_when_drawn(tmp_path, four_tasks):
    rng = np.random.default_rng(0)
    write_records([text_task_record("rt_polarity", lab, s, "em", rng) for lab in ("none", "dropout(0.1)")
                   for s in range(3)], tmp_path)
    fig = F.fig_expected_max(load_results(tmp_path, "em").runs)  # the paper has no rt_polarity runs
    (ax,) = panels(fig)
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_legend().get_title().get_text() == ""
    rte = panels(F.fig_expected_max(four_tasks))[0]  # RTE Devlin: the paper's Fig. 3 runs
    assert rte.get_legend().get_title().get_text() == "dashed: paper"
