"""The sweep report: ``report.md`` and a self-contained ``report.html`` (figures inlined as base64).

The content is built once as a list of sections of blocks (Markdown text, tables, figures) and
written as Markdown; the HTML is that Markdown rendered by markdown-it-py (CommonMark + tables)
with each figure inlined. The numbers come from :mod:`cells`, :mod:`stats` and :mod:`figures`,
the provenance block and the recipe from :mod:`provenance`.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixsweep.analysis.cells import aggregate, compare_with_paper, label_keys, scores
from mixsweep.analysis.design import Design
from mixsweep.analysis.failures import DEFAULT, DEFINITIONS, applicable, describe_definition, failure_mask
from mixsweep.analysis.load import RunTable
from mixsweep.analysis.naming import DEVLIN, namer, sort_labels, sort_tasks
from mixsweep.analysis.provenance import provenance_lines, recipe_table
from mixsweep.analysis.published import beside_ours
from mixsweep.analysis.selection import PROTOCOLS, protocol_table
from mixsweep.analysis.stats import compare, expected_max, fisher_failures, max_ci, mean_ci
from mixsweep.analysis.tables import (
    INCOMPLETE,
    cell_table,
    fmt_num,
    footnotes,
    paper_style,
    render,
    task_precision,
)
from mixsweep.errors import UserError
from mixsweep.store.atomic import atomic_write_text


@dataclass
class Figure:
    path: Path  # the PNG; a PDF of the same name lies beside it
    caption: str


Block = str | pd.DataFrame | Figure
EXPECTED_MAX_NS = (1, 3, 5, 10, 20)
REPORT_PERMUTATIONS = 2000

# One sentence per figure: what it shows (the file name says nothing to a reader).
CAPTIONS = {
    "fig3_swarms": "Dev score of every run (dots) for each regularizer, with the mean ± std of the runs "
                   "(black bar under each row); grey crosses are the paper's runs where its Fig. 3 shows the cell; the "
                   "dashed line, where the task has one, is the majority-class score of the dev set (a run at "
                   "or left of it is a failed run by Mosbach et al.'s rule).",
    "fig4_p_sweep": "Dev scores against the probability p for dropout(p) (orange) and mixout(w_pre, p) (blue), "
                    "with the mean line of each family, as in the paper's Fig. 4.",
    "appF_dropout_sweep": "Dev scores of dropout(p) for decreasing p with the mean line (the paper's App. F), "
                          "and the paper's means where it gives them.",
    "expected_max": "Expected best dev score when keeping the best of n restarts (Dodge et al. 2019) ± one std, "
                    "per regularizer; dashed lines, where drawn, are the same curve from the paper's runs.",
    "fig2_digits": "Digits (the paper's Section 4): squared distance to the pretrained weights and the target "
                   "and source accuracies against p, mean ± std over restarts; dashed lines on the right axis "
                   "are the paper's Fig. 2.",
}

HOW_TO_READ = """\
- **n**: runs with a finite dev score; **nan/err**: runs without one (diverged or NaN correlation) / runs that crashed.
- **mean ± std**: over the n runs; std is the population std (ddof 0), the paper's error bars. Scores are ×100 for GLUE tasks.
- **#fail lee2020**: runs under the thresholds derived to reproduce Lee et al.'s stated counts (the paper gives none);
  **#fail majority**: final score ≤ the majority-class score of the dev set (Mosbach et al. 2021);
  **#fail dodge2020**: best score along the eval curve ≤ threshold (Dodge et al. 2020). Diverged runs and NaN
  correlations count as failed under every definition; – means the definition does not apply to the task
  (–‡: footnoted, e.g. majority on a regression task), and a definition that applies to none of the tasks gets
  no column. **default**: lee2020 where the task defines it, else majority. **†** after a mean: the cell's
  runs include diverged or NaN ones, so its mean covers fewer runs than the others'.
- **paper mean (max)**, **Δmean**, **Δmax**, **paper #fail**: the paper's numbers for the same cell (Table 1–3, else read
  off Figs. 3, 4, 6) and ours minus the paper's.
- **Statistics**: each cell against the task's baseline on the same optimizer (Devlin if run, else `none`, else the lowest-p dropout cell; a baseline on another optimizer against the BERTAdam one): difference in means with a 95%
  bootstrap CI, a permutation test and a Mann–Whitney test on the scores, Fisher's exact test on the failure counts
  (default definition).
- **Expected max**: expected best dev score when keeping the best of n restarts (Dodge et al. 2019), ± its std.
- **Rows**: the paper's cells first (Devlin, Wiese, Our, Our+W); the cells of a p-sweep in increasing p, read from
  each run's config.
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
    design: Design | None = None,
) -> Report:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out_dir``.

    A table without runs is an error (nothing is written): a report of nothing is no result. With a
    ``design`` (:mod:`design`), the tests it states, the threshold sensitivity, its compute contrast and
    early discarding follow the statistics; a design naming a cell without runs is an error.
    """
    out = Path(out_dir)
    runs = table.runs
    if runs.empty:
        skipped = f" ({len(table.warnings)} unreadable: {table.warnings[0]})" if table.warnings else ""
        raise UserError(f"no run records in {table.origin}{skipped}: run the sweep first, then the report")
    tasks = sort_tasks(set(runs["task"]))
    designed = _design_sections(table, design, seed) if design is not None else []  # checked before writing
    shown = tuple(d for d in failures if applicable(d, tasks))
    agg = aggregate(runs, selection, shown)
    versus = compare_with_paper(agg)
    main = cell_table(agg, shown, versus)
    drawn: dict[str, Path] = {}
    if figures:
        from mixsweep.analysis.figures import draw_figures

        drawn = draw_figures(runs, out / "figures", selection)
    what_ran = [_runs_paragraph(table, selection), "\n".join(provenance_lines(table.records))]
    sections = [
        *_unfinished_section(table),
        Section("What ran", what_ran + ([_warning_list(table.warnings)] if table.warnings else [])),
        Section("Per-cell results", [main, _legend(tasks, failures, shown), *_notes(agg, shown)]),
        Section(f"Paper-style table (mean (max) [#failed: {'/'.join(shown) or 'no definition applies'}])",
                [paper_style(agg, shown).reset_index(), *_notes(agg, shown)]),
        Section("Recipe", _recipe_blocks(table)),
        Section("Statistics against the baseline", [_stats_table(runs, selection, seed), *_notes(agg, ())]),
        *designed,
        Section("Expected max over restarts", [_expected_max_table(runs, agg, selection)]),
        *_protocols_section(runs, shown),
        *_published_section(runs),
        *_instability_section(table, selection, out if figures else None),
        Section("Figures", [Figure(p, CAPTIONS.get(name, name)) for name, p in drawn.items()]),
        Section("How to read this report", [HOW_TO_READ]),
    ]
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, render_markdown(title, sections, out))
    atomic_write_text(html_path, render_html(title, sections))
    return Report(md_path, html_path, drawn, render(main, "md"))


def _design_sections(table: RunTable, design: Design, seed: int) -> list[Section]:
    """The design's tests (one-sided Fisher with Holm, Mann–Whitney, verdicts, minimum detectable effect),
    the threshold-sensitivity table, the compute contrast and early discarding."""
    from mixsweep.analysis.design_report import (
        comparison_table,
        comparisons,
        contrast_table,
        mde_lines,
        sensitivity_table,
        threshold_label,
    )
    from mixsweep.analysis.early_discarding import display_auc, display_best, early_discarding_tables

    runs, records = table.runs, table.records
    rows = comparisons(runs, records, design)
    primary = threshold_label(design.primary_threshold)
    how = (f"The tests the study's design states ({design.source}). Failed: final {primary} (the "
           f"majority-class score of the dev set{'' if design.primary_threshold == 0 else ' plus the points given'}; "
           "diverged runs and NaN scores count as failed). Each failed run is classified from its own curves: "
           f"**never learned** (the mean training task loss of every quarter of training within "
           f"{design.never_learned_band:g} of ln C, C classes), **collapsed** (some evaluation scored above the "
           "threshold, the final one did not), **other** (neither); **unknown**: the record holds no training "
           "loss. **One-sided Fisher p**: Fisher's exact test on the failure counts, on the side the row claims; "
           f"**Holm-adjusted p**: Holm's step-down correction over the {len(rows)} compared cells; "
           + ("**Mann–Whitney p**: one-sided on the final scores, on the same side (higher scores for fewer "
              "failures), unadjusted, secondary. " if design.secondary == "mannwhitney" else "")
           + f"Verdict at α = {design.alpha:g}; each cell differs from its baseline in the one factor named.")
    compared = [how, comparison_table(rows, design), *mde_lines(rows, design)] if not rows.empty \
        else [how, "No compared cell has runs beside its baseline."]
    sections = [
        Section("Failures against the baseline, as the design states", compared),
        Section("Threshold sensitivity", [
            "Failed restarts per cell with the failure threshold raised by each number of points the design lists "
            "(the first is the primary one), and for a compared cell its Holm-adjusted one-sided Fisher p at that "
            "threshold (Holm over the compared cells at the same threshold).",
            sensitivity_table(runs, records, design)]),
    ]
    contrast = contrast_table(runs, records, design)
    if contrast is not None:
        sections.append(Section(f"Compute contrast: {design.contrast.label}", [
            "A compute contrast the design names: its cells differ in more than one factor, "
            "so they are reported side by side with their counts (failures on the primary "
            "threshold, by kind) and final scores, without a test or a verdict.", contrast]))
    ed = design.early_discarding
    auc, best = early_discarding_tables(runs, records, ed.fractions, ed.n_start, ed.keep, ed.n_boot,
                                        design.primary_threshold, seed)
    sections.append(Section("Early discarding (Dodge et al. 2020)", [
        "How well the dev score early in training predicts a final failure: the ROC AUC of a low score at the "
        "last evaluation at or before the fraction f of training for a failed run (1: separates them, 0.5: "
        f"chance), with a 95% percentile bootstrap CI over restarts ({ed.n_boot} resamples); `all cells` pools "
        "the restarts of every cell.", display_auc(auc),
        "The expected best final score when N restarts start and only the k best at f continue to the end "
        "(compute N·f + k·(1 − f) run lengths), against the expected best of the m = floor(N·f + k·(1 − f)) "
        "full restarts the same compute buys; both exact, for restarts drawn with replacement from the "
        "cell's own (Dodge et al. 2019's model, as in *Expected max* above); Δ = discarding − full.",
        display_best(best)]))
    return sections


def _unfinished_section(table: RunTable) -> list[Section]:
    """First in the report of a study whose planned runs do not all have a record: how many, per cell."""
    from mixsweep.analysis.load import unfinished_lines

    lines = unfinished_lines(table)
    if not lines:
        return []
    cells = pd.DataFrame([{"task": task, "cell": cell, "planned": n, "without a record": m}
                          for (task, cell), (n, m) in table.planned.items() if m])
    text = lines[0].removeprefix("unfinished study: ")
    return [Section("Unfinished study", [text[0].upper() + text[1:] + ".", cells])]


def _recipe_blocks(table: RunTable) -> list[Block]:
    recipe = recipe_table(table.records)
    if recipe.empty:
        return ["The runs hold no config (an external CSV): no recipe to show."]
    return ["Every setting the runs read, from their records (the regularizer is each row's cell above, the "
            "seeds are in *What ran*); a setting that differs between runs lists each value with its count.",
            recipe]


def _runs_paragraph(table: RunTable, selection: str) -> str:
    runs = table.runs
    status = runs["status"].value_counts().to_dict()
    parts = ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
    return (f"{len(runs)} runs ({parts}) in {runs['task'].nunique()} task(s) and "
            f"{runs[['task', 'label']].drop_duplicates().shape[0]} cell(s), read from "
            f"`{table.origin}`. Selection protocol: **{selection}** ({PROTOCOLS[selection]}).")


def _protocols_section(runs: pd.DataFrame, failures: tuple[str, ...]) -> list[Section]:
    """The three selection protocols side by side on the runs that recorded the dev halves (if any)."""
    if not len(runs) or not runs["has_halves"].astype(bool).any():
        return []
    fail_def = "lee2020" if "lee2020" in failures else None
    text = ("Mean headline score" + (f" [#fail {fail_def}]" if fail_def else "") + " of the same runs under each "
            "selection protocol: " + "; ".join(f"**{p}**: {d}" for p, d in PROTOCOLS.items()) + ".")
    return [Section("Selection protocols", [protocol_table(runs, fail_def), text])]


def _instability_section(table: RunTable, selection: str, out: Path | None) -> list[Section]:
    """Instability beyond SD (Du & Nguyen 2023): every measure per cell, whether the measures agree
    (Kendall's τ over cells, bootstrap correlations, successful against failed runs), the layer figure."""
    from mixsweep.analysis.instability_tables import (
        bootstrap_agreement,
        fig_instability,
        instability,
        measure_agreement,
        outcome_table,
        results_root,
        sizes_note,
        symbol_matrix,
    )

    result = instability(table.runs, table.records, results_root(table.origin) if table.origin else None,
                         selection)
    if result.wide.empty:
        return []
    blocks: list[Block] = [
        "Per cell over its restarts, at the **" + selection + "** point, with a 95% interval over restarts (ours: "
        "a delete-one jackknife, θ̂ ± t·SE, no run paired with itself; the authors compute no interval): SD of "
        "the scores; pairwise disagreement I_pwd, 1 − Fleiss' κ and pairwise JSD of the per-example "
        "predictions; SVCCA, PWCCA, linear CKA and orthogonal Procrustes distances of the representations at "
        "the final checkpoint (shown at the deepest stored layer, `layer`); larger = less stable. "
        "**I_κ (textbook)** is Fleiss' κ with chance agreement Σ_c p_c²; **I_κ (authors)** is the number the "
        "authors' notebook computes (chance agreement 1/n for n examples, so it equals n/(n − 1) · I_pwd), to "
        "set beside their tables. SVCCA keeps 99% of the sum of singular values of the uncentred matrix "
        "(anatome's rule, as the authors' code); PWCCA is our addition (the authors report CKA, Procrustes "
        "and SVCCA). **ensemble**: the restarts' majority vote (ties: the larger mean probability, then at "
        "random, seeded; regression: the mean) scored like a run, beside **mean**, the runs' mean score. "
        "Definitions: docs/instability.md.",
        result.wide,
        *result.notes,
    ]
    note = sizes_note(result.bytes_per_run)
    if note:
        blocks.append(note)
    tau = measure_agreement(result)
    for task, pairs in tau.groupby("task", sort=False):
        if pairs["tau"].notna().any():
            blocks += [f"**{task}**: Kendall's τ-b between two measures' rankings of the {int(pairs['n'].max())} "
                       "cells (the authors' central comparison; τ needs 3 or more cells).",
                       symbol_matrix(pairs).reset_index(names="")]
    for task, corr in bootstrap_agreement(result).items():
        if corr.empty:
            continue
        names = list(corr.columns)
        pairs = pd.DataFrame([{"a": a, "b": b, "r": corr.loc[a, b]} for i, a in enumerate(names)
                              for b in names[i + 1:]])
        blocks += [f"**{task}**: Pearson correlation between two measures over 1000 bootstrap draws of each "
                   "cell's restarts, mean over the cells with 3 or more runs (the authors' draws: m restarts "
                   "with replacement, a run drawn twice paired with itself at distance 0, which by itself "
                   "correlates the pairwise measures).", symbol_matrix(pairs, "r").reset_index(names="")]
    split = outcome_table(result)
    if not split.empty:
        tasks = sorted(set(split["task"]))
        blocks += ["Each measure on a cell's successful runs alone and on its failed runs alone (the authors' "
                   "successful-vs-failed comparison: pairs of two successful, or two failed, runs); failed as in "
                   f"the statistics above: {describe_definition(DEFAULT, tasks)}. – : fewer than 2 runs.", split]
    if out is not None:
        fig = fig_instability(result)
        if fig is not None:
            from mixsweep.analysis.figures import save_figure

            path = save_figure(fig, out / "figures", "instability_layers")
            blocks.append(Figure(path, "Representation instability against layer depth (head = the classifier's "
                                       "input), mean over pairs of restarts with its 95% jackknife band, per cell."))
    return [Section("Instability beyond SD", blocks)]


def _warning_list(warnings: list[str]) -> str:
    return "Skipped:\n" + "\n".join(f"- {w}" for w in warnings)


def _legend(tasks: list[str], failures: tuple[str, ...], shown: tuple[str, ...]) -> str:
    lines = [f"- {describe_definition(d, tasks)}" for d in shown]
    lines += [f"- {d}: not defined for {', '.join(tasks)} (no column)" for d in failures if d not in shown]
    lines.append(f"- {describe_definition(DEFAULT, tasks)} (used by the statistics below)")
    return "\n".join(lines)


def _notes(agg: pd.DataFrame, failures: tuple[str, ...]) -> list[str]:
    """The table's footnotes as one paragraph block (none when no mark is used)."""
    lines = footnotes(agg, failures)
    return ["\n".join(f"- {line}" for line in lines)] if lines else []


def _baseline(cell: pd.DataFrame) -> str | None:
    """Devlin's recipe if it ran, else no regularization, else the weakest plain dropout cell.

    Cells keyed by their whole config may carry appended settings (``... [optimizer=adamw]``), so a
    candidate is matched on the regularizer part of the label; among several such cells the one the
    study names ``devlin`` (``devlin@<value>`` when crossed, see :func:`mixsweep.sweeping.expand.cross_cells`),
    else the one with the paper's recipe (no optimizer or training setting changed: the shortest
    label) is the baseline.
    """
    labels = set(cell.label)
    regs = cell.regularizer if "regularizer" in cell else cell.label
    names = cell["cell"].astype(str).str.split("@").str[0] if "cell" in cell else pd.Series("", index=cell.index)
    for candidate in (DEVLIN, "none"):
        if candidate in labels:
            return candidate
        named = cell.label[(regs == candidate) & (names == "devlin")]
        hits = sorted(set(named) or set(cell.label[regs == candidate]), key=lambda x: (len(x), x))
        if hits:
            return hits[0]
    dropouts = sorted(x for x in labels if x.startswith("dropout(") and "+" not in x and "|" not in x)
    return dropouts[0] if dropouts else None


REFERENCE_OPTIMIZER = "bertadam"  # Lee et al.'s (Devlin et al.'s) optimizer: the paper's recipe


def _pairing(cell: pd.DataFrame) -> dict[str, str | None]:
    """Each label of one task's runs -> the baseline it is compared with: that of the *same* optimizer.

    The baseline is :func:`_baseline` among the cells on the label's optimizer (``optimizer`` column),
    so a method is never credited with an optimizer's effect. An optimizer's own baseline is compared
    with the baseline on BERTAdam (the optimizer's effect itself), or, without BERTAdam runs, with the
    baseline over all cells. Cells on an optimizer with no baseline of its own fall back to that one too.
    """
    overall = _baseline(cell)
    if "optimizer" not in cell or cell["optimizer"].nunique(dropna=False) <= 1:
        return {label: overall for label in set(cell.label)}
    opt = cell["optimizer"].astype(object).where(cell["optimizer"].notna(), "")
    by_opt = {o: _baseline(cell[opt == o]) for o in set(opt)}
    reference = by_opt.get(REFERENCE_OPTIMIZER) or overall
    pairs: dict[str, str | None] = {}
    for label, o in zip(cell.label, opt, strict=True):
        own = by_opt[o]
        pairs[label] = own if own and own != label else reference
    return pairs


def _stats_table(runs: pd.DataFrame, selection: str, seed: int) -> pd.DataFrame | str:
    """Each cell against its task's baseline on the same optimizer (:func:`_pairing`); CIs for the mean and
    the max-of-n of every cell. Fisher's test counts failures under ``default`` (lee2020 where the task defines it, else majority).
    """
    data = runs.assign(score=scores(runs, selection))
    display_name = namer(label_keys(runs))
    fail_def = DEFAULT
    failed = failure_mask(runs, fail_def, selection)
    rows = []
    for task in sort_tasks(set(data.task)):
        cell = data[data.task == task]
        pairs = _pairing(cell)
        for label in sort_labels(set(cell.label), label_keys(cell)):
            base = pairs[label]
            base_scores = cell.score[cell.label == base].to_numpy() if base else np.array([])
            group = cell[cell.label == label]
            x = group.score.to_numpy()
            finite = x[np.isfinite(x)]
            if finite.size == 0:
                continue
            prec = 3 if np.abs(finite).max() <= 1.5 else 1
            # Errored runs have no score at all and are not marked; diverged and NaN ones are.
            mark = INCOMPLETE if (~np.isfinite(x) & group.status.ne("failed").to_numpy()).any() else ""
            lo, hi = mean_ci(finite, seed=seed)
            mlo, mhi = max_ci(finite, seed=seed)
            row = {"task": task, "regularizer": display_name(label), "n": finite.size,
                   "mean [95% CI]": f"{fmt_num(finite.mean(), prec)}{mark} [{fmt_num(lo, prec)}, {fmt_num(hi, prec)}]",
                   "max [95% CI]": f"{fmt_num(finite.max(), prec)} [{fmt_num(mlo, prec)}, {fmt_num(mhi, prec)}]"}
            if base and label != base and np.isfinite(base_scores).any():
                c = compare(finite, base_scores, n_perm=REPORT_PERMUTATIONS, seed=seed)
                row["vs"] = display_name(base)
                row["Δmean [95% CI]"] = f"{fmt_num(c.diff, prec)} [{fmt_num(c.ci_low, prec)}, {fmt_num(c.ci_high, prec)}]"
                row["p perm"] = f"{c.p_permutation:.3g}"
                row["p MWU"] = f"{c.p_mannwhitney:.3g}"
                row[f"p Fisher ({fail_def})"] = _fisher(failed, group.index, cell.index[cell.label == base])
            rows.append(row)
    return pd.DataFrame(rows).fillna("") if rows else "No scored runs."


def _fisher(failed: pd.Series, idx, base_idx) -> str:
    a, b = failed.loc[idx].dropna(), failed.loc[base_idx].dropna()
    if a.empty or b.empty:
        return "–"
    _, p = fisher_failures(int(a.sum()), len(a), int(b.sum()), len(b))
    return f"{p:.3g}"


def _published_section(runs: pd.DataFrame) -> list[Section]:
    """Other papers' numbers for this study's cells (``paper_data/published_<study>.csv``), if it ships any."""
    table = beside_ours(runs)
    if table is None:
        return []
    return [Section("Published numbers beside ours", [
        table, "Only numbers we can cite are listed. Ours is scored under each source's selection protocol "
               "and on its metric (the protocol and metric columns, whatever --selection and the task's headline "
               "say: `best` chooses the checkpoint on that metric); their optimizer is given because it can "
               "differ from this study's (see each source)."])]


def _expected_max_table(runs: pd.DataFrame, agg: pd.DataFrame, selection: str) -> pd.DataFrame | str:
    data = runs.assign(score=scores(runs, selection))
    prec = task_precision(agg) if len(agg) else {}
    display_name = namer(agg.attrs.get("label_keys"))
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
    """The report as Markdown; figures link to ``figures/``."""
    out = [f"# {title}\n"]
    for s in sections:
        out.append(f"## {s.title}\n")
        out += [_figure_md(b, i, base) if isinstance(b, Figure) else _block_md(b) for i, b in enumerate(s.blocks, 1)]
    return "\n".join(out)


def _block_md(block: str | pd.DataFrame) -> str:
    return render(block, "md") if isinstance(block, pd.DataFrame) else block + "\n"


def _figure_md(fig: Figure, number: int, base: Path) -> str:
    rel = os.path.relpath(fig.path, base)
    return (f"![{fig.caption}]({rel})\n\n*Figure {number}.* {fig.caption} "
            f"([PDF]({Path(rel).with_suffix('.pdf')}))\n")


def _figure_html(fig: Figure, number: int) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    caption = html.escape(fig.caption)
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>Figure {number}.</b> {caption}</figcaption></figure>\n")


# No text-align for cells: each table's Markdown aligns its columns (names left, numbers right) and
# markdown-it writes that on every cell, over any stylesheet rule.
_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 8px}th{background:#eaeaf2}
figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:14px;color:#444;max-width:60em}
code{background:#f3f3f3;padding:0 3px}li{margin:.2em 0}"""


def render_html(title: str, sections: list[Section]) -> str:
    """A self-contained page: the report's Markdown rendered by markdown-it-py, figures inlined.

    The one escaping boundary: every string (study, task, cell, label, config value, path, note)
    reaches the page through a renderer that takes no raw HTML and makes no link or image, so a
    '<', a quote or ``![x](url)`` in any of them shows as text. The figures, our own PNGs with
    escaped captions, are the only HTML written directly.
    """
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["link", "image", "autolink"])
    body = [md.render(f"# {title}\n")]
    for s in sections:
        body.append(md.render(f"## {s.title}\n"))
        body += [_figure_html(b, i) if isinstance(b, Figure) else md.render(_block_md(b))
                 for i, b in enumerate(s.blocks, 1)]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{''.join(body)}</body></html>\n")
