"""The per-run swarm figure (Fig. 3) draws the majority-class score of the dev set where the task has
one (issue 36 §12): a dashed vertical line at the value the records carry, none for a regression task."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

from mixsweep.analysis.figures import fig_swarms  # noqa: E402
from mixsweep.analysis.load import load_results  # noqa: E402
from mixsweep.analysis.synthetic import text_task_record, write_records  # noqa: E402


def dashed_x(ax) -> list[float]:
    return sorted({float(x) for line in ax.get_lines() if line.get_linestyle() == "--" for x in line.get_xdata()})


def test_the_swarm_figure_draws_each_tasks_majority_class_score(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    # majority-class scores typed from synthetic.TASKS: rt_polarity accuracy 50.0, RTE 52.7, STS-B none
    records = [text_task_record(task, label, seed, "maj", rng) for task in ("rt_polarity", "rte", "stsb")
               for label in ("dropout(0.1)", "mixout(w_pre,0.7)") for seed in range(3)]
    write_records(records, tmp_path / "results")
    runs = load_results(tmp_path / "results", "maj").runs
    fig = fig_swarms(runs)
    by_title = {ax.get_title().split(" ")[0]: ax for ax in fig.axes}
    assert dashed_x(by_title["RTE"]) == [52.7]
    assert dashed_x(by_title["STS-B"]) == []
    (polarity,) = [ax for title, ax in by_title.items() if title not in ("RTE", "STS-B")]
    assert dashed_x(polarity) == [50.0]
    assert "majority-class score (dev)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert dashed_x(fig_swarms(runs, "best").axes[0]) == dashed_x(fig.axes[0])  # the same dev set


def test_plots_through_the_cli_still_draws_the_swarm_figure(tmp_path):
    from mixsweep.analysis.synthetic import demo_store

    demo_store(tmp_path / "results", sweep="demo", seeds=2, digits=False)
    done = subprocess.run([sys.executable, "-m", "mixsweep.cli", "plots", "--sweep", "demo", "--results",
                           str(tmp_path / "results"), "--out", str(tmp_path / "fig")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fig" / "fig3_swarms.png").stat().st_size > 0
