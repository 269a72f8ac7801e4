"""``mixsweep report | table | plots``: the analysis subcommands (heavy imports inside the callables)."""

from __future__ import annotations

import argparse
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
    report.set_defaults(func=cmd_report)

    table = subparsers.add_parser(
        "table", help="print the paper-style table (mean (max) [#failed]) of a sweep or an external CSV")
    _add_source_args(table)
    _add_selection(table)
    table.add_argument("--failure", default="lee2020",
                       help="failure definition(s): lee2020, majority, dodge2020, a comma list, or all")
    table.add_argument("--format", choices=("md", "latex", "csv"), default="md",
                       help="md/latex: the paper-style table; csv: every per-cell statistic")
    table.set_defaults(func=cmd_table)

    plots = subparsers.add_parser("plots", help="draw the paper-style figures (PNG and PDF)")
    _add_source_args(plots)
    _add_selection(plots)
    plots.add_argument("--out", type=Path, default=None,
                       help="output folder (default: results/<sweep>/figures, or figures/ beside the CSV)")
    plots.add_argument("--no-paper", action="store_true", help="do not overlay the paper's own points")
    plots.set_defaults(func=cmd_plots)


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sweep", default="smoke", help="sweep name (folder under --results; default: smoke)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")


def _add_source_args(p: argparse.ArgumentParser) -> None:
    _add_store_args(p)
    p.add_argument("--from-csv", type=Path, default=None, metavar="FILE",
                   help="analyse an external CSV of runs (task,config,seed,score) instead of a sweep")


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--selection", choices=("final", "best"), default="final",
                   help="score of a run: at the end of training (final) or the best eval (best)")


def _load(args: argparse.Namespace):
    from mixsweep.analysis.load import load_external_csv, load_results

    if getattr(args, "from_csv", None):
        return load_external_csv(args.from_csv)
    return load_results(args.results, args.sweep)


def cmd_report(args: argparse.Namespace) -> int:
    from mixsweep.analysis.load import export_runs, sweep_dir
    from mixsweep.analysis.report import build_report

    out = sweep_dir(args.results, args.sweep)
    table = _load(args)
    report = build_report(table, out, f"mixsweep report: {args.sweep}", args.selection,
                          figures=not args.no_figures)
    export_runs(table.runs, out / "runs.parquet")
    export_runs(table.runs, out / "runs.csv")
    print(report.main_table)
    for w in table.warnings:
        print(f"warning: {w}")
    print(f"wrote {report.markdown}, {report.html}, {len(report.figures)} figure(s) in {out / 'figures'}, "
          f"runs.parquet, runs.csv")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from mixsweep.analysis.cells import aggregate
    from mixsweep.analysis.failures import describe_definition, parse_definitions
    from mixsweep.analysis.tables import paper_style, render

    failures = parse_definitions(args.failure)
    table = _load(args)
    agg = aggregate(table.runs, args.selection, failures)
    if args.format == "csv":
        print(agg.reset_index().to_csv(index=False), end="")
        return 0
    print(render(paper_style(agg, failures), args.format, index=True), end="")
    tasks = sorted(set(table.runs["task"]))
    for d in failures:
        print(("% " if args.format == "latex" else "") + f"[#failed] {describe_definition(d, tasks)}")
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from mixsweep.analysis.figures import draw_figures
    from mixsweep.analysis.load import sweep_dir

    table = _load(args)
    if args.out is not None:
        out = args.out
    elif args.from_csv:
        out = args.from_csv.parent / "figures"
    else:
        out = sweep_dir(args.results, args.sweep) / "figures"
    written = draw_figures(table.runs, out, args.selection, overlay_paper=not args.no_paper)
    for name, path in written.items():
        print(f"{name}: {path} (+ .pdf)")
    return 0
