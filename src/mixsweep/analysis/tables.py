"""Tables as text: the paper-style table, the per-cell table with the paper side by side, and
the renderers (Markdown, LaTeX, CSV, plain terminal text). No plotting imports here."""

from __future__ import annotations

import math
import re
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
    """Render a table of strings as Markdown (:func:`markdown_table`), LaTeX (:func:`latex_table`) or
    CSV; an empty table, other than as CSV, renders as ``(no runs)``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if index:
        table = table.reset_index()
    if fmt == "csv":
        return csv_text(table)
    if table.empty:
        return "(no runs)\n"
    return markdown_table(table) if fmt == "md" else latex_table(table)


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP): '=1+1',
# '+1+cmd|calc', '-2+3|x', '@SUM(..)', and a tab or CR before one of them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def csv_cell(value):
    """``value`` as a CSV may hold it: a string that a spreadsheet would run as a formula gets a
    leading ``'`` (shown as text, never run); a number, or a string that is a plain number such as
    ``-4.1`` or ``+1.5`` (a spreadsheet reads it as that number), and every other value are kept."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(table: pd.DataFrame) -> str:
    """The one CSV writer of the package (``table --format csv``, ``runs.csv``, ``trials.csv``):
    ``DataFrame.to_csv`` without the index, every text cell and header through :func:`csv_cell`."""
    safe = table.copy()
    for col in safe.columns:
        if not (pd.api.types.is_numeric_dtype(safe[col]) or pd.api.types.is_bool_dtype(safe[col])):
            safe[col] = safe[col].map(csv_cell).astype(object)
    safe.columns = [csv_cell(c) for c in safe.columns]
    return safe.to_csv(index=False)


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (``DataFrame.to_markdown``, GitHub and markdown-it alike): the one writer of the
    package's Markdown tables. Cells print as given; a ``|`` in a cell or header is escaped."""
    text = _as_text(table, lambda s: s.replace("|", "\\|"))  # else the '|' would end the cell
    # disable_numparse: the cells are formatted already ("0.850", "+1.5"); tabulate would reformat them
    return text.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                            colalign=_alignments(text)) + "\n"


# Styler's escape="latex" escapes \ & % $ # _ { } ~ ^ and leaves these alone, which pdfLaTeX's default
# (OT1) text fonts cannot set (the non-ASCII ones) or set as other glyphs (| prints a dash, < and > as ¡ ¿):
# each becomes the LaTeX that prints it.
_LATEX_SYMBOLS = (("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("–", "--"), (INCOMPLETE, r"\textsuperscript{\dag}"),
                  (UNDEFINED, r"\textsuperscript{\ddag}"), ("|", r"\textbar{}"), ("<", r"\textless{}"),
                  (">", r"\textgreater{}"))


def latex_table(table: pd.DataFrame) -> str:
    """A booktabs tabular (``Styler.to_latex``: ``\\toprule``, ``\\midrule``, ``\\bottomrule``), text
    columns ``l`` and numeric ones ``r``; every cell and header escaped (``\\usepackage{booktabs}``)."""
    text = _as_text(table)
    style = (text.style.hide(axis="index")
             .format(_latex_symbols, escape="latex")  # escape first, then the symbols (their $ stays math)
             .format_index(_latex_symbols, escape="latex", axis=1))
    spec = "".join("r" if a == "right" else "l" for a in _alignments(text))
    return style.to_latex(hrules=True, column_format=spec)


def _latex_symbols(s: str) -> str:
    for a, b in _LATEX_SYMBOLS:
        s = s.replace(a, b)
    return s


def _as_text(table: pd.DataFrame, escape=lambda s: s) -> pd.DataFrame:
    """Every cell and header as a string (``str``, as printed), passed through ``escape``."""
    text = table.map(lambda v: escape(str(v)))
    text.columns = [escape(str(c)) for c in table.columns]
    return text


_NUMERIC = re.compile(r"[-+]?\d|–")  # a number, or the en dash that stands for a missing one


def _alignments(text: pd.DataFrame) -> list[str]:
    """Per column, ``right`` where every non-empty cell starts with a number (scores, counts, ``mean ±
    std``) and ``left`` otherwise (names, settings). Read from the cells, which are all strings."""
    def align(cells) -> str:
        filled = [c for c in cells if c]
        return "right" if filled and all(_NUMERIC.match(c) for c in filled) else "left"

    return [align(text.iloc[:, i]) for i in range(text.shape[1])]


def render_text(table: pd.DataFrame) -> str:
    """Fixed-width columns for the terminal."""
    header = [str(c) for c in table.columns]
    body = [[str(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body]) + "\n"
