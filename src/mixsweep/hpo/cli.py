"""``mixsweep hpo``: an Optuna study whose trials are ordinary runs in the results store."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hpo", help="Optuna search over a space in conf/hpo/; resumable, prunable, parallel",
                       description="Tune a regularizer on one task: each trial = k restarts through the "
                                   "normal runner; relaunching continues the study up to --trials in total.")
    p.add_argument("--task", required=True, help="task to tune on (conf/task/*.yaml)")
    p.add_argument("--space", default="mixout", help="search space: conf/hpo/<name>.yaml or a path (default mixout)")
    p.add_argument("--trials", type=int, default=30, help="total cap on complete+pruned trials (default 30)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes / SLURM array tasks")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--seeds", type=int, default=3, help="restarts per trial, seed = 0..K-1 (default 3)")
    p.add_argument("--study", help="study name (default <task>-<space>); its files live in RESULTS/hpo/<study>/")
    p.add_argument("--storage", help="Optuna RDB URL, or a journal file path (default: $OPTUNA_STORAGE, else "
                   "RESULTS/hpo/<study>/journal.log); a URL with a password is best kept in OPTUNA_STORAGE, off "
                   "the command line (printed lines mask it)")
    p.add_argument("--penalty", type=float, default=0.0,
                   help="subtracted from the mean score per failed run (default 0)")
    p.add_argument("--multi-objective", action="store_true",
                   help="optimize (mean score, failure rate) jointly; disables pruning")
    p.add_argument("--failure", default="lee2020,majority",
                   help="failure definitions that count a run as failed (default lee2020,majority)")
    p.add_argument("--retry-failed", type=int, default=0, metavar="N",
                   help="re-enqueue each failed trial's parameters up to N times on relaunch")
    p.add_argument("--launcher", default="local", help="local | slurm | submitit_local (default local)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--prune-startup", type=int, default=3,
                   help="trials that finish before the median pruner acts (default 3)")
    p.add_argument("--no-prune", action="store_true", help="never prune")
    p.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                   help="fail RUNNING trials whose heartbeat is older than this at start-up (default 600)")
    p.add_argument("overrides", nargs="*", help="more run overrides, key=value (e.g. data.train_size=64); "
                   "hydra.launcher.KEY=VALUE sets a SLURM setting of conf/launcher/slurm.yaml for --launcher slurm")
    p.set_defaults(func=_hpo)


def _hpo(args: argparse.Namespace) -> int:
    from mixsweep.analysis.failures import parse_definitions
    from mixsweep.hpo.driver import run_study
    from mixsweep.hpo.request import HpoRequest, split_launcher_overrides
    from mixsweep.hpo.secrets import ENV

    overrides, launcher_overrides = split_launcher_overrides(list(args.overrides))
    req = HpoRequest(
        task=args.task, space=args.space, trials=args.trials, workers=args.workers, results=args.results,
        seeds=args.seeds, study=args.study, storage=args.storage or os.environ.get(ENV) or None, penalty=args.penalty,
        multi_objective=args.multi_objective, retry_failed=args.retry_failed, launcher=args.launcher,
        sampler_seed=args.seed, prune=not args.no_prune, prune_startup=args.prune_startup,
        stale_after_s=args.stale_after, failure=parse_definitions(args.failure), overrides=overrides,
        launcher_overrides=launcher_overrides,
    )
    run_study(req)
    return 0
