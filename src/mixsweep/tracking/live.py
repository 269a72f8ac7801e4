"""A run logged to MLflow while it trains (opt-in: ``+tracking=mlflow`` on a sweep, ``conf/tracking/``).

The results store stays the source of truth: this only mirrors it. The run is created as a child of
its cell's parent run in the study's experiment (found by the ``mixsweep.cell_id`` tag, created under a
file lock beside the study's view so that parallel workers make one), then

- after every dev evaluation: that point's metrics and the training losses since the last one
  (:func:`mixsweep.tracking.mapping.curves`, the keys and steps the export writes);
- once the record is written: the rest of its curves, its params, tags and scores, and its status
  (FINISHED, or FAILED for a failed or diverged run), with the record's fingerprint when every request
  succeeded, so that a later ``mixsweep export mlflow`` keeps the run as it is.

A tracker that is down, refuses a request, or mlflow not installed: one warning line on stderr (URL
masked), logging stops for that run, and the run goes on. A run that leaves no record (a pruned HPO
trial, bad input) has its MLflow run deleted. Off (no ``tracking`` block): :func:`start` returns None
and the training loop pays one ``is None`` test per evaluation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixsweep.config.settings import Run
from mixsweep.records import RunRecord
from mixsweep.secrets import mask
from mixsweep.tracking import mapping

# A tracker that is down must not hold a run up: no retries (MLflow's default is 7, with backoff) and a
# short timeout per request. setdefault: a user's own settings win.
_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def start(run: Run, plain: Mapping[str, Any], rid: str, cell: str, label: str) -> LiveRun | None:
    """A live MLflow run for job ``rid`` when ``run`` has a ``tracking`` block, else None; ``plain`` is the
    run's resolved config (its cell id finds the cell's parent run)."""
    if run.tracking is None:
        return None
    live = LiveRun(run, plain, rid, cell, label)
    live._guarded(live._start)
    return live


class LiveRun:
    """One run's mirror in MLflow; every method is safe to call after a failure (it does nothing)."""

    def __init__(self, run: Run, plain: Mapping[str, Any], rid: str, cell: str, label: str):
        self.run, self.plain, self.rid, self.cell, self.label = run, plain, rid, cell, label
        from mixsweep.tracking.server import tracking_uri

        self.results = Path(run.paths.results)
        self.uri = tracking_uri(run.tracking.uri if run.tracking else None, run.paths.results)
        self.client = None
        self.run_id: str | None = None  # MLflow's id of the run
        self.failed = False
        self.points = self.losses = 0  # eval points and loss entries logged so far

    # -- the three moments of a run -------------------------------------------------------------------

    def on_eval(self, point: Mapping[str, Any], losses: list[Mapping[str, Any]]) -> None:
        """After a dev evaluation: the point and the training losses since the previous one."""
        def log() -> None:
            from mixsweep.tracking.server import log as log_batch

            log_batch(self.client, self.run_id, metrics=mapping.curves([point], losses))
            self.points += 1
            self.losses += len(losses)

        if self.run_id is not None:
            self._guarded(log)

    def finish(self, record: RunRecord) -> None:
        """Once the record is written: the rest of its curves, params, tags, scores and status."""
        def log() -> None:
            from mixsweep.tracking.server import log as log_batch

            rest = mapping.curves(record.eval_curve[self.points:], record.train_loss[self.losses:])
            log_batch(self.client, self.run_id, params=mapping.params(record.config),
                      tags=mapping.tags(record), metrics=rest + mapping.scores(record))
            self.client.set_terminated(self.run_id, mapping.status(record.status))
            self.client.set_tag(self.run_id, mapping.FINGERPRINT, mapping.fingerprint(record))

        if self.run_id is not None:
            self._guarded(log)

    def discard(self) -> None:
        """The run left no record (pruned, bad input, interrupted): its MLflow run goes too."""
        if self.run_id is not None:
            self._guarded(lambda: self.client.delete_run(self.run_id))

    # -- inside -----------------------------------------------------------------------------------------

    def _start(self) -> None:
        for k, v in _HTTP_ENV.items():
            os.environ.setdefault(k, v)
        from mixsweep.tracking import require_mlflow
        from mixsweep.tracking.server import client, experiment

        require_mlflow()
        self.client = client(self.uri)
        study = self.run.sweep
        exp = experiment(self.client, study, self.results, self.uri)
        parent = self._parent(exp, study)
        task = self.run.task_name
        run = self.client.create_run(exp, run_name=f"{self.cell} seed {self.run.seed}", tags={
            mapping.KIND: "run", mapping.RUN_ID: self.rid, mapping.LIVE: "true",
            "mlflow.parentRunId": parent, f"{mapping.PREFIX}study": study, f"{mapping.PREFIX}cell": self.cell,
            f"{mapping.PREFIX}task": task, f"{mapping.PREFIX}seed": str(self.run.seed),
            f"{mapping.PREFIX}status": "running"})
        self.run_id = run.info.run_id

    def _parent(self, exp: str, study: str) -> str:
        """The cell's parent run: found by its cell id, else created (one, under a file lock)."""
        from filelock import FileLock

        from mixsweep.store import runs as store
        from mixsweep.store.cell_id import cell_id
        from mixsweep.tracking.server import active_runs

        task = self.run.task_name
        cid = mapping.cell_key(task, cell_id(self.plain))
        lock_dir = store.study_dir(self.results, study)
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / ".mlflow.lock"), timeout=60):
            for run in active_runs(self.client, exp, "cell"):
                if run.data.tags.get(mapping.CELL_ID) == cid:
                    return run.info.run_id
            run = self.client.create_run(exp, run_name=f"{task} {self.cell}", tags=cell_tags(
                study, task, self.cell, self.label, cid))
            self.client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id

    def _guarded(self, action) -> None:
        """Run ``action`` unless an earlier one failed; a failure is one warning line, and the last."""
        if self.failed:
            return
        try:
            action()
        except Exception as e:  # noqa: BLE001 - the tracker must never cost the run
            self.failed = True
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"mixsweep: warning: MLflow at {mask(self.uri)} failed ({mask(why)[:200]}); run {self.rid} "
                  "goes on without live logging (`mixsweep export mlflow` sends it from the store later)",
                  file=sys.stderr, flush=True)


def cell_tags(study: str, task: str, cell: str, label: str, cid: str) -> dict[str, str]:
    """The tags that make a run the parent of one cell of a study."""
    return {mapping.KIND: "cell", mapping.CELL_ID: cid, f"{mapping.PREFIX}study": study,
            f"{mapping.PREFIX}task": task, f"{mapping.PREFIX}cell": cell, f"{mapping.PREFIX}label": label,
            "mlflow.note.content": f"{cell}: {label}"}
