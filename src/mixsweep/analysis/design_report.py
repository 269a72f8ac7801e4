"""The tests a study's design states (:mod:`design`), applied to its runs: the numbers of the report's
design sections, as tables of plain values, then as display tables.

Per compared cell at threshold majority + d: its failures (split by kind, :mod:`failure_kinds`) and its
baseline's, the one-sided Fisher p in the claimed direction (:func:`stats.fisher_one_sided`), Holm's
adjustment over all compared cells (:func:`stats.holm`), the one-sided Mann–Whitney p on the final
scores in the same direction (fewer failures ↔ higher scores; unadjusted), and the verdict. Failures are
counted on the final score (the majority rule pins it), whatever the report's selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mixsweep.analysis.design import Design, check_cells
from mixsweep.analysis.failure_kinds import failed_at, kind_counts
from mixsweep.analysis.stats import fisher_one_sided, holm, mannwhitney_p, minimum_detectable_rate
from mixsweep.analysis.tables import fmt_num
from mixsweep.records import RunRecord

NO_DIFFERENCE = "no detectable difference on this testbed"


def verdict(p_holm: float, claim: str, alpha: float) -> str:
    """The words of a row: the claimed side where Holm's p < alpha, else no detectable difference. The
    test is one-sided, so a difference on the other side is never a finding."""
    if np.isfinite(p_holm) and p_holm < alpha:
        return f"{claim} failures on this testbed (Holm p < {alpha:g})"
    return NO_DIFFERENCE


def comparisons(runs: pd.DataFrame, records: Sequence[RunRecord], design: Design, offset: float | None = None
                ) -> pd.DataFrame:
    """One row per (task, compared cell) at threshold majority + ``offset`` (default: the primary one).

    Columns: task, cell, baseline, factor, claim, n, failed, the kinds (never_learned, collapsed, other,
    unknown), n_baseline, failed_baseline, p_fisher, p_holm, p_mannwhitney, verdict.
    """
    check_cells(design, sorted(set(runs["cell"].astype(str))))
    offset = design.primary_threshold if offset is None else offset
    counts = kind_counts(runs, records, offset, design.never_learned_band)
    scores = runs.assign(cell=runs["cell"].astype(str)).groupby(["task", "cell"])["final_score"]
    rows = []
    for task in dict.fromkeys(runs["task"]):
        for c in design.compare:
            if (task, c.cell) not in counts.index or (task, c.baseline) not in counts.index:
                continue
            own, base = counts.loc[(task, c.cell)], counts.loc[(task, c.baseline)]
            p = (fisher_one_sided(int(own["failed"]), int(own["n"]), int(base["failed"]), int(base["n"]), c.claim)
                 if own["n"] and base["n"] else np.nan)
            side = "greater" if c.claim == "fewer" else "less"  # fewer failures: higher scores
            mw = (mannwhitney_p(scores.get_group((task, c.cell)), scores.get_group((task, c.baseline)), side)
                  if design.secondary == "mannwhitney" else np.nan)
            rows.append({"task": task, "cell": c.cell, "baseline": c.baseline, "factor": c.factor, "claim": c.claim,
                         "n": int(own["n"]), "failed": int(own["failed"]),
                         **{k: int(own[k]) for k in ("never_learned", "collapsed", "other", "unknown")},
                         "n_baseline": int(base["n"]), "failed_baseline": int(base["failed"]),
                         "p_fisher": p, "p_mannwhitney": mw})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = holm(out["p_fisher"].to_numpy())
    out["verdict"] = [verdict(p, c, design.alpha) for p, c in zip(out["p_holm"], out["claim"], strict=True)]
    return out


def _p(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3g}"


def _failed_text(row) -> str:
    text = f"{row['failed']}/{row['n']} ({row['never_learned']} / {row['collapsed']} / {row['other']})"
    return text + (f" +{row['unknown']} unknown" if row["unknown"] else "")


def comparison_table(rows: pd.DataFrame, design: Design) -> pd.DataFrame:
    """The report's table of compared cells (one-sided Fisher, Holm, Mann–Whitney, verdict)."""
    table = pd.DataFrame({
        "cell": rows["cell"], "baseline": rows["baseline"], "the one factor": rows["factor"],
        "claim": rows["claim"] + " failures", "n": rows["n"].astype(str),
        "failed (never learned / collapsed / other)": [_failed_text(r) for _, r in rows.iterrows()],
        "baseline failed": [f"{a}/{b}" for a, b in zip(rows["failed_baseline"], rows["n_baseline"], strict=True)],
        "one-sided Fisher p": rows["p_fisher"].map(_p), "Holm-adjusted p": rows["p_holm"].map(_p),
    })
    if design.secondary == "mannwhitney":
        table["Mann–Whitney p"] = rows["p_mannwhitney"].map(_p)
    table["verdict"] = rows["verdict"]
    if rows["task"].nunique() > 1:
        table.insert(0, "task", rows["task"])
    return table


def threshold_label(d: float) -> str:
    return "≤ majority" if d == 0 else f"≤ majority + {d:g}"


def sensitivity_table(runs: pd.DataFrame, records: Sequence[RunRecord], design: Design) -> pd.DataFrame:
    """Failures per cell at majority + each threshold; for a compared cell, its Holm-adjusted p there."""
    cells = list(dict.fromkeys(design.cells() + sorted(set(runs["cell"].astype(str)))))
    present = set(runs["cell"].astype(str))
    table: dict[str, list[str]] = {}
    keys = [(t, c) for t in dict.fromkeys(runs["task"]) for c in cells if c in present]
    for d in design.thresholds:
        failed = failed_at(runs, d)
        work = pd.DataFrame({"task": runs["task"], "cell": runs["cell"].astype(str),
                             "applies": failed.notna().to_numpy(), "failed": failed.fillna(False).to_numpy(bool)})
        grouped = work.groupby(["task", "cell"])[["applies", "failed"]].sum()
        rows = comparisons(runs, records, design, d)
        holm_p = {(r.task, r.cell): r.p_holm for r in rows.itertuples()} if not rows.empty else {}
        column = []
        for key in keys:
            if key not in grouped.index:
                column.append("–")
                continue
            text = f"{int(grouped.loc[key, 'failed'])}/{int(grouped.loc[key, 'applies'])}"
            column.append(text + (f" (Holm p {_p(holm_p[key])})" if key in holm_p else ""))
        table[threshold_label(d)] = column
    out = pd.DataFrame({"cell": [c for _, c in keys], **table})
    if runs["task"].nunique() > 1:
        out.insert(0, "task", [t for t, _ in keys])
    return out


def mde_lines(rows: pd.DataFrame, design: Design) -> list[str]:
    """The minimum detectable effect at the seed count, one line per (baseline, n, side) compared."""
    if rows.empty:
        return []
    m = int(rows["p_fisher"].notna().sum())
    lines = []
    seen = rows.drop_duplicates(["task", "baseline", "n", "n_baseline", "failed_baseline", "claim"])
    for r in seen.itertuples():
        if not r.n or not r.n_baseline:
            continue
        p0 = r.failed_baseline / r.n_baseline
        found = [minimum_detectable_rate(p0, r.n, a, r.claim, n_baseline=r.n_baseline)
                 for a in (design.alpha, design.alpha / max(m, 1))]
        words = ["none" if p1 is None else f"{p1:.2f} or {'lower' if r.claim == 'fewer' else 'higher'}"
                 for p1 in found]
        task = f" ({r.task})" if rows["task"].nunique() > 1 else ""
        lines.append(
            f"Minimum detectable effect{task}: against `{r.baseline}` failing {r.failed_baseline}/{r.n_baseline} "
            f"(p0 = {fmt_num(p0, 2)}) with {r.n} restarts in the cell, the one-sided Fisher test detects a failure "
            f"rate of {words[0]} with 80% power at α = {design.alpha:g}, and {words[1]} at α/{m} = "
            f"{design.alpha / max(m, 1):.3g} (Holm's strictest step). A smaller effect would most often read "
            f"\"{NO_DIFFERENCE}\".")
    return lines


def contrast_table(runs: pd.DataFrame, records: Sequence[RunRecord], design: Design) -> pd.DataFrame | None:
    """The contrast's cells with their failure counts (by kind) and final scores: no test, no verdict."""
    if design.contrast is None:
        return None
    counts = kind_counts(runs, records, design.primary_threshold, design.never_learned_band)
    legend = dict(zip(runs["cell"].astype(str), runs.get("delta", runs["cell"]).astype(str), strict=True))
    rows = []
    for task in dict.fromkeys(runs["task"]):
        for cell in design.contrast.cells:
            if (task, cell) not in counts.index:
                continue
            score = runs.loc[(runs["task"] == task) & (runs["cell"].astype(str) == cell), "final_score"]
            score = score.to_numpy(dtype=float)
            score = score[np.isfinite(score)]
            row = counts.loc[(task, cell)]
            digits = 3 if score.size and np.abs(score).max() <= 1.5 else 1
            rows.append({"task": task, "cell": cell, "config": legend.get(cell, cell), "n": str(int(row["n"])),
                         "failed (never learned / collapsed / other)": _failed_text(row),
                         "final mean ± std": (f"{fmt_num(score.mean(), digits)} ± {fmt_num(score.std(), digits + 1)}"
                                              if score.size else "–")})
    out = pd.DataFrame(rows)
    if not out.empty and out["task"].nunique() == 1:
        out = out.drop(columns="task")
    return out
