"""Tables as text: the paper-style table, the per-cell table with the paper side by side, and
the renderers (Markdown, LaTeX, CSV, plain terminal text). No plotting imports here."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from mixsweep.analysis.failures import undefined_reason
from mixsweep.analysis.naming import namer, sort_labels

FORMATS = ("md", "latex", "csv")
# Footnote marks. A cell whose runs include diverged or NaN ones has a mean over fewer runs than the
# others (it would look better than it is without the mark); a failure definition that cannot apply
# to a task prints "–" with the reason, never a silent 0.
INCOMPLETE = "†"
UNDEFINED = "‡"
INCOMPLETE_NOTE = f"{INCOMPLETE} the cell's runs include diverged or NaN ones: its mean covers only the finite scores"


def fmt_num(x, digits: int = 1) -> str:
    """A number with fixed decimals; NA and NaN print as an en dash."""
    if x is None or x is pd.NA or math.isnan(float(x)):
        return "–"
    return f"{float(x):.{digits}f}"


def task_precision(agg: pd.DataFrame) -> dict[str, int]:
    """Decimals per task: 3 for natural-unit tasks (accuracies in [0, 1], digits), else 1 (x100)."""
    peak = agg[["min", "max"]].abs().max(axis=1).groupby(level="task").max()
    return {task: (3 if v <= 1.5 else 1) for task, v in peak.items()}


def mean_text(row, digits: int) -> str:
    """The cell's mean, marked when some of its runs diverged or scored NaN (``n_nan`` > 0)."""
    return fmt_num(row["mean"], digits) + (INCOMPLETE if _count(row.get("n_nan")) else "")


def fail_text(task: str, definition: str, value) -> str:
    """A failure count; ``–`` with a mark where the definition cannot apply to the task."""
    text = fmt_num(value, 0)
    return text + UNDEFINED if text == "–" and undefined_reason(task, definition) else text


def footnotes(agg: pd.DataFrame, failures: Sequence[str]) -> list[str]:
    """The legend of the row names (``name: config delta``, where the rows are the study's cell names)
    and the footnotes the marks in a table of ``agg`` need, one line each (none if nothing to say)."""
    legend = agg.attrs.get("legend") or {}
    rows = list(dict.fromkeys(label for _, label in agg.index))
    notes = [f"{name}: {legend[name]}" for name in rows if name in legend]
    if len(agg) and "n_nan" in agg and (agg["n_nan"].fillna(0) > 0).any():
        notes.append(INCOMPLETE_NOTE)
    tasks = list(dict.fromkeys(t for t, _ in agg.index))
    for d in failures:
        for task in tasks:
            reason = undefined_reason(task, d)
            if reason:
                notes.append(f"{UNDEFINED} {d} on {task}: {reason}")
    return notes


def _count(x) -> int:
    return 0 if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) else int(x)


def fmt_signed(x, digits: int = 1) -> str:
    s = fmt_num(x, digits)
    return s if s == "–" or s.startswith("-") else f"+{s}"


def paper_style(agg: pd.DataFrame, failures: Sequence[str]) -> pd.DataFrame:
    """Rows = regularizer labels, columns = tasks, cells ``mean (max) [#failed]`` like Table 1.

    With several failure definitions the brackets hold their counts in the order given. Marks
    (:data:`INCOMPLETE`, :data:`UNDEFINED`) are explained by :func:`footnotes`.
    """
    cells: dict[str, dict[str, str]] = {}
    prec = task_precision(agg)
    display_name = namer(agg.attrs.get("label_keys"))
    for (task, label), row in agg.iterrows():
        counts = "/".join(fail_text(task, d, row.get(f"fail_{d}")) for d in failures)
        text = f"{mean_text(row, prec[task])} ({fmt_num(row['max'], prec[task])})"
        cells.setdefault(display_name(label), {})[task] = text + (f" [{counts}]" if failures else "")
    labels = sort_labels({label for _, label in agg.index}, agg.attrs.get("label_keys"))
    order = [display_name(x) for x in labels]
    tasks = list(dict.fromkeys(t for t, _ in agg.index))
    table = pd.DataFrame.from_dict(cells, orient="index").reindex(index=order, columns=tasks).fillna("–")
    table.index.name = "regularizer"
    return table


def cell_table(agg: pd.DataFrame, failures: Sequence[str], paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The report's main table: one row per (task, label), ours and (optionally) the paper's."""
    rows = []
    prec = task_precision(agg)
    display_name = namer(agg.attrs.get("label_keys"))
    for (task, label), r in agg.iterrows():
        d = prec[task]
        row = {
            "task": task,
            "regularizer": display_name(label),
            "n": int(r["n"]),
            "mean ± std": f"{mean_text(r, d)} ± {fmt_num(r['std'], d + 1)}",
            "median": fmt_num(r["median"], d),
            "min": fmt_num(r["min"], d),
            "max": fmt_num(r["max"], d),
        }
        for name in failures:
            row[f"#fail {name}"] = fail_text(task, name, r.get(f"fail_{name}"))
        if r.get("n_nan", 0) or r.get("n_error", 0):
            row["nan/err"] = f"{int(r['n_nan'])}/{int(r['n_error'])}"
        if paper is not None and (task, label) in paper.index:
            p = paper.loc[(task, label)]
            row["paper mean (max)"] = f"{fmt_num(p['paper_mean'])} ({fmt_num(p['paper_max'])})"
            row["Δmean"] = fmt_signed(p["d_mean"])
            row["Δmax"] = fmt_signed(p["d_max"])
            row["paper #fail"] = fmt_num(p["paper_fail"], 0)
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def render(table: pd.DataFrame, fmt: str = "md", index: bool = False) -> str:
    """Render a table of strings as Markdown, LaTeX (booktabs) or CSV."""
    if index:
        table = table.reset_index()
    if fmt == "csv":
        return table.to_csv(index=False)
    if table.empty:
        return "(no runs)\n"
    header = [str(c) for c in table.columns]
    body = [[str(v) for v in row] for row in table.itertuples(index=False)]
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        esc = _latex_escape
        lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule"]
        lines.append(" & ".join(esc(h) for h in header) + r" \\")
        lines.append(r"\midrule")
        lines += [" & ".join(esc(v) for v in row) + r" \\" for row in body]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown table format {fmt!r}: choose one of {', '.join(FORMATS)}")


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("–", "--"), (INCOMPLETE, r"\textsuperscript{\dag}"),
                 (UNDEFINED, r"\textsuperscript{\ddag}")):
        s = s.replace(a, b)
    return s


def render_text(table: pd.DataFrame) -> str:
    """Fixed-width columns for the terminal."""
    header = [str(c) for c in table.columns]
    body = [[str(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body]) + "\n"
