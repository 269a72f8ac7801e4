"""The sweep report: ``report.md`` and a self-contained ``report.html`` (figures inlined as base64).

The content is built once as a list of sections of blocks (paragraph text, tables, figures)
and rendered twice; the numbers come from :mod:`cells`, :mod:`stats` and :mod:`figures`.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixsweep.analysis.cells import aggregate, compare_with_paper, scores
from mixsweep.analysis.failures import DEFINITIONS, describe_definition, failure_mask
from mixsweep.analysis.load import RunTable
from mixsweep.analysis.naming import DEVLIN, display_name, sort_labels, sort_tasks
from mixsweep.analysis.published import beside_ours
from mixsweep.analysis.stats import compare, expected_max, fisher_failures, max_ci, mean_ci
from mixsweep.analysis.tables import cell_table, fmt_num, paper_style, render, task_precision
from mixsweep.atomic import atomic_write_text

Block = str | pd.DataFrame | Path
EXPECTED_MAX_NS = (1, 3, 5, 10, 20)
REPORT_PERMUTATIONS = 2000

HOW_TO_READ = """\
- **n**: runs with a finite dev score; **nan/err**: runs without one (diverged or NaN correlation) / runs that crashed.
- **mean ± std**: over the n runs; std is the population std (ddof 0), the paper's error bars. Scores are ×100 for GLUE tasks.
- **#fail lee2020**: runs under the thresholds derived to reproduce Lee et al.'s stated counts (the paper gives none);
  **#fail majority**: final score ≤ the majority-class score of the dev set (Mosbach et al. 2021);
  **#fail dodge2020**: best score along the eval curve ≤ threshold (Dodge et al. 2020). Diverged runs and NaN
  correlations count as failed under every definition; – means the definition does not apply to the task.
- **paper mean (max)**, **Δmean**, **Δmax**, **paper #fail**: the paper's numbers for the same cell (Table 1–3, else read
  off Figs. 3, 4, 6) and ours minus the paper's.
- **Statistics**: each cell against the task's baseline (Devlin if run, else `none`, else the lowest-p dropout cell): difference in means with a 95%
  bootstrap CI, a permutation test and a Mann–Whitney test on the scores, Fisher's exact test on the failure counts.
- **Expected max**: expected best dev score when keeping the best of n restarts (Dodge et al. 2019), ± its std.
"""


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    markdown: Path
    html: Path
    figures: dict[str, Path]
    main_table: str


def build_report(
    table: RunTable,
    out_dir: str | os.PathLike,
    title: str,
    selection: str = "final",
    failures: tuple[str, ...] = DEFINITIONS,
    figures: bool = True,
    seed: int = 0,
) -> Report:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out_dir``."""
    out = Path(out_dir)
    runs = table.runs
    agg = aggregate(runs, selection, failures)
    versus = compare_with_paper(agg)
    main = cell_table(agg, failures, versus)
    drawn: dict[str, Path] = {}
    if figures:
        from mixsweep.analysis.figures import draw_figures

        drawn = draw_figures(runs, out / "figures", selection)
    sections = [
        Section("Runs", [_runs_paragraph(table, selection)] + ([_warning_list(table.warnings)] if table.warnings
                                                                else [])),
        Section("Per-cell results", [main, _legend(runs, failures)]),
        Section("Paper-style table (mean (max) [#failed])", [paper_style(agg, failures).reset_index()]),
        Section("Statistics against the baseline", [_stats_table(runs, selection, failures, seed)]),
        Section("Expected max over restarts", [_expected_max_table(runs, agg, selection)]),
        *_published_section(runs, selection),
        Section("Figures", list(drawn.values())),
        Section("How to read this report", [HOW_TO_READ]),
    ]
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, render_markdown(title, sections, out))
    atomic_write_text(html_path, render_html(title, sections))
    return Report(md_path, html_path, drawn, render(main, "md"))


def _runs_paragraph(table: RunTable, selection: str) -> str:
    runs = table.runs
    status = runs["status"].value_counts().to_dict() if len(runs) else {}
    parts = ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
    return (f"{len(runs)} runs ({parts or 'none'}) in {runs['task'].nunique() if len(runs) else 0} task(s) and "
            f"{runs[['task', 'label']].drop_duplicates().shape[0] if len(runs) else 0} cell(s), read from "
            f"`{table.origin}`. Selection protocol: **{selection}** "
            f"({'end of training' if selection == 'final' else 'best point of the eval curve'}).")


def _warning_list(warnings: list[str]) -> str:
    return "Skipped:\n" + "\n".join(f"- {w}" for w in warnings)


def _legend(runs: pd.DataFrame, failures: tuple[str, ...]) -> str:
    tasks = sorted(set(runs["task"]))
    return "\n".join(f"- {describe_definition(d, tasks)}" for d in failures)


def _baseline(labels: set[str]) -> str | None:
    """Devlin's recipe if it ran, else no regularization, else the weakest plain dropout cell."""
    for candidate in (DEVLIN, "none"):
        if candidate in labels:
            return candidate
    dropouts = sorted(x for x in labels if x.startswith("dropout(") and "+" not in x and "|" not in x)
    return dropouts[0] if dropouts else None


def _stats_table(runs: pd.DataFrame, selection: str, failures: tuple[str, ...], seed: int) -> pd.DataFrame | str:
    """Each cell against its task's baseline; CIs for the mean and the max-of-n of every cell."""
    data = runs.assign(score=scores(runs, selection))
    fail_def = "lee2020" if "lee2020" in failures else failures[0] if failures else None
    failed = failure_mask(runs, fail_def, selection) if fail_def else pd.Series(pd.NA, index=runs.index)
    # A task the main definition does not cover (e.g. lee2020 on rt_polarity) is tested under the
    # next definition that covers it; the p-value names it.
    masks = {d: failure_mask(runs, d, selection) for d in failures if d != fail_def}
    rows = []
    for task in sort_tasks(set(data.task)):
        cell = data[data.task == task]
        base = _baseline(set(cell.label))
        base_scores = cell.score[cell.label == base].to_numpy() if base else np.array([])
        task_failed, task_def = failed, ""
        if failed.loc[cell.index].isna().all():
            other = next((d for d, m in masks.items() if not m.loc[cell.index].isna().all()), None)
            if other:
                task_failed, task_def = masks[other], f" ({other})"
        for label in sort_labels(set(cell.label)):
            group = cell[cell.label == label]
            x = group.score.to_numpy()
            finite = x[np.isfinite(x)]
            if finite.size == 0:
                continue
            prec = 3 if np.abs(finite).max() <= 1.5 else 1
            lo, hi = mean_ci(finite, seed=seed)
            mlo, mhi = max_ci(finite, seed=seed)
            row = {"task": task, "regularizer": display_name(label), "n": finite.size,
                   "mean [95% CI]": f"{fmt_num(finite.mean(), prec)} [{fmt_num(lo, prec)}, {fmt_num(hi, prec)}]",
                   "max [95% CI]": f"{fmt_num(finite.max(), prec)} [{fmt_num(mlo, prec)}, {fmt_num(mhi, prec)}]"}
            if base and label != base and np.isfinite(base_scores).any():
                c = compare(finite, base_scores, n_perm=REPORT_PERMUTATIONS, seed=seed)
                row["vs"] = display_name(base)
                row["Δmean [95% CI]"] = f"{fmt_num(c.diff, prec)} [{fmt_num(c.ci_low, prec)}, {fmt_num(c.ci_high, prec)}]"
                row["p perm"] = f"{c.p_permutation:.3g}"
                row["p MWU"] = f"{c.p_mannwhitney:.3g}"
                fisher = _fisher(task_failed, group.index, cell.index[cell.label == base])
                row[f"p Fisher ({fail_def})"] = fisher + (task_def if fisher != "–" else "")
            rows.append(row)
    return pd.DataFrame(rows).fillna("") if rows else "No scored runs."


def _fisher(failed: pd.Series, idx, base_idx) -> str:
    a, b = failed.loc[idx].dropna(), failed.loc[base_idx].dropna()
    if a.empty or b.empty:
        return "–"
    _, p = fisher_failures(int(a.sum()), len(a), int(b.sum()), len(b))
    return f"{p:.3g}"


def _published_section(runs: pd.DataFrame, selection: str) -> list[Section]:
    """Other papers' numbers for this study's cells (``paper_data/published_<study>.csv``), if it ships any."""
    table = beside_ours(runs, scores(runs, selection))
    if table is None:
        return []
    return [Section("Published numbers beside ours", [
        table, "Only numbers we can cite are listed; their metric, selection protocol and optimizer are given "
               "because they can differ from this study's (see each source)."])]


def _expected_max_table(runs: pd.DataFrame, agg: pd.DataFrame, selection: str) -> pd.DataFrame | str:
    data = runs.assign(score=scores(runs, selection))
    prec = task_precision(agg) if len(agg) else {}
    rows = []
    for task, label in agg.index:
        x = data.score[(data.task == task) & (data.label == label)].to_numpy()
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        ns = [n for n in EXPECTED_MAX_NS if n <= x.size] or [x.size]
        mean, std = expected_max(x, ns)
        row = {"task": task, "regularizer": display_name(label)}
        row.update({f"n={n}": f"{fmt_num(m, prec[task])} ± {fmt_num(s, prec[task])}"
                    for n, m, s in zip(ns, mean, std, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows).fillna("") if rows else "No scored runs."


def render_markdown(title: str, sections: list[Section], base: Path) -> str:
    out = [f"# {title}\n"]
    for s in sections:
        out.append(f"## {s.title}\n")
        for b in s.blocks:
            if isinstance(b, pd.DataFrame):
                out.append(render(b, "md"))
            elif isinstance(b, Path):
                rel = os.path.relpath(b, base)
                out.append(f"![{b.stem}]({rel})\n\n[PDF]({Path(rel).with_suffix('.pdf')})\n")
            else:
                out.append(b + "\n")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#eaeaf2}td:nth-child(-n+2){text-align:left}img{max-width:100%;margin:1em 0}
code{background:#f3f3f3;padding:0 3px}"""


def render_html(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, pd.DataFrame):
                body.append(_html_table(b))
            elif isinstance(b, Path):
                data = base64.b64encode(b.read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(b.stem)}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(b.stem)}</figcaption></figure>")
            else:
                body.append(_html_text(b))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                   for r in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_text(text: str) -> str:
    """Paragraphs and '- ' bullet lists, with **bold** and `code` (the only Markdown used here)."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    items, paras = [], []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(inline(line[2:]))
        elif line.startswith("  ") and items:
            items[-1] += " " + inline(line.strip())
        elif line.strip():
            paras.append(f"<p>{inline(line)}</p>")
    return "".join(paras) + ("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else "")
