"""Paper-style figures (seaborn darkgrid, deep palette, mean +- population-std error bars with caps).

Every figure adapts to the tasks and cells present and can overlay the paper's own per-run
points (grey crosses) or curves. Each ``fig_*`` function returns a matplotlib Figure, or None
when the runs hold nothing it can draw; :func:`draw_figures` saves all of them as PNG and PDF.
matplotlib is imported inside the functions, with the Agg backend.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixsweep.analysis.cells import label_keys, scores
from mixsweep.analysis.naming import namer, sort_labels, sort_tasks
from mixsweep.analysis.paper import paper_appendix_f, paper_curves, paper_points
from mixsweep.analysis.stats import expected_max
from mixsweep.store.atomic import atomic_write_with

TASK_TITLES = {
    "rte": "RTE (Accuracy)",
    "mrpc": "MRPC (F1 accuracy)",
    "cola": "CoLA (Matthews correlation)",
    "stsb": "STS-B (Spearman correlation)",
}
DIGITS = "digits"
SWARM_LIMIT = 150  # above this many points per category a swarm cannot place them: jittered strip
PAPER_STYLE = {"marker": "x", "color": "0.35", "s": 14, "linewidths": 0.8, "zorder": 4}
PAPER_REF_LABEL = "paper-ref"  # label of twin axes that carry the paper's curves


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="darkgrid", palette="deep")
    return plt, sns


def _palette() -> list:
    import seaborn as sns

    return sns.color_palette("deep")


def _tasks(runs: pd.DataFrame) -> list[str]:
    return sort_tasks(set(runs["task"]) - {DIGITS})


def _title(task: str, runs: pd.DataFrame) -> str:
    if task in TASK_TITLES:
        return TASK_TITLES[task]
    headline = runs.loc[runs.task == task, "headline"].iloc[0]
    return f"{task} ({headline})"


def _grid(n: int, width: float = 4.4, height: float = 3.6):
    """A figure with exactly ``n`` panels: 1 row up to 3 panels (2x2 for 4), then 3 columns."""
    plt, _ = _plt()
    ncols = n if n <= 3 else (2 if n == 4 else 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def _points(ax, data: pd.DataFrame, order: list[str], palette: list, x: str = "cat") -> None:
    """Swarm (or, for many runs, jittered strip) of dev scores, one colour per category."""
    _, sns = _plt()
    crowded = data.groupby(x).size().max() > SWARM_LIMIT if len(data) else False
    kw: dict[str, Any] = {"x": x, "y": "score", "hue": x, "order": order, "hue_order": order,
                          "palette": palette, "legend": False, "ax": ax, "size": 3.5}
    if crowded:
        sns.stripplot(data=data, jitter=0.3, alpha=0.5, **kw)
    else:
        sns.swarmplot(data=data, warn_thresh=1.0, **kw)


def _error_bars(ax, values: list[np.ndarray], xs: list[float] | None = None) -> list[float]:
    """mean +- population std with caps at each category; returns the means."""
    xs = list(range(len(values))) if xs is None else xs
    means = [float(np.mean(v)) if len(v) else np.nan for v in values]
    stds = [float(np.std(v)) if len(v) else np.nan for v in values]
    ax.errorbar(xs, means, yerr=stds, fmt="o", color="black", ms=4, capsize=5, elinewidth=1.2, zorder=5)
    return means


def _overlay_paper(ax, task: str, labels: list[str], offset: float = 0.3) -> bool:
    drawn = False
    for i, label in enumerate(labels):
        pts = paper_points(task, label)
        if pts:
            jitter = np.linspace(-0.06, 0.06, len(pts))
            ax.scatter(np.full(len(pts), i + offset) + jitter, pts, **PAPER_STYLE,
                       label=None if drawn else "paper (read off its figure)")
            drawn = True
    return drawn


def _scored(runs: pd.DataFrame, selection: str) -> pd.DataFrame:
    data = runs.assign(score=scores(runs, selection))
    return data[np.isfinite(data.score) & data.status.ne("failed")]


def fig_swarms(runs: pd.DataFrame, selection: str = "final", overlay_paper: bool = True):
    """Fig. 3, laid out horizontally: one panel per task, one row per regularizer (labels read
    without rotation, however long). Each run is a dot, jittered across its row; the mean +- std
    bar sits just under the row so that it hides
    no dot; grey crosses above the row are the paper's runs where its Fig. 3 shows the cell.

    The dots are jittered rather than swarmed: a swarm leaves distinct scores on one line.
    """
    data = _scored(runs, selection)
    tasks = _tasks(data)
    if not tasks:
        return None
    plt, _ = _plt()
    counts = [data.loc[data.task == t, "label"].nunique() for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, squeeze=False, gridspec_kw={"height_ratios": [c + 1.2 for c in counts]},
                             figsize=(8.0, sum(0.5 * c + 0.9 for c in counts) + 0.5))
    palette = _palette()
    display_name = namer(label_keys(data))
    handles: dict[str, Any] = {}
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        cell = data[data.task == task]
        labels = sort_labels(set(cell.label), label_keys(cell))
        names = [display_name(x) for x in labels]
        colors = [palette[i % len(palette)] for i in range(len(labels))]
        _points_h(ax, cell.assign(cat=cell.label.map(display_name)), names, colors)
        values = [cell.score[cell.label == x].to_numpy() for x in labels]
        ys = [i + MEAN_OFFSET for i in range(len(labels))]
        handles["mean ± std of the runs"] = ax.errorbar(
            [float(np.mean(v)) for v in values], ys, xerr=[float(np.std(v)) for v in values], fmt="o",
            color="black", ms=4, capsize=4, elinewidth=1.2, zorder=5)
        if overlay_paper:
            drawn = _overlay_paper_h(ax, task, labels)
            if drawn is not None:
                handles["the paper's runs (read off its figure)"] = drawn
        if selection != "zhang2021":  # its scores are on half of dev; the majority score is of all of it
            for value in majority_scores(cell):
                handles["majority-class score (dev)"] = ax.axvline(value, **MAJORITY_STYLE)
        for i in range(len(labels) - 1):  # rows are told apart by rules, not by the grid
            ax.axhline(i + 0.5, color="white", lw=2.5)
        ax.grid(False, axis="y")
        ax.set_ylim(len(labels) - 0.5, -0.5)  # first category on top
        ax.set_title(_title(task, data))
        ax.set_ylabel("")
        ax.set_xlabel("Dev score")
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06 if len(tasks) == 1 else 0.03, 1, 1))
    return fig


MAJORITY_STYLE = {"color": "0.35", "ls": "--", "lw": 1.0, "zorder": 1}


def majority_scores(runs: pd.DataFrame) -> list[float]:
    """The distinct majority-class dev scores of the runs that have one (one per dev set: cells that
    subsample dev differently have their own), rounded as the table shows scores; a score at or
    below it is a failed run under Mosbach et al.'s rule."""
    if "has_majority" not in runs:
        return []
    values = runs.loc[runs.has_majority.astype(bool), "majority_score"].astype(float)
    return sorted({round(v, 6) for v in values if np.isfinite(v)})


MEAN_OFFSET = 0.3  # the mean bar sits this far under its row's dots (rows are 1 apart)
JITTER = 0.18  # dots spread uniformly over +-JITTER around DOTS_SHIFT above the row's centre
DOTS_SHIFT = -0.05


def _points_h(ax, data: pd.DataFrame, order: list[str], palette: list) -> None:
    """One row per category, each run a dot jittered vertically (fixed seed: the same figure on
    every call) so that runs with close scores stay visible side by side."""
    rng = np.random.default_rng(0)
    for i, (name, color) in enumerate(zip(order, palette, strict=True)):
        x = data.loc[data.cat == name, "score"].to_numpy()
        y = i + DOTS_SHIFT + rng.uniform(-JITTER, JITTER, len(x))
        ax.scatter(x, y, s=22, color=color, alpha=0.75, edgecolors="white", linewidths=0.4, zorder=3)
    ax.set_yticks(range(len(order)), order)


def _overlay_paper_h(ax, task: str, labels: list[str]):
    """The paper's runs as grey crosses along the top of each row; returns a legend handle or None."""
    handle = None
    for i, label in enumerate(labels):
        pts = paper_points(task, label)
        if pts:
            handle = ax.scatter(pts, np.full(len(pts), i - 0.4), **PAPER_STYLE)
    return handle


def _sweep_categories(cell: pd.DataFrame) -> list[tuple[str, float]]:
    """Fig. 4 order: dropout p descending, then p = 0, then mixout p ascending."""
    fams = cell[["family", "p"]].drop_duplicates()
    drop = sorted(((f, p) for f, p in fams.itertuples(index=False) if f == "dropout"), key=lambda c: -c[1])
    none = [(f, p) for f, p in fams.itertuples(index=False) if f == "none"]
    mix = sorted(((f, p) for f, p in fams.itertuples(index=False) if f == "mixout"), key=lambda c: c[1])
    return drop + none + mix


def fig_p_sweep(runs: pd.DataFrame, selection: str = "final", overlay_paper: bool = True):
    """Fig. 4: per task, swarms over p for dropout(p) and mixout(w_pre, p), with mean lines."""
    data = _scored(runs, selection)
    data = data[data.family.isin(["dropout", "mixout", "none"])]
    # A sweep needs both families and more than one value of p to be drawn as one.
    tasks = [t for t in _tasks(data) if set(data[data.task == t].family) >= {"dropout", "mixout"}
             and len(_sweep_categories(data[data.task == t])) >= 3]
    if not tasks:
        return None
    plt, _ = _plt()
    n_cats = max(len(_sweep_categories(data[data.task == t])) for t in tasks)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(max(6.0, 0.65 * n_cats), 3.8 * len(tasks)), squeeze=False)
    pal = _palette()
    color = {"mixout": pal[0], "dropout": pal[1], "none": pal[1]}  # the paper: Mixout blue, Dropout orange
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        cell = data[data.task == task]
        cats = _sweep_categories(cell)
        keys = [f"{f} {p:g}" for f, p in cats]
        labels = [_label_of(cell, f, p) for f, p in cats]
        _points(ax, cell.assign(cat=[f"{f} {p:g}" for f, p in zip(cell.family, cell.p, strict=True)]),
                keys, [color[f] for f, _ in cats])
        means = _error_bars(ax, [cell.score[cell.label == x].to_numpy() for x in labels])
        for family in ("dropout", "mixout"):
            idx = [i for i, (f, _) in enumerate(cats) if f == family or (family == "dropout" and f == "none")]
            ax.plot(idx, [means[i] for i in idx], "-", color=color[family], lw=1.5,
                    label=family.capitalize())
        if overlay_paper:
            _overlay_paper(ax, task, labels)
        ax.set_xticks(range(len(cats)), [f"{p:.1f}" for _, p in cats])
        ax.set_xlabel("Probability")
        ax.set_ylabel("Dev score")
        ax.set_title(_title(task, data))
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _label_of(cell: pd.DataFrame, family: str, p: float) -> str:
    return cell.loc[(cell.family == family) & np.isclose(cell.p, p), "label"].iloc[0]


def fig_dropout_sweep(runs: pd.DataFrame, selection: str = "final", overlay_paper: bool = True):
    """App. F (Fig. 6): per task, swarms of dropout(p) for decreasing p, with the mean line."""
    data = _scored(runs, selection)
    data = data[data.family.isin(["dropout", "none"])]
    tasks = [t for t in _tasks(data) if data[data.task == t].p.nunique() >= 2 and "dropout" in set(
        data[data.task == t].family)]
    if not tasks:
        return None
    fig, axes = _grid(len(tasks))
    orange = _palette()[1]
    appf = paper_appendix_f()
    for ax, task in zip(axes, tasks, strict=True):
        cell = data[data.task == task]
        ps = sorted(set(cell.p), reverse=True)
        keys = [f"{p:.1f}" for p in ps]
        _points(ax, cell.assign(cat=cell.p.map(lambda p: f"{p:.1f}")), keys, [orange] * len(ps))
        means = _error_bars(ax, [cell.score[np.isclose(cell.p, p)].to_numpy() for p in ps])
        ax.plot(range(len(ps)), means, "-", color=orange, lw=1.5, label="dropout(p)")
        ref = appf[appf.task == task]
        if overlay_paper and not ref.empty:
            xs = [ps.index(p) for p in ref.p if any(np.isclose(p, ps))]
            ys = [m for p, m in zip(ref.p, ref["mean"], strict=True) if any(np.isclose(p, ps))]
            ax.plot([x + 0.25 for x in xs], ys, "D:", color="0.35", ms=4, label="paper mean (App. F)")
        ax.set_xlabel("Drop probability")
        ax.set_ylabel("Dev score")
        ax.set_title(_title(task, data))
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


DIGITS_PANELS = (
    ("l2_sq", r"$\|w_{ft} - w_{pre}\|^2$", "L2-norm squared"),
    ("target_acc", "Target accuracy", "Validation accuracy"),
    ("source_acc", "Source accuracy (forgetting)", "Validation accuracy"),
)
# Drawn when the records have it: the distance on the layers mixout replaces dropout on (App. B).
DIGITS_EXTRA_PANEL = ("l2_sq_regularized", r"$\|w_{ft} - w_{pre}\|^2$ on the mixed layers", "L2-norm squared")
PAPER_COLUMN = {"l2_sq_regularized": "l2_sq"}  # the paper reports one distance (parameters unstated)


def fig_digits(runs: pd.DataFrame, overlay_paper: bool = True):
    """Fig. 2: ||w_ft - w_pre||^2, target and source accuracy against p; mean +- std bands.

    The paper's curves go on a twin (right) axis: its data and scale differ from ours.
    """
    data = runs[(runs.task == DIGITS) & runs.status.ne("failed") & runs.family.notna()]
    if data.empty:
        return None
    plt, _ = _plt()
    panels = DIGITS_PANELS + ((DIGITS_EXTRA_PANEL,) if f"final_{DIGITS_EXTRA_PANEL[0]}" in data else ())
    ncols = 2 if len(panels) == 4 else len(panels)  # four panels in a row shrink to unreadable in a page
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.9 * ncols, 3.9 * nrows + 0.3), squeeze=False)
    axes = list(axes.flat)
    pal = _palette()
    color = {"dropout": pal[0], "mixout": pal[1]}  # the paper: Dropout blue, Mixout orange
    curves = paper_curves()
    for ax, (metric, title, ylabel) in zip(axes, panels, strict=True):
        col = f"final_{metric}" if f"final_{metric}" in data else "distance_sq"
        for family in ("dropout", "mixout"):
            fam = data[data.family.isin([family, "none"])]
            stats = fam.groupby("p")[col].agg(["mean", lambda s: s.std(ddof=0)]).sort_index()
            stats.columns = ["mean", "std"]
            if len(stats) == 0 or (fam.family == family).sum() == 0:
                continue
            ax.plot(stats.index, stats["mean"], "-o", ms=3, color=color[family], label=family.capitalize())
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=color[family], alpha=0.2)
        if overlay_paper:
            twin = ax.twinx()
            twin.set_label(PAPER_REF_LABEL)
            for family in ("dropout", "mixout"):
                ref = curves[curves.family == family]
                twin.plot(ref.p, ref[PAPER_COLUMN.get(metric, metric)], "--", color=color[family], alpha=0.6, lw=1,
                          label=f"paper {family} (right axis)")
            twin.grid(False)
            twin.tick_params(axis="y", labelsize=7, colors="0.4")
            twin.set_ylabel("paper (EMNIST→MNIST)", fontsize=7, color="0.4")
        ax.set_xlabel("Probability")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7, loc="best")
    if overlay_paper:
        fig.text(0.5, 0.005, "Solid, left axis: these runs (mean ± std). Dashed, right axis: the paper's Fig. 2 "
                 "means (EMNIST→MNIST); data and scales differ, compare shapes not values.",
                 ha="center", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.04 / nrows, 1, 1))
    return fig


def fig_expected_max(runs: pd.DataFrame, selection: str = "final", overlay_paper: bool = True,
                     max_labels: int = 10):
    """Expected best dev score against the number of restarts n, +- one std (Dodge et al. 2019).

    Dashed: the same curve from the paper's per-run scores, where the paper shows the cell.
    """
    data = _scored(runs, selection)
    tasks = _tasks(data)
    if not tasks:
        return None
    fig, axes = _grid(len(tasks))
    palette = _palette()
    from matplotlib.ticker import MaxNLocator

    display_name = namer(label_keys(data))
    for ax, task in zip(axes, tasks, strict=True):
        cell = data[data.task == task]
        with_paper = False
        for i, label in enumerate(sort_labels(set(cell.label), label_keys(cell))[:max_labels]):
            values = cell.score[cell.label == label].to_numpy()
            ns = np.arange(1, len(values) + 1)
            mean, std = expected_max(values, ns)
            c = palette[i % len(palette)]
            ax.plot(ns, mean, "-", color=c, label=display_name(label))
            ax.fill_between(ns, np.maximum(mean - std, values.min()), np.minimum(mean + std, values.max()),
                            color=c, alpha=0.15)
            ref = paper_points(task, label) if overlay_paper else []
            if ref:
                ref_ns = np.arange(1, len(ref) + 1)
                ax.plot(ref_ns, expected_max(ref, ref_ns)[0], "--", color=c, lw=1, alpha=0.8)
                with_paper = True
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # n counts restarts: no 1.5
        ax.set_xlabel("Number of restarts n")
        ax.set_ylabel("Expected max dev score")
        ax.set_title(_title(task, data))
        # the legend mentions the paper only on a panel that draws one of its curves
        ax.legend(fontsize=7, loc="lower right", title="dashed: paper" if with_paper else None,
                  title_fontsize=7)
    fig.tight_layout()
    return fig


FIGURES = {
    "fig3_swarms": fig_swarms,
    "fig4_p_sweep": fig_p_sweep,
    "appF_dropout_sweep": fig_dropout_sweep,
    "expected_max": fig_expected_max,
}


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> Path:
    """Write ``<name>.png`` and ``<name>.pdf`` (temp file + rename), close the figure, return the PNG."""
    plt, _ = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for ext in ("pdf", "png"):
        # layout is settled by tight_layout: no extra draw
        atomic_write_with(out / f"{name}.{ext}", lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=130))
    plt.close(fig)
    return out / f"{name}.png"


def draw_figures(runs: pd.DataFrame, out_dir: str | os.PathLike, selection: str = "final",
                 overlay_paper: bool = True) -> dict[str, Path]:
    """Draw every figure the runs support into ``out_dir``; returns name -> PNG path."""
    written = {}
    for name, make in FIGURES.items():
        fig = make(runs, selection=selection, overlay_paper=overlay_paper)
        if fig is not None:
            written[name] = save_figure(fig, out_dir, name)
    fig = fig_digits(runs, overlay_paper=overlay_paper)
    if fig is not None:
        written["fig2_digits"] = save_figure(fig, out_dir, "fig2_digits")
    return written
