"""``mixsweep sweep``, ``mixsweep plan`` and ``mixsweep rerun``.

One rule picks the study, the same in the CLI and the Makefile: ``--sweep``/``SWEEP=`` names it;
without it, a ``--task``/``TASK=`` means the paper's Table 1 (``table1``) narrowed to that task,
and no task means the offline smoke study. ``--task`` only narrows: a task the study does not
list is an error that names the study's tasks.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from mixsweep.sweeping.overrides import override_key

# The table a sweep prints at its end: (results, sweep, cells) -> text. The analysis layer, above
# this one, makes it; the command line hands it in (see mixsweep.cli), so sweeping never imports analysis.
Summarize = Callable[[str, str, list[str] | None], str]

HYDRA_CFG = ("job", "hydra", "all")


def default_sweep(task: str | None) -> str:
    return "table1" if task else "smoke"


def parse_cells(text: str) -> list[str]:
    """``devlin, mixout_0.7`` -> ``["devlin", "mixout_0.7"]`` (empty names dropped)."""
    return [c.strip() for c in text.split(",") if c.strip()]


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sweep", default=None, metavar="NAME",
                   help="study file sweeps/NAME.yaml (default: table1 when --task is given, else smoke)")
    p.add_argument("--task", metavar="TASK[,TASK]",
                   help="narrow the study to one of its tasks (or a comma list of them)")
    p.add_argument("--seeds", type=int, metavar="N", help="number of restarts, seeds 0..N-1 (default: the study's)")
    p.add_argument("--launcher", help="local (default) | joblib | slurm | submitit_local")
    p.add_argument("--workers", type=int, metavar="N", help="parallel workers for --launcher joblib (default 2)")
    p.add_argument("--results", default="results", metavar="DIR", help="results directory (default: results)")
    p.add_argument("--cells", type=parse_cells, metavar="NAMES",
                   help="only these cells of the study, a comma list of its cell names (e.g. devlin,mixout_0.7)")
    p.add_argument("--cfg", choices=HYDRA_CFG, default=None,
                   help="Hydra's introspection: print the composed job/hydra/all config of the first run and exit")
    p.add_argument("--resolve", action="store_true", help="with --cfg: resolve ${...} interpolations")
    p.add_argument("--info", nargs="?", const="all", default=None, metavar="TOPIC",
                   help="Hydra's --info (all, config, defaults, defaults-tree, plugins, searchpath) and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="more Hydra overrides, e.g. model=bert_base data.source=glue_dir data.glue_dir=PATH")


def register(sub: argparse._SubParsersAction, *, summarize: Summarize | None = None) -> None:
    """The sweep, plan, store and rerun commands; ``summarize`` makes the table ``sweep`` prints at its end."""
    p = sub.add_parser("sweep", help="run a study: task × regularizer cells × seeds, resumable",
                       description=__doc__.split("\n\n", 1)[1].replace("``", "`"))
    _add_sweep_args(p)
    p.add_argument("--no-summary", action="store_true", help="do not print the summary table at the end")
    p.set_defaults(func=_sweep, summarize=summarize)

    p = sub.add_parser("plan", help="list a study's cells and runs, and what is done/failed/to do; runs nothing",
                       description=__doc__.split("\n\n", 1)[1].replace("``", "`"))
    _add_sweep_args(p)
    p.add_argument("--show-config", action="store_true", help="print the composed config of the first run")
    p.set_defaults(func=_plan)

    p = sub.add_parser("store", help="maintain the results store (runs/ + one view per study)")
    store_sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    m = store_sub.add_parser("migrate", help="move runs from the old results/<sweep>/<task>/<run_id>/ layout "
                                             "into results/runs/ (loses nothing)")
    m.add_argument("--results", default="results", help="results directory (default: results)")
    m.add_argument("--dry-run", action="store_true", help="print what would be moved and written; change nothing")
    m.set_defaults(func=_migrate)

    p = sub.add_parser(
        "rerun", help="re-execute one stored run from its record and compare the metrics",
        description="Re-execute one stored run from the config in its record (results/runs/RUN_ID/result.json) "
                    "and compare: exit 0 when the final metrics and the whole eval curve match exactly, 1 when "
                    "they differ or the rerun fails. The store is not changed. A record whose config no longer "
                    "hashes to its run id (edited after the run) is refused.")
    p.add_argument("run_id", help="the run's id (its folder name) or an unambiguous prefix of it")
    p.add_argument("--results", default="results", metavar="DIR",
                   help="results directory holding the run (default: results)")
    p.set_defaults(func=_rerun)


def _request(args: argparse.Namespace, dry_run: bool):
    from mixsweep.sweeping.launch import validate
    from mixsweep.sweeping.request import SweepRequest

    req = SweepRequest(sweep=args.sweep or default_sweep(args.task), task=args.task, seeds=args.seeds,
                       launcher=args.launcher, results=args.results, workers=args.workers,
                       overrides=list(args.overrides), dry_run=dry_run, cells=args.cells)
    validate(req)
    return req


def _default_note(args: argparse.Namespace) -> str:
    if args.sweep:
        return ""
    return " (the default with a task; choose another with SWEEP=/--sweep)" if args.task \
        else " (the default without a task; TASK=mrpc runs Table 1 on MRPC)"


def _args_note(args: argparse.Namespace) -> list[str]:
    """A header line when extra ARGS change the study's runs: those runs join its view and report."""
    if not args.overrides:
        return []
    from mixsweep.secrets import mask

    study = args.sweep or default_sweep(args.task)
    shown = mask(" ".join(args.overrides))  # a tracking URI may hold a password
    if all(override_key(o).split(".", 1)[0] == "tracking" for o in args.overrides):
        return [f"  extra ARGS: {shown} -- live tracking only: the same runs (tracking is no part of a run id)"]
    return [f"  extra ARGS: {shown} -- these runs join study '{study}' (its view, "
            f"`mixsweep table` and report) beside any runs without them, as separate cells"]


def _introspect(args: argparse.Namespace, req) -> bool:
    """Hydra's ``--cfg`` / ``--info`` for the request's first run; True when one was asked for."""
    if args.cfg is None and args.info is None:
        return False
    from mixsweep.sweeping.launch import hydra_introspect

    hydra_introspect(req, cfg=args.cfg, resolve=args.resolve, info=args.info)
    return True


def _sweep(args: argparse.Namespace) -> int:
    from mixsweep.sweeping.launch import hydra_errors, run_multirun
    from mixsweep.sweeping.preflight import header_lines, preflight, study_cells
    from mixsweep.sweeping.tidy import tidy_after_failure

    req = _request(args, dry_run=False)
    if _introspect(args, req):
        return 0
    with hydra_errors():
        study = study_cells(req)
    preflight(study, req.launcher)
    print("\n".join(header_lines(study, _default_note(args)) + _args_note(args)), flush=True)
    # parallel workers print lines, not bars fighting for one terminal
    bars = os.environ.get("MIXSWEEP_PROGRESS_BARS")
    if req.launcher not in (None, "local"):
        os.environ["MIXSWEEP_PROGRESS_BARS"] = "0"
    try:
        with tidy_after_failure(req):
            returns = run_multirun(req.hydra_arguments())
    finally:
        if bars is None:
            os.environ.pop("MIXSWEEP_PROGRESS_BARS", None)
        else:
            os.environ["MIXSWEEP_PROGRESS_BARS"] = bars
    if args.summarize is not None and not args.no_summary:
        print(args.summarize(req.results, req.sweep, req.cells))
    return _failed_runs_verdict(returns, req.results)


def _failed_runs_verdict(returns, results: str) -> int:
    """Exit status 1, said in the last line, when a run of this launch failed (CI pipelines and
    SLURM dependencies read the status); 0 when every run it started has an outcome."""
    import sys

    from mixsweep.store import runs as store

    ran = [job._return_value for batch in returns or [] for job in batch  # a failed job's is its exception
           if isinstance(job._return_value, dict) and not job._return_value.get("skipped")]
    failed = [r["run_id"] for r in ran if r.get("status") == "failed"]
    if not failed:
        return 0
    record = store.lookup(results, failed[0])
    why = f" (first: {record.error.splitlines()[0]})" if record is not None and record.error else ""
    sys.stdout.flush()
    print(f"mixsweep: {len(failed)} of {len(ran)} runs of this launch failed{why}: see "
          f"{store.run_dir(results, failed[0]) / store.RESULT}; fix the cause and relaunch the same command to "
          "retry them (finished runs are kept)", file=sys.stderr, flush=True)
    return 1


def _plan(args: argparse.Namespace) -> int:
    from mixsweep.sweeping.launch import hydra_errors, run_multirun
    from mixsweep.sweeping.preflight import header_lines, study_cells

    req = _request(args, dry_run=True)
    if _introspect(args, req):
        return 0
    if args.show_config:
        from omegaconf import OmegaConf

        from mixsweep.sweeping.compose import compose_sweep_jobs

        with hydra_errors():
            cfg = compose_sweep_jobs(req, limit=1)[0]
        print(OmegaConf.to_yaml(cfg))
        return 0
    with hydra_errors():
        study = study_cells(req)
    print("\n".join(header_lines(study, _default_note(args)) + _args_note(args)), flush=True)
    run_multirun(req.hydra_arguments())
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from mixsweep.store import runs as store

    counts = store.migrate(args.results, dry_run=args.dry_run)
    if args.dry_run:
        print(f"dry run: would migrate {counts['moved'] + counts['duplicates']} runs of {counts['studies']} studies "
              f"into {args.results}/runs/; nothing was changed")
        return 0
    print(f"migrated {counts['moved']} runs of {counts['studies']} studies into {args.results}/runs/"
          + (f"; {counts['duplicates']} runs were stored by more than one study: one copy is in runs/, "
             "the other under <sweep>/.migrated/" if counts["duplicates"] else ""))
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from mixsweep.sweeping.rerun import rerun

    return rerun(args.results, args.run_id)
