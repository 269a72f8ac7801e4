"""The compact terminal table the sweep runner prints at the end of a sweep (no plotting imports)."""

from __future__ import annotations

import os

import pandas as pd

from mixsweep.analysis.cells import aggregate
from mixsweep.analysis.load import RunTable, load_results, select_cells
from mixsweep.analysis.naming import display_name
from mixsweep.analysis.paper import paper_reference
from mixsweep.analysis.tables import (
    UNDEFINED,
    fail_text,
    fmt_num,
    footnotes,
    mean_text,
    render_text,
    task_precision,
)

FAILURES = ("lee2020", "majority")


def summary_table(results: str | os.PathLike, sweep: str, cells: list[str] | None = None) -> str:
    """Per (task, label): n, mean, std, max, failed runs, and the paper's mean/max where it has the cell.

    Failed runs are counted as in the report (``#fail lee2020``, ``#fail majority``: a number, or
    ``–`` where the task does not define it); a column no task defines is left out. ``cells`` keeps only those cells of the study (by name).
    """
    return summarize(select_cells(load_results(results, sweep), cells))


def summarize(table: RunTable) -> str:
    if table.runs.empty:
        return "no run records found in " + table.origin + "\n" + _warnings(table.warnings)
    agg = aggregate(table.runs, failures=FAILURES)
    ref = paper_reference()
    rows = []
    prec = task_precision(agg)
    for (task, label), r in agg.iterrows():
        d = prec[task]
        row = {
            "task": task,
            # The paper's short names (Devlin, Our, ...) only where the paper has that cell.
            "regularizer": display_name(label) if (task, label) in ref.index else label,
            "n": str(int(r["n"])) + (f"+{int(r['n_nan'] + r['n_error'])}" if r["n_nan"] + r["n_error"] else ""),
            "mean": mean_text(r, d),
            "std": fmt_num(r["std"], d + 1),
            "max": fmt_num(r["max"], d),
            # the report's columns and format: one count per definition, "–" where undefined
            **{f"#fail {d}": fail_text(task, d, r.get(f"fail_{d}")) for d in FAILURES},
            "paper": "",
        }
        if (task, label) in ref.index:
            p = ref.loc[(task, label)]
            row["paper"] = f"{fmt_num(p['mean'])} ({fmt_num(p['max'])})"
        rows.append(row)
    frame = pd.DataFrame(rows)
    # a definition no task of the sweep defines would only add a column of dashes
    frame = frame.drop(columns=[f"#fail {d}" for d in FAILURES if (frame[f"#fail {d}"] == "–").all()])
    if (frame["paper"] == "").all():  # a study without paper numbers: no column of blanks
        frame = frame.drop(columns=["paper"])
    described = {
        "#fail lee2020": "#fail lee2020: below the thresholds derived from the Mixout paper",
        "#fail majority": "#fail majority: final score <= the majority class",
        "paper": "paper: mean (max)",
    }
    legend = "; ".join(
        ["n: runs with a score (+ without: diverged/NaN/errored)", "std: population"]
        + [text for col, text in described.items() if col in frame and col != "paper"]
        + (["–: not defined for the task"] if any(c.startswith("#fail") for c in frame) else [])
        + ([described["paper"]] if "paper" in frame else [])
    ) + "\n"
    undefined_shown = "#fail majority" in frame and frame["#fail majority"].str.contains(UNDEFINED).any()
    notes = "".join(f"{line}\n" for line in footnotes(agg, ("majority",) if undefined_shown else ()))
    return render_text(frame) + legend + notes + _warnings(table.warnings)


def _warnings(warnings: list[str]) -> str:
    if not warnings:
        return ""
    shown = warnings[:5]
    more = f"\n  ... and {len(warnings) - 5} more" if len(warnings) > 5 else ""
    return "warnings:\n  " + "\n  ".join(shown) + more + "\n"
