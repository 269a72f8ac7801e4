"""``mixsweep export mlflow``: a study of the store into MLflow (mlflow imported inside the command)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

# A server that is down is a one-line error within seconds: MLflow's default is 7 retries with a backoff
# factor of 2 (minutes). A user's own settings win.
EXPORT_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", help="send a study's runs to an experiment tracker (mlflow)",
        description="Send a study's runs from the results store to an experiment tracker.")
    targets = export.add_subparsers(dest="target", metavar="TRACKER", required=True)
    mlflow = targets.add_parser(
        "mlflow", help="one MLflow experiment per study: a parent run per cell, a child run per record",
        description="Export a study to MLflow: one experiment (the study), one parent run per cell with its "
                    "aggregates (n, mean, std, max, failed counts, instability measures) and config delta, one "
                    "child run per record with its config as params, its provenance as tags and its curves and "
                    "scores as metrics; the study's report as the experiment's artifact. Exporting again updates, "
                    "never duplicates. See docs/tracking.md.")
    mlflow.add_argument("--sweep", default="smoke", help="study name (folder under --results; default: smoke)")
    mlflow.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    mlflow.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="an MLflow server (http://host:5000) or database URI; default: $MLFLOW_TRACKING_URI, "
                             "else sqlite:///<results>/mlflow.db")
    mlflow.set_defaults(func=cmd_export_mlflow)


def cmd_export_mlflow(args: argparse.Namespace) -> int:
    from mixsweep.export.to_mlflow import export_study
    from mixsweep.secrets import mask
    from mixsweep.store import runs as store
    from mixsweep.tracking import require_mlflow
    from mixsweep.tracking.server import is_remote, tracking_uri

    require_mlflow()  # before any work: without mlflow the command is one line saying how to install it
    for key, value in EXPORT_HTTP.items():
        os.environ.setdefault(key, value)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines (creating the tables) are noise here
    logging.getLogger("alembic").setLevel(logging.WARNING)
    store.check_location(args.results)
    uri = tracking_uri(args.tracking_uri, args.results)
    done = export_study(args.results, args.sweep, uri)
    shown = mask(uri)
    print(f"exported study '{args.sweep}' to {shown}, experiment '{args.sweep}' (id {done.experiment_id})")
    print(f"  cells (parent runs): {done.cells}")
    print(f"  runs (child runs):   {done.runs}")
    if done.duplicates_removed:
        print(f"  duplicates removed:  {done.duplicates_removed}")
    print(f"  report: {done.report}" if done.report else
          f"  report: none yet (`mixsweep report --sweep {args.sweep}` writes it; export again to attach it)")
    if is_remote(uri):
        print(f"  open {shown.rstrip('/')}/#/experiments/{done.experiment_id}")
    else:
        print(f"  open the UI: mlflow ui --backend-store-uri {shown}  (then http://127.0.0.1:5000)")
    return 0
