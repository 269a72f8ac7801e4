"""Study outputs: trials.csv, best.json, history/importance PNGs, and a confirming sweep file.

The winner is folded back into a study file ``<study dir>/sweeps/hpo_<study>.yaml`` with two
cells, ``tuned`` (the best trial's overrides) and ``untuned`` (the space's base alone), so that
``make sweep`` re-runs both with many restarts: an HPO winner is selected on few seeds and its
score is optimistically biased until confirmed on fresh ones.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixsweep.hpo.request import RESERVED, HpoRequest
from mixsweep.hpo.secrets import ENV, mask
from mixsweep.hpo.space import SearchSpace, to_overrides
from mixsweep.store.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

CONFIRM_SEEDS = 20


@dataclass
class Best:
    number: int
    values: list[float]
    params: dict[str, Any]
    overrides: list[str]
    mean_score: float | None
    failed_runs: int | None


def best_trial(study: optuna.Study, multi_objective: bool) -> FrozenTrial | None:
    """The best completed trial; for (score, failure rate), the Pareto trial with the best score."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    if multi_objective:
        return max(study.best_trials, key=lambda t: (t.values[0], -t.values[1]))
    return study.best_trial


def trial_line(t: FrozenTrial, req: HpoRequest) -> str:
    """``trial 3 COMPLETE: 71.25 (3 seeds, 0 failed) regularizer.mixout.p=0.83 ...``"""
    values = "" if t.values is None else " " + ", ".join(f"{v:.4g}" for v in t.values)
    runs = f" ({req.seeds} seed(s), {t.user_attrs['failed_runs']} failed)" if "failed_runs" in t.user_attrs else ""
    return f"trial {t.number} {t.state.name}:{values}{runs} {' '.join(to_overrides(t.params))}"


def write_report(study: optuna.Study, req: HpoRequest, space: SearchSpace) -> tuple[Best | None, list[str]]:
    """Write every output into the study dir; return the best trial and the lines to print."""
    out = req.study_dir
    out.mkdir(parents=True, exist_ok=True)
    lines = [_counts_line(study, req)]
    written = [_write_trials_csv(study, out / "trials.csv")]
    written += _write_plots(study, req, out, lines)
    best_t = best_trial(study, req.multi_objective)
    best = None if best_t is None else Best(
        number=best_t.number, values=list(best_t.values), params=dict(best_t.params),
        overrides=to_overrides(best_t.params), mean_score=best_t.user_attrs.get("mean_score"),
        failed_runs=best_t.user_attrs.get("failed_runs"))
    summary: dict[str, Any] = {
        "study": req.study_name, "task": req.task, "space": space.name, "sweep": req.sweep,
        "objective": _objective_text(req), "settings": req.settings(space),
        "trials": _state_counts(study), "best": None if best is None else vars(best),
    }
    if req.multi_objective:
        summary["pareto"] = [{"number": t.number, "values": t.values, "params": t.params}
                             for t in study.best_trials]
    if best is not None:
        sweep_file, command = write_confirm_sweep(req, space, best)
        summary["confirm"] = {"sweep_file": str(sweep_file), "command": command}
        score = (f"mean {best.mean_score:.2f} over {req.seeds} seed(s), {best.failed_runs} failed"
                 if best.mean_score is not None else "")
        lines += [f"best trial #{best.number}: {', '.join(f'{v:.4g}' for v in best.values)} ({score})",
                  "  " + " ".join([*space.base, *best.overrides]),
                  f"confirm it with {CONFIRM_SEEDS} seeds (tuned vs untuned; sweep file {sweep_file}):",
                  f"  {command}"]
    else:
        lines.append("no completed trial yet: relaunch the same command to continue the study")
    atomic_write_json(out / "best.json", summary)
    written.append(out / "best.json")
    lines.append(f"wrote {', '.join(str(p) for p in written)}")
    lines.append(f"live view: pip install optuna-dashboard && optuna-dashboard {_dashboard_target(req)}")
    return best, lines


def _dashboard_target(req: HpoRequest) -> str:
    """The storage to pass to optuna-dashboard, never with its password: the variable that holds it,
    or the URL masked (put the URL in OPTUNA_STORAGE to keep it off screens and command lines)."""
    if req.storage and os.environ.get(ENV) == req.storage:
        return f'"${ENV}"'
    return mask(req.storage_target)


def _objective_text(req: HpoRequest) -> str:
    metric = f"mean final dev headline score over {req.seeds} seed(s)"
    if req.multi_objective:
        return f"maximize {metric}; minimize failure rate ({'/'.join(req.failure)} or not ok)"
    return f"maximize {metric} - {req.penalty:g} x failed runs ({'/'.join(req.failure)} or not ok)"


def _state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _counts_line(study: optuna.Study, req: HpoRequest) -> str:
    counts = _state_counts(study)
    return (f"study {req.study_name}: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
            + f" (cap {req.trials} complete+pruned)")


def _write_trials_csv(study: optuna.Study, path: Path) -> Path:
    frame = study.trials_dataframe(attrs=("number", "state", "value", "values", "params", "user_attrs",
                                          "datetime_start", "duration"), multi_index=False)
    frame = frame.drop(columns=[c for c in frame.columns if c in ("user_attrs_heartbeat", "user_attrs_run_ids")])
    from mixsweep.analysis.tables import csv_text  # a user attribute or parameter may read as a formula

    atomic_write_text(path, csv_text(frame))
    return path


def _write_plots(study: optuna.Study, req: HpoRequest, out: Path, lines: list[str]) -> list[Path]:
    """History and parameter-importance PNGs; importance needs >= 2 completed trials with
    varying parameters, so it is skipped (with a note) when Optuna cannot compute it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    kw: dict[str, Any] = {"target_name": "mean score" if req.multi_objective else "objective"}
    if req.multi_objective:
        kw["target"] = lambda t: t.values[0]
    written = []
    for name, plot in (("history", ovm.plot_optimization_history), ("importance", ovm.plot_param_importances)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            try:
                ax = plot(study, **kw)
            except Exception as e:  # noqa: BLE001 - e.g. too few trials or a constant parameter
                lines.append(f"skipped the {name} plot: {' '.join(str(e).split())}")
                continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(out / f"{name}.png")
    return written


# ---------------------------------------------------------------- confirming sweep


def confirm_sweep_name(req: HpoRequest) -> str:
    return "hpo_" + re.sub(r"[^A-Za-z0-9_]", "_", req.study_name)


def confirm_sweep_yaml(req: HpoRequest, space: SearchSpace, best: Best) -> str:
    """A ``sweeps/``-style study file: cells tuned / untuned, ``seed: range(0, 20)``."""
    from mixsweep.sweeping.overrides import override_key

    keep = [o for o in req.base_overrides(space) if override_key(o) not in RESERVED]
    tuned = [*(o for o in keep if override_key(o) not in best.params), *best.overrides]
    return "\n".join([
        "# @package _global_",
        f"# Confirm HPO study {req.study_name} (best trial #{best.number}) with many restarts.",
        f"# Written by mixsweep hpo. Trials used seed=range(0,{req.seeds}): those restarts are not fresh.",
        "defaults:",
        "  - override /hydra/sweeper: cells",
        f"sweep: {confirm_sweep_name(req)}",
        "hydra:",
        "  sweeper:",
        "    params:",
        f"      seed: range(0,{CONFIRM_SEEDS})",
        f"      task: {req.task}",
        "    cells:",
        f"      tuned: {json.dumps(tuned)}",
        f"      untuned: {json.dumps(keep)}",
        "",
    ])


def write_confirm_sweep(req: HpoRequest, space: SearchSpace, best: Best) -> tuple[Path, str]:
    name = confirm_sweep_name(req)
    path = req.study_dir / "sweeps" / f"{name}.yaml"
    atomic_write_text(path, confirm_sweep_yaml(req, space, best))
    command = (f"MIXSWEEP_SEARCH_PATH={req.study_dir} make sweep SWEEP={name} TASK={req.task} "
               f"SEEDS={CONFIRM_SEEDS} RESULTS={req.results}")
    return path, command
