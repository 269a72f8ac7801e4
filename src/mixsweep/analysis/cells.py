"""Per-cell aggregates of the run table, and the side-by-side comparison with the paper."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixsweep.analysis.failures import check_selection, failure_mask
from mixsweep.analysis.naming import PKey, sort_labels, sort_tasks
from mixsweep.analysis.paper import paper_reference
from mixsweep.data.dev_split import HALVES_RULE
from mixsweep.errors import UserError

KEYS = ["task", "label"]


def scores(runs: pd.DataFrame, selection: str = "final") -> pd.Series:
    """The headline score of each run under a selection protocol (``final``, ``best`` or ``zhang2021``).

    ``zhang2021`` needs the dev halves in every scored run's curve; runs recorded without them (older
    runs, external CSVs, the digits experiment) are an error rather than silently failed runs.
    """
    if check_selection(selection) == "zhang2021":
        lacking = runs["status"].ne("failed") & ~runs["has_halves"].astype(bool)
        if lacking.any():
            raise UserError(
                f"{int(lacking.sum())} of {len(runs)} runs recorded no val/test halves of dev, so the zhang2021 "
                "selection cannot score them: rerun them with this version (delete their run directories and "
                "relaunch the sweep), or use --selection final or best"
            )
        _refuse_mixed_halves(runs)
    return runs[f"{selection}_score"].astype(float)


def _refuse_mixed_halves(runs: pd.DataFrame) -> None:
    """A cell's zhang2021 scores must all come from one split of dev: runs recorded before a run stated its
    halves (``dev_halves`` empty: most made them by sha256 order, issue 32 item 9) beside runs on
    run_glue.py's RandomState(1) halves select and score on different examples."""
    if "dev_halves" not in runs.columns:
        return
    scored = runs[runs["status"].ne("failed") & runs["has_halves"].astype(bool)]
    rule = scored["dev_halves"].where(scored["dev_halves"].notna(), "")
    for (task, cell), rules in rule.groupby([scored["task"], scored["cell"].astype(str)], sort=True):
        if rules.nunique() > 1:
            older = int(rules.ne(HALVES_RULE).sum())
            raise UserError(
                f"{task}/{cell}: {older} of {len(rules)} runs were scored on the older dev halves (recorded "
                f"before a run stated its halves; sha256 order) and the rest on run_glue.py's RandomState(1) "
                f"halves, so their zhang2021 scores do not compare: rerun those {older} runs with this version "
                "(delete their run directories and relaunch the sweep), or use --selection final or best"
            )


def aggregate(
    runs: pd.DataFrame,
    selection: str = "final",
    failures: tuple[str, ...] = ("lee2020",),
    configs: dict | None = None,
) -> pd.DataFrame:
    """One row per (task, label): n, mean, std, median, min, max, n_nan, n_error, fail_<definition>.

    Statistics are over runs with a finite score; ``std`` is the population std (ddof 0), as
    in the paper's error bars. ``n_nan`` counts runs without a finite score (diverged, NaN
    correlation), ``n_error`` runs that crashed (status ``failed``, no score at all).
    ``fail_<d>`` is the failed-run count under definition ``d`` (NA where ``d`` does not apply).
    """
    score = scores(runs, selection)
    errored = runs["status"].eq("failed")
    finite = np.isfinite(score) & ~errored
    work = pd.DataFrame({"task": runs["task"], "label": runs["label"], "cell": runs["cell"].astype(str)})
    work["score"] = score.where(finite)
    work["nan"] = ~finite & ~errored
    work["error"] = errored
    for d in failures:
        work[f"fail_{d}"] = failure_mask(runs, d, selection, configs)
    grouped = work.groupby(KEYS, sort=True)
    out = grouped["score"].agg(
        n="count", mean="mean", std=lambda s: s.std(ddof=0), median="median", min="min", max="max"
    )
    out.insert(0, "cell", grouped["cell"].agg(lambda c: ",".join(sorted(set(c)))))
    out["n_nan"] = grouped["nan"].sum().astype(int)
    out["n_error"] = grouped["error"].sum().astype(int)
    for d in failures:
        out[f"fail_{d}"] = grouped[f"fail_{d}"].sum(min_count=1).astype("Int64")
    keys = label_keys(runs)
    out = paper_ordered(out, keys)
    out.attrs["label_keys"] = keys  # the row order of tables built from ``out`` (tables.paper_style)
    out.attrs["legend"] = row_legend(runs)
    return out


def row_legend(runs: pd.DataFrame) -> dict[str, str]:
    """Row name -> its full config delta, for rows named by the study's cell names (``mosbach`` ->
    ``dropout(0.1)+wdecay(0,0.01) [optimizer=adamw, ...]``); empty where the rows carry their labels."""
    if "delta" not in runs or runs.empty:
        return {}
    pairs = runs[["label", "delta"]].drop_duplicates("label")
    return {a: b for a, b in zip(pairs["label"], pairs["delta"], strict=True) if a != b}


def label_keys(runs: pd.DataFrame) -> dict[str, PKey | None]:
    """label -> (p-sweep family, probabilities) from the records' configs, for :func:`sort_labels`."""
    if "p_family" not in runs or runs.empty:
        return {}
    first = runs.drop_duplicates("label")
    return {label: (fam, tuple(ps)) if isinstance(fam, str) else None
            for label, fam, ps in zip(first["label"], first["p_family"], first["p_values"], strict=True)}


def paper_ordered(agg: pd.DataFrame, keys: dict[str, PKey | None] | None = None) -> pd.DataFrame:
    """Rows by task, then the paper's categories first (Devlin, Wiese, Our, Our+W), then the rest;
    within a family whose p varies, by increasing p (``keys``, see :func:`label_keys`)."""
    order = [
        (task, label)
        for task in sort_tasks(set(agg.index.get_level_values("task")))
        for label in sort_labels(set(agg.loc[task].index), keys)
    ]
    return agg.reindex(pd.MultiIndex.from_tuples(order, names=KEYS)) if order else agg


def compare_with_paper(agg: pd.DataFrame, failure: str = "lee2020") -> pd.DataFrame:
    """``agg`` joined with the paper's mean, max and #failed for the cells the paper reports.

    Adds paper_mean, paper_max, paper_fail (lee2020 counts, where a figure shows the runs),
    paper_source, and the deltas d_mean, d_max, d_fail (ours - paper).
    """
    ref = paper_reference().rename(
        columns={"mean": "paper_mean", "max": "paper_max", "n_fail": "paper_fail", "source": "paper_source"}
    )
    both = agg.join(ref[["paper_mean", "paper_max", "paper_fail", "paper_source"]], how="inner")
    both["d_mean"] = both["mean"] - both["paper_mean"]
    both["d_max"] = both["max"] - both["paper_max"]
    fail_col = f"fail_{failure}"
    if fail_col in both:
        both["d_fail"] = both[fail_col].astype("Float64") - both["paper_fail"].astype("Float64")
    return both
