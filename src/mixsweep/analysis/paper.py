"""The paper's published numbers, shipped as data files in ``mixsweep/paper_data/``.

Transcribed from the paper (Lee, Cho, Kang, "Mixout", ICLR 2020):

- ``table1.csv`` .. ``table4.csv``: Tables 1-4, exact (mean and max over 20 restarts; Table 4
  is GLUE test scores).
- ``fig3_runs.json``, ``fig4_runs.json``: the 20 per-run dev scores per category, read off
  Figs. 3 and 4 (+-0.1), keyed by the paper's display names.
- ``fig3_stats.csv``, ``fig4_stats.csv``: mean, population std, max and failure counts under
  the derived thresholds (``n_fail``) and at exact chance (``n_chance``), read off the figures.
- ``appF_means.csv``: App. F dropout sweep, mean (max); ``approx`` marks the clipped STS-B points.
- ``fig2_curves.csv``: Fig. 2 mean curves of the digits experiment.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pandas as pd

from mixsweep.analysis.naming import display_name, label_of, normalize_task

TABLES = ("table1", "table2", "table3", "table4")
# Where the paper's mean/max of a cell come from, most authoritative first: tables are exact,
# figure read-offs are +-0.1.
_REFERENCE_PRIORITY = ("Table 1", "Table 2", "Table 3", "Fig. 3", "Fig. 4", "App. F")


def _read_text(name: str) -> str:
    return resources.files("mixsweep").joinpath("paper_data", name).read_text(encoding="utf-8")


def _read_csv(name: str) -> pd.DataFrame:
    from io import StringIO

    return pd.read_csv(StringIO(_read_text(name)), keep_default_na=False, na_values=[""])


@cache
def paper_table(name: str) -> pd.DataFrame:
    """One of Tables 1-4 in long form (one row per label x task)."""
    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}: choose one of {', '.join(TABLES)}")
    return _read_csv(f"{name}.csv")


@cache
def paper_runs() -> pd.DataFrame:
    """Per-run dev scores of Figs. 3 and 4: columns figure, task, label, display, score.

    Fig. 4 is RTE only. Its mixout 0.7 category is the same run set as Fig. 3's RTE "Our".
    """
    rows: list[dict] = []
    fig3 = json.loads(_read_text("fig3_runs.json"))
    for task, configs in fig3.items():
        for name, scores in configs.items():
            rows += _run_rows("Fig. 3", normalize_task(task), name, scores)
    for name, scores in json.loads(_read_text("fig4_runs.json")).items():
        rows += _run_rows("Fig. 4", "rte", name, scores)
    return pd.DataFrame(rows)


def _run_rows(figure: str, task: str, name: str, scores: list[float]) -> list[dict]:
    label = label_of(name)
    return [
        {"figure": figure, "task": task, "label": label, "display": display_name(label), "score": s}
        for s in scores
    ]


def paper_points(task: str, label: str) -> list[float]:
    """The paper's per-run scores for one cell (Fig. 3 preferred over Fig. 4), or []."""
    runs = paper_runs()
    cell = runs[(runs.task == task) & (runs.label == label)]
    if cell.empty:
        return []
    first_figure = cell.figure.iloc[0]
    return cell[cell.figure == first_figure].score.tolist()


@cache
def paper_fig_stats() -> pd.DataFrame:
    """Figure read-off statistics: task, label, mean, std, max, n_fail, n_chance, source."""
    fig3 = _read_csv("fig3_stats.csv").drop(columns="config").assign(source="Fig. 3")
    fig4 = _read_csv("fig4_stats.csv").drop(columns=["family", "p"]).assign(task="rte", source="Fig. 4")
    return pd.concat([fig3, fig4], ignore_index=True)


@cache
def paper_appendix_f() -> pd.DataFrame:
    """App. F dropout sweep: task, p, label, mean, max, approx."""
    return _read_csv("appF_means.csv")


@cache
def paper_curves() -> pd.DataFrame:
    """Fig. 2 mean curves: family (dropout|mixout), p, l2_sq, target_acc, source_acc."""
    return _read_csv("fig2_curves.csv")


@cache
def paper_reference() -> pd.DataFrame:
    """One row per (task, label) the paper reports: mean, max, std, n_fail (lee2020), source.

    mean/max come from the most authoritative source that has the cell (tables before figure
    read-offs); std and n_fail exist only where a figure shows the runs.
    """
    parts = [paper_table(t).assign(source=f"Table {t[-1]}") for t in ("table1", "table2", "table3")]
    parts.append(paper_fig_stats())
    parts.append(paper_appendix_f().assign(source="App. F"))
    cols = ["task", "label", "mean", "max", "source"]
    stacked = pd.concat([p[cols] for p in parts], ignore_index=True)
    stacked["rank"] = stacked.source.map(_REFERENCE_PRIORITY.index)
    best = stacked.sort_values("rank", kind="stable").drop_duplicates(["task", "label"]).drop(columns="rank")
    figs = paper_fig_stats().drop_duplicates(["task", "label"])[["task", "label", "std", "n_fail"]]
    ref = best.merge(figs, on=["task", "label"], how="left")
    ref = ref[ref.label != "best-of-table1"]
    return ref.set_index(["task", "label"]).sort_index()


def paper_runs_csv() -> pd.DataFrame:
    """The Fig. 3 per-run scores in the external-CSV layout (task, config, seed, score)."""
    fig3 = paper_runs()[lambda d: d.figure == "Fig. 3"].copy()
    fig3["seed"] = fig3.groupby(["task", "label"]).cumcount()
    return fig3.rename(columns={"display": "config"})[["task", "config", "seed", "score"]]
