"""The MLflow side, shared by the export and the live logger: which tracking URI, the study's
experiment, the runs already there (by their ``mixsweep.*`` tags), and writing one run in batches.

The tracking URI: the one given (``--tracking-uri``, ``tracking.uri``), else ``MLFLOW_TRACKING_URI``,
else a SQLite database in the results folder, ``sqlite:///<results>/mlflow.db``. With a database URI
(no server) the artifacts go to ``<results>/mlartifacts/``, not to the working directory's ``mlruns/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mixsweep.errors import UserError
from mixsweep.secrets import mask
from mixsweep.tracking.mapping import KIND, Metric

ENV = "MLFLOW_TRACKING_URI"
# The UI opens an experiment of this kind on its runs table (MLflow 3 guesses "GenAI" and opens traces).
EXPERIMENT_TAGS = {KIND: "study", "mlflow.experimentKind": "custom_model_development"}
# MLflow's limits per log_batch request (mlflow.utils.validation)
_METRICS_PER_BATCH, _PARAMS_TAGS_PER_BATCH = 1000, 100


def tracking_uri(given: str | None, results: str | os.PathLike) -> str:
    """``given``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<results>/mlflow.db`` (absolute)."""
    return given or os.environ.get(ENV) or f"sqlite:///{Path(results).expanduser().resolve() / 'mlflow.db'}"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def client(uri: str):
    """An ``MlflowClient`` on ``uri``; the process-wide URI too (the artifact repository of a
    server's ``mlflow-artifacts:`` location resolves through it)."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a "View run" line per run, else
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def experiment(c, name: str, results: str | os.PathLike, uri: str) -> str:
    """The id of the experiment called ``name`` (the study), created if absent, restored if deleted."""
    from mlflow.exceptions import MlflowException

    found = c.get_experiment_by_name(name)
    if found is None:
        location = None if is_remote(uri) else (Path(results).resolve() / "mlartifacts" / _safe(name)).as_uri()
        try:
            return c.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        except MlflowException:  # created meanwhile by another process (live runs of one sweep)
            found = c.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        c.restore_experiment(found.experiment_id)
    for key, value in EXPERIMENT_TAGS.items():
        if found.tags.get(key) != value:
            c.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def active_runs(c, experiment_id: str, kind: str | None = None) -> list[Any]:
    """Every active run of the experiment (optionally of one ``mixsweep.kind``), all pages."""
    from mlflow.entities import ViewType

    filter_string = f"tags.`{KIND}` = '{kind}'" if kind else ""
    runs, token = [], None
    while True:
        page = c.search_runs([experiment_id], filter_string=filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                             max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def log(c, run_id: str, *, params: Mapping[str, str] = {}, tags: Mapping[str, str] = {},
        metrics: Iterable[Metric] = (), timestamp_ms: int | None = None) -> None:
    """Params, tags and ``(key, value, step)`` metrics in as few ``log_batch`` requests as MLflow allows."""
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.entities import Param, RunTag

    ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    p = [Param(k, v) for k, v in params.items()]
    t = [RunTag(k, v) for k, v in tags.items()]
    m = [MlflowMetric(k, v, ts, s) for k, v, s in metrics]
    for i in range(0, max(len(p), len(t)), _PARAMS_TAGS_PER_BATCH):
        c.log_batch(run_id, params=p[i:i + _PARAMS_TAGS_PER_BATCH], tags=t[i:i + _PARAMS_TAGS_PER_BATCH])
    for i in range(0, len(m), _METRICS_PER_BATCH):
        c.log_batch(run_id, metrics=m[i:i + _METRICS_PER_BATCH])


def unreachable(uri: str, error: BaseException) -> UserError:
    """The one-line error of a tracker that cannot be reached or refuses a request (URI masked)."""
    why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UserError(f"MLflow at {mask(uri)} failed: {mask(why)[:300]}: check that the server runs and the URI "
                     f"(--tracking-uri or {ENV})")


def _safe(name: str) -> str:
    """A study name as one folder name (it may hold '/' or markup; see tests/test_report_browser.py)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "study"
