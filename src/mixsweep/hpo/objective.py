"""The trial objective: k restarts of one configuration through the ordinary runner and store.

Every run goes through :func:`mixsweep.sweeping.execute.execute` into the results store under
sweep ``hpo-<study>``, so a configuration + seed that was already run (by an earlier trial, a
relaunch or another worker) is read back, never recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixsweep.sweeping.execute import RunAbandoned

if TYPE_CHECKING:
    import optuna
    from omegaconf import DictConfig

    from mixsweep.hpo.request import HpoRequest
    from mixsweep.hpo.space import SearchSpace
    from mixsweep.records import RunRecord


@dataclass(frozen=True)
class TrialScore:
    mean: float
    failed: int
    runs: int

    @property
    def failure_rate(self) -> float:
        return self.failed / self.runs if self.runs else math.nan


def score_runs(records: Sequence[RunRecord], definitions: Sequence[str]) -> TrialScore:
    """``mean = (1/k) sum_i s_i`` with ``s_i`` the final headline dev score of restart i, or 0 when
    it has none (diverged, crashed, or an undefined correlation). Restart i *failed* when its
    status is not ok, or any of the named failure definitions (mixsweep.analysis.failures:
    lee2020 where the task declares a threshold, majority = final <= majority-class score) flags it.
    """
    from mixsweep.analysis.failures import failure_mask
    from mixsweep.analysis.load import records_frame

    if not records:
        return TrialScore(math.nan, 0, 0)
    scores = [_final_score(r) for r in records]
    frame = records_frame(list(records))
    flagged = [False] * len(records)
    for definition in definitions:
        mask = failure_mask(frame, definition).fillna(False).to_numpy(dtype=bool)
        flagged = [a or bool(b) for a, b in zip(flagged, mask, strict=True)]
    failed = sum(f or r.status != "ok" for f, r in zip(flagged, records, strict=True))
    return TrialScore(mean=sum(scores) / len(scores), failed=failed, runs=len(records))


def objective_values(score: TrialScore, penalty: float, multi_objective: bool) -> float | tuple[float, float]:
    """Single objective (maximized): ``mean - penalty * failed``. Multi-objective:
    ``(mean, failure_rate)``, maximized and minimized; the penalty is then not applied."""
    if multi_objective:
        return score.mean, score.failure_rate
    return score.mean - penalty * score.failed


def _final_score(record: RunRecord) -> float:
    value = record.final.get(record.headline) if record.status == "ok" else None
    return float(value) if value is not None and math.isfinite(float(value)) else 0.0


class _Pruned(RunAbandoned):
    pass


class EvalReporter:
    """Reports each dev evaluation to the trial and stops the run when the pruner says so.

    The step is the trial's cumulative training step (``offset`` = steps of its earlier
    restarts), so trials sharing a schedule are compared restart by restart, eval by eval.
    """

    def __init__(self, trial: optuna.Trial, headline: str, offset: int) -> None:
        self.trial, self.headline, self.offset = trial, headline, offset

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.headline)
        self.trial.report(math.nan if value is None else float(value), self.offset + step)
        if self.trial.should_prune():
            raise _Pruned(f"trial {self.trial.number} pruned at step {self.offset + step}")


class Objective:
    def __init__(self, req: HpoRequest, space: SearchSpace) -> None:
        self.req, self.space = req, space

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        import optuna

        from mixsweep.config import schema
        from mixsweep.data.tasks import TaskSpec
        from mixsweep.hpo.space import suggest
        from mixsweep.store.runid import plain_config
        from mixsweep.sweeping.compose import compose_run

        params = suggest(trial, self.space)
        report = self.req.prune and not self.req.multi_objective  # Optuna cannot prune multi-objective
        records, offset = [], 0
        for seed in range(self.req.seeds):
            cfg = compose_run(self.req.run_overrides(self.space, params, seed, cell=f"trial{trial.number}"))
            run = schema.parsed(plain_config(cfg))  # the trial's boundary: a bad suggestion is one line
            headline = TaskSpec.from_config(run.task).headline
            reporter = EvalReporter(trial, headline, offset) if report else None
            try:
                record = run_or_reuse(cfg, run.paths.results, reporter)
            except _Pruned as e:
                raise optuna.TrialPruned(str(e)) from None
            records.append(record)
            offset += _steps(record)
        score = score_runs(records, self.req.failure)
        trial.set_user_attr("mean_score", score.mean)
        trial.set_user_attr("failed_runs", score.failed)
        trial.set_user_attr("run_ids", [r.run_id for r in records])
        return objective_values(score, self.req.penalty, self.req.multi_objective)


def run_or_reuse(cfg: DictConfig, results: str, on_eval: EvalReporter | None) -> RunRecord:
    """The run's record (under ``results``, the run's ``paths.results``): executed now, or read from the
    store (its stored evals replayed to ``on_eval``), or awaited when another worker holds the run's lock."""
    from mixsweep.store import runs as store
    from mixsweep.store.runid import run_id
    from mixsweep.sweeping.execute import execute

    rid = run_id(cfg)
    while True:
        summary = execute(cfg, on_eval=on_eval)
        if summary["status"] == "running-elsewhere":
            store.wait_for_run(results, rid)  # wait for the other worker, then look again
            continue
        record = store.lookup(results, rid)
        if record is None:
            raise RuntimeError(f"run {summary['run_id']} finished without a record in {results}")
        if summary["skipped"] and on_eval is not None:
            for point in record.eval_curve:
                on_eval(int(point["step"]), point["metrics"])
        return record


def _steps(record: RunRecord) -> int:
    steps: Any = record.extra.get("steps")
    if steps is None and record.eval_curve:
        steps = record.eval_curve[-1]["step"]
    return int(steps or 0)
