"""``mixsweep report | table | plots``: the analysis subcommands (heavy imports inside the callables)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_RESULTS = Path("results")


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="write results/<sweep>/report.{md,html} with tables and figures",
        description="Aggregate a sweep's run records, compare with the paper, draw the figures and write "
                    "report.md and a self-contained report.html into results/<sweep>/.")
    _add_store_args(report)
    _add_selection(report)
    report.add_argument("--no-figures", action="store_true", help="tables only (faster)")
    report.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write the report there (default: results/<sweep>/; e.g. for a read-only store)")
    _add_design(report)
    report.set_defaults(func=cmd_report)

    table = subparsers.add_parser(
        "table", help="print the paper-style table (mean (max) [#failed]) of a sweep or an external CSV",
        description="Print a study's results as the paper's table: per task and cell the mean (max) score over "
                    "the restarts and the number of failed runs, as Markdown, LaTeX or CSV (every per-cell "
                    "statistic). Reads the run records under --results (or an external CSV with --from-csv); "
                    "writes nothing. --measure gives the instability measures beyond SD instead.")
    _add_source_args(table)
    _add_selection(table)
    table.add_argument("--failure", default="default",
                       help="failure definition(s): lee2020, majority, dodge2020, a comma list, or all; "
                            "default: lee2020 where the task defines it, else majority")
    table.add_argument("--measure", default=None, metavar="NAME|all",
                       help="instability beyond SD (Du & Nguyen 2023) instead of the paper-style table: one of "
                            "sd, pwd, kappa (textbook), kappa_authors, jsd, svcca, pwcca, cka, procrustes (per cell "
                            "and, for the representation measures, per layer), or all (every measure, one row per "
                            "cell)")
    table.add_argument("--format", choices=("md", "latex", "csv"), default="md",
                       help="md/latex: the paper-style table; csv: every per-cell statistic")
    table.add_argument("--view", choices=VIEWS, default="paper",
                       help="paper: the paper-style table (default); testbed: the tests the study's design states "
                            "(failures by kind, one-sided Fisher with Holm, Mann–Whitney, verdicts, threshold "
                            "sensitivity, compute contrast); early_discarding: how well the early dev score "
                            "predicts a failure, and start-N-keep-k against full restarts (Dodge et al. 2020)")
    _add_design(table)
    table.set_defaults(func=cmd_table)

    plots = subparsers.add_parser(
        "plots", help="draw the paper-style figures (PNG and PDF)",
        description="Draw the paper-style figures of a study (or an external CSV): every run's score per cell "
                    "(Fig. 3), the p-sweeps (Fig. 4, App. F), the expected max over restarts and, for digits, "
                    "Fig. 2, as PNG and PDF into results/<sweep>/figures/ (or --out DIR), with the paper's own "
                    "points where it gives them.")
    _add_source_args(plots)
    _add_selection(plots)
    plots.add_argument("--out", type=Path, default=None,
                       help="output folder (default: results/<sweep>/figures, or figures/ beside the CSV)")
    plots.add_argument("--no-paper", action="store_true", help="do not overlay the paper's own points")
    plots.set_defaults(func=cmd_plots)


VIEWS = ("paper", "testbed", "early_discarding")


def _add_design(p: argparse.ArgumentParser) -> None:
    p.add_argument("--design", type=Path, default=None, metavar="FILE",
                   help="the analysis design (a study file with hydra.sweeper.design, or a YAML file with a "
                        "top-level design:); default: the study's own sweeps/<sweep>.yaml, if it has one")


def _design(args: argparse.Namespace):
    """The design given with --design, else the study's own (None for a CSV or a study without one)."""
    from mixsweep.analysis.design import design_file, study_design

    if args.design is not None:
        return design_file(args.design)
    if getattr(args, "from_csv", None):
        return None
    return study_design(args.sweep)


def _add_store_args(p: argparse.ArgumentParser) -> None:
    from mixsweep.sweeping.cli import parse_cells

    p.add_argument("--sweep", default="smoke", help="sweep name (folder under --results; default: smoke)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    p.add_argument("--cells", type=parse_cells, metavar="NAMES",
                   help="only these cells, a comma list of the study's cell names (e.g. devlin,mixout_0.7)")


def _add_source_args(p: argparse.ArgumentParser) -> None:
    _add_store_args(p)
    p.add_argument("--from-csv", type=Path, default=None, metavar="FILE",
                   help="analyse an external CSV of runs (task,config,seed,score) instead of a sweep")


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--selection", choices=("final", "best", "zhang2021"), default="final",
                   help="score of a run: at the end of training (final, Lee/Mosbach), the best eval (best, "
                        "Dodge), or the test half of dev at the best val-half eval (zhang2021)")


def _warn(table) -> None:
    """What was skipped while reading (corrupt records, damaged output files): one line each, on
    stderr, so that a table printed as CSV stays parseable."""
    for w in table.warnings:
        print(f"mixsweep: warning: {w}", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace):
    from mixsweep.analysis.load import load_external_csv, load_results, select_cells

    if getattr(args, "from_csv", None):
        return select_cells(load_external_csv(args.from_csv), args.cells)
    return select_cells(load_results(args.results, args.sweep), args.cells)


def cmd_report(args: argparse.Namespace) -> int:
    from mixsweep.analysis.load import export_runs, sweep_dir
    from mixsweep.analysis.outdir import writing_into
    from mixsweep.analysis.report import build_report

    out = sweep_dir(args.results, args.sweep)
    table = _load(args)
    if table.runs.empty:  # a report of nothing is no result: say why, write nothing
        from mixsweep.errors import UserError

        bad = f"; {len(table.warnings)} unreadable, e.g. {table.warnings[0]}" if table.warnings else ""
        raise UserError(f"no run records for sweep '{args.sweep}' in {out}{bad}: run "
                        f"`make sweep SWEEP={args.sweep} RESULTS={args.results}` first, then the report")
    if args.out is not None:
        out = args.out
    design = _design(args)
    with writing_into(out, what="report folder", given=args.out is not None, subdirs=("figures",),
                      writes="the report writes report.md, report.html, runs.csv, runs.parquet and figures/ there"):
        report = build_report(table, out, f"mixsweep report: {args.sweep}", args.selection,
                              figures=not args.no_figures, design=design)
        export_runs(table.runs, out / "runs.parquet")
        export_runs(table.runs, out / "runs.csv")
    from mixsweep.analysis.load import unfinished_lines

    print("\n".join([*unfinished_lines(table), report.main_table]))
    _warn(table)
    print(f"wrote {report.markdown}, {report.html}, {len(report.figures)} figure(s) in {out / 'figures'}, "
          f"runs.parquet, runs.csv")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from mixsweep.analysis.cells import aggregate
    from mixsweep.analysis.failures import describe_definition, parse_definitions
    from mixsweep.analysis.tables import footnotes, paper_style, render

    failures = parse_definitions(args.failure)
    if args.measure is not None and args.view != "paper":
        from mixsweep.errors import UserError

        raise UserError(f"--measure and --view {args.view} ask for two tables: give one of them")
    design = _design(args) if args.view != "paper" else None
    table = _load(args)
    _warn(table)
    _say_unfinished(table, args.format)
    if args.measure is not None:
        return _measure_table(args, table)
    if args.view == "testbed":
        return _testbed_view(args, table, design)
    if args.view == "early_discarding":
        return _early_view(args, table, design)
    agg = aggregate(table.runs, args.selection, failures)
    if args.format == "csv":
        print(render(agg, "csv", index=True), end="")
        return 0
    print(render(paper_style(agg, failures), args.format, index=True), end="")
    tasks = sorted(set(table.runs["task"]))
    for d in failures:
        print(("% " if args.format == "latex" else "") + f"[#failed] {describe_definition(d, tasks)}")
    for note in footnotes(agg, failures):
        print(("% " if args.format == "latex" else "") + note)
    return 0


def _comment(fmt: str) -> str:
    return "% " if fmt == "latex" else ""


def _testbed_view(args: argparse.Namespace, table, design) -> int:
    """``table --view testbed``: the design's compared cells, threshold sensitivity and contrast."""
    from mixsweep.analysis.design_report import (
        comparison_table,
        comparisons,
        contrast_table,
        mde_lines,
        sensitivity_table,
    )
    from mixsweep.analysis.tables import render
    from mixsweep.errors import UserError

    if design is None:
        where = "the CSV" if getattr(args, "from_csv", None) else f"sweeps/{args.sweep}.yaml"
        raise UserError(f"no design for {where}: add hydra.sweeper.design to the study file, or give --design FILE")
    _needs_records(args, "testbed")
    rows = comparisons(table.runs, table.records, design)
    if args.format == "csv":
        print(render(rows, "csv"), end="")
        return 0
    print(render(comparison_table(rows, design), args.format), end="")
    for line in mde_lines(rows, design):
        print(_comment(args.format) + line)
    print()
    print(render(sensitivity_table(table.runs, table.records, design), args.format), end="")
    contrast = contrast_table(table.runs, table.records, design)
    if contrast is not None:
        print(f"\n{_comment(args.format)}Compute contrast (no test, no verdict): {design.contrast.label}")
        print(render(contrast, args.format), end="")
    return 0


def _needs_records(args: argparse.Namespace, view: str) -> None:
    if getattr(args, "from_csv", None):
        from mixsweep.errors import UserError

        raise UserError(f"--view {view} reads the runs' curves, which a CSV has not: give --sweep instead of "
                        "--from-csv")


def _early_view(args: argparse.Namespace, table, design) -> int:
    """``table --view early_discarding``: (a) the AUC table and (b) start-N-keep-k against full restarts,
    with the design's settings (or the defaults: f 0.1/0.25/0.5, N 4/8, k 1/2, failure at the majority)."""
    from mixsweep.analysis.design import EarlyDiscarding
    from mixsweep.analysis.early_discarding import display_auc, display_best, early_discarding_tables
    from mixsweep.analysis.tables import render

    _needs_records(args, "early_discarding")
    ed = design.early_discarding if design is not None else EarlyDiscarding()
    offset = design.primary_threshold if design is not None else 0.0
    auc, best = early_discarding_tables(table.runs, table.records, ed.fractions, ed.n_start, ed.keep, ed.n_boot,
                                        offset)
    if args.format == "csv":  # one tidy table: each (N, k) row with its cell's AUC at that fraction
        print(render(best.merge(auc, on=["task", "cell", "fraction"], how="left", suffixes=("", "_auc")), "csv"),
              end="")
        return 0
    print(_comment(args.format) + "(a) a low dev score at the fraction f of training as a predictor of a final "
          "failure: ROC AUC with a 95% bootstrap CI over restarts")
    print(render(display_auc(auc), args.format), end="")
    print(f"\n{_comment(args.format)}(b) expected best final score: start N, continue the k best at f, against "
          "m = floor(N·f + k·(1 − f)) full restarts (exact, restarts drawn with replacement)")
    print(render(display_best(best), args.format), end="")
    return 0


def _say_unfinished(table, fmt: str) -> None:
    """The table's first lines for a study with planned runs that have no record (on stderr beside a
    CSV, which stays parseable; as LaTeX comments above a tabular)."""
    from mixsweep.analysis.load import unfinished_lines

    for line in unfinished_lines(table):
        print(("% " if fmt == "latex" else "") + line, file=sys.stderr if fmt == "csv" else sys.stdout)


def _measure_table(args: argparse.Namespace, table) -> int:
    """``table --measure``: the instability measures of every cell from the runs' stored outputs."""
    from mixsweep.analysis.instability_tables import instability, results_root
    from mixsweep.analysis.tables import render
    from mixsweep.errors import UserError
    from mixsweep.instability import MEASURES

    name = args.measure.strip().lower()
    if name != "all" and name not in MEASURES:
        raise UserError(f"unknown measure '{args.measure}': choose one of {', '.join(MEASURES)} or all")
    root = None if getattr(args, "from_csv", None) else results_root(table.origin)
    # only the measure asked for: a prediction measure reads no representations, one representation
    # measure decomposes each run once and computes that distance alone
    result = instability(table.runs, table.records, root, args.selection, measures=None if name == "all" else [name])
    if name == "all":
        frame = result.wide
    else:
        frame = result.long[result.long["measure"] == name].reset_index(drop=True)
    if args.format == "csv":
        print(render(frame, "csv"), end="")
    elif frame.empty:
        print(f"no cell has what {name} needs (stored per-example outputs"
              + (" and representations" if MEASURES.get(name, ("",))[0] == "representation" else "") + ")")
    else:
        print(render(frame, args.format, index=False), end="")
    for note in result.notes:  # beside a CSV on stdout, notes go to stderr so the CSV stays parseable
        print(("% " if args.format == "latex" else "") + note,
              file=sys.stderr if args.format == "csv" else sys.stdout)
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from mixsweep.analysis.figures import draw_figures
    from mixsweep.analysis.load import sweep_dir
    from mixsweep.analysis.outdir import writing_into

    table = _load(args)
    _warn(table)
    if args.out is not None:
        out = args.out
    elif args.from_csv:
        out = args.from_csv.parent / "figures"
    else:
        out = sweep_dir(args.results, args.sweep) / "figures"
    with writing_into(out, what="figures folder", given=args.out is not None,
                      writes="plots writes the figures (PNG and PDF) there"):
        written = draw_figures(table.runs, out, args.selection, overlay_paper=not args.no_paper)
    for name, path in written.items():
        print(f"{name}: {path} (+ .pdf)")
    return 0
