"""``mixsweep sweep``, ``mixsweep plan`` and ``mixsweep rerun``."""

from __future__ import annotations

import argparse


def parse_cells(text: str) -> list[str]:
    """``devlin, mixout_0.7`` -> ``["devlin", "mixout_0.7"]`` (empty names dropped)."""
    return [c.strip() for c in text.split(",") if c.strip()]


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sweep", default="smoke", help="study file in sweeps/ (default: smoke)")
    p.add_argument("--task", help="narrow the study to one task (or a comma list)")
    p.add_argument("--seeds", type=int, help="number of restarts (seed = 0..N-1)")
    p.add_argument("--launcher", help="local | joblib | slurm | submitit_local")
    p.add_argument("--workers", type=int, help="parallel workers for LAUNCHER=joblib (default 2)")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--cells", type=parse_cells, metavar="NAMES",
                   help="only these cells of the study, a comma list of its cell names (e.g. devlin,mixout_0.7)")
    p.add_argument("overrides", nargs="*", help="more Hydra overrides, key=value")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a study: task × regularizer cells × seeds, resumable")
    _add_sweep_args(p)
    p.add_argument("--no-summary", action="store_true", help="do not print the summary table at the end")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("plan", help="list a study's cells and runs, and what is done/failed/to do; runs nothing")
    _add_sweep_args(p)
    p.add_argument("--show-config", action="store_true", help="print the composed config of the first run")
    p.set_defaults(func=_plan)

    p = sub.add_parser("store", help="maintain the results store (runs/ + one view per study)")
    store_sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    m = store_sub.add_parser("migrate", help="move runs from the old results/<sweep>/<task>/<run_id>/ layout "
                                             "into results/runs/ (loses nothing)")
    m.add_argument("--results", default="results", help="results directory (default: results)")
    m.set_defaults(func=_migrate)

    p = sub.add_parser("rerun", help="re-execute one stored run from its record and compare the metrics")
    p.add_argument("run_id")
    p.add_argument("--results", default="results")
    p.set_defaults(func=_rerun)


def _request(args: argparse.Namespace, dry_run: bool):
    from mixsweep.sweeping.launch import SweepRequest, validate

    req = SweepRequest(sweep=args.sweep, task=args.task, seeds=args.seeds, launcher=args.launcher,
                       results=args.results, workers=args.workers, overrides=list(args.overrides),
                       dry_run=dry_run, cells=args.cells)
    validate(req)
    return req


def _sweep(args: argparse.Namespace) -> int:
    from mixsweep.sweeping.launch import hydra_overrides, run_multirun

    req = _request(args, dry_run=False)
    run_multirun(hydra_overrides(req))
    if not args.no_summary:
        _print_summary(req.results, req.sweep, req.cells)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from mixsweep.sweeping.launch import hydra_overrides, run_multirun

    req = _request(args, dry_run=True)
    if args.show_config:
        from omegaconf import OmegaConf

        from mixsweep.sweeping.compose import compose_sweep_jobs

        cfg = compose_sweep_jobs(req, limit=1)[0]
        print(OmegaConf.to_yaml(cfg))
        return 0
    run_multirun(hydra_overrides(req))
    return 0


def _print_summary(results: str, sweep: str, cells: list[str] | None = None) -> None:
    from mixsweep.analysis import summary_table

    print(summary_table(results, sweep, cells))


def _migrate(args: argparse.Namespace) -> int:
    from mixsweep import store

    counts = store.migrate(args.results)
    print(f"migrated {counts['moved']} runs of {counts['studies']} studies into {args.results}/runs/"
          + (f"; {counts['duplicates']} runs were stored by more than one study: one copy is in runs/, "
             "the other under <sweep>/.migrated/" if counts["duplicates"] else ""))
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from mixsweep.sweeping.rerun import rerun

    return rerun(args.results, args.run_id)
