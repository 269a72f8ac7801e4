"""The task function every launcher calls: skip, lock, run, record — never raise.

One bad cell must not stop a sweep (Hydra's sweeper re-raises a job's exception once its batch
ends, and the multirun exits 1), so exceptions become ``failed`` records, which the next launch
retries. ``ok`` and ``diverged`` records are final. The one exception that leaves no record is
:class:`RunAbandoned` (an HPO trial pruned mid-run).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mixsweep.config import schema
from mixsweep.config.settings import Run
from mixsweep.errors import UserError
from mixsweep.records import RunRecord, cell_label
from mixsweep.secrets import mask
from mixsweep.store import runs as store
from mixsweep.store.runid import plain_config, run_id

log = logging.getLogger(__name__)

EvalCallback = Callable[[int, dict[str, float]], None]


class RunAbandoned(Exception):
    """Raised by an ``on_eval`` callback to stop a run that must leave no record (a pruned trial)."""


def execute(cfg: DictConfig, *, on_eval: EvalCallback | None = None) -> dict[str, Any]:
    """Run one configured job unless the store already holds its result; return a summary.

    ``on_eval(step, dev_metrics)`` is passed to the training loop (finetune runs only). The job's config is
    parsed here, once, into its frozen settings (:func:`mixsweep.config.schema.parsed`); below, nothing
    reads it by key.
    """
    plain = plain_config(cfg)
    rid = run_id(plain)
    run = schema.parsed(plain)
    results, sweep, task = Path(run.paths.results), run.sweep, run.task_name
    directory = store.run_dir(results, rid)
    existing = store.read_record(directory)
    if store.is_final(existing):
        _join_view(run, rid)
        return {"run_id": rid, "status": existing.status, "skipped": True}

    with store.run_lock(directory) as held:
        if not held:
            print(f"run {rid} is running in another process; skipped", flush=True)
            return {"run_id": rid, "status": "running-elsewhere", "skipped": True}
        existing = store.read_record(directory)  # another process may have finished it meanwhile
        if store.is_final(existing):
            _join_view(run, rid)
            return {"run_id": rid, "status": existing.status, "skipped": True}
        live = _live_run(run, plain, rid)  # None unless +tracking=...: the store stays the source of truth
        try:
            record = _run_and_record(run, plain, rid, on_eval, live)
            store.write_record(directory, record)
        except BaseException:
            store.discard_unfinished(directory)  # a run that ends without an outcome leaves nothing
            if live is not None:
                live.discard()
            raise
        if live is not None:
            live.finish(store.read_record(directory) or record)  # as stored: the export compares the same
    _join_view(run, rid)

    from mixsweep.sweeping.plan import progress_line

    line = progress_line(results, sweep)
    score = record.final.get(record.headline)
    print(f"[{task} {record.cell} seed {record.seed}] {record.status}"  # the cell name, as in the plan
          + (f" {record.headline}={score:.2f}" if score is not None else "")
          + (f" ({record.error.splitlines()[-1]})" if record.error else ""), flush=True)
    if line:
        print(line, flush=True)
    return {"run_id": rid, "status": record.status, "skipped": False}


def _join_view(run: Run, rid: str) -> None:
    """List the run in its study's view (a sweep did at planning time; HPO trials and single
    runs do it here), so that the study's report finds it."""
    store.add_to_view(run.paths.results, run.sweep,
                      [{"run_id": rid, "task": run.task_name, "cell": run.cell or cell_label(run.regularizer)}])


def _live_run(run: Run, plain: dict[str, Any], rid: str):
    """The run's live mirror in an experiment tracker (``+tracking=mlflow``), or None when off."""
    if run.tracking is None:
        return None
    from mixsweep.tracking import live

    label = cell_label(run.regularizer)
    return live.start(run, plain, rid, run.cell or label, label)


def _run_and_record(run: Run, plain: dict[str, Any], rid: str, on_eval: EvalCallback | None = None,
                    live=None) -> RunRecord:
    label = cell_label(run.regularizer)
    t0 = time.perf_counter()
    device, determinism = run.device, {}
    try:
        out = _dispatch(run, on_eval, live.on_eval if live is not None else None)
        store.write_outputs(store.run_dir(run.paths.results, rid), out.pop("outputs", None))
        device = out.pop("env_device", device)
        determinism = out.pop("env_determinism", {})
        error = None
    except (UserError, RunAbandoned):
        # bad input aborts the sweep with a one-line message, rather than 220 failed records;
        # an abandoned (pruned) run is no outcome of its config, so it must not be recorded
        raise
    except Exception as e:  # noqa: BLE001 - any crash of a run is recorded, never propagated
        out = {"status": "failed", "times": {"total_s": time.perf_counter() - t0}}
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=20)}"
        log.error("run %s failed: %s", rid, e)
    from mixsweep.run.environment import environment

    return RunRecord(
        run_id=rid,
        sweep=run.sweep,
        task=run.task_name,
        cell=run.cell or label,
        label=label,
        seed=run.seed,
        config=_masked(plain, run),
        overrides=[_masked_override(o) for o in _job_overrides()],
        env=environment(device, determinism),
        error=error,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **out,
    )


def _masked(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """The config to store: a tracking URI's password masked (MLFLOW_TRACKING_URI keeps it out altogether)."""
    if run.tracking is None or run.tracking.uri is None:
        return config
    return {**config, "tracking": {"backend": run.tracking.backend, "uri": mask(run.tracking.uri)}}


def _masked_override(override: str) -> str:
    """An override as stored, any URL password masked; Hydra escapes its colons (``http\\://u\\:pw@``)."""
    plain = override.replace("\\:", ":")
    masked = mask(plain)
    return override if masked == plain else masked


def _spread_over_gpus(run: Run) -> Run:
    """With several visible GPUs, job k of a sweep uses GPU k mod n.

    Parallel launchers run jobs in separate processes that all see every GPU; picking the device
    from the job number keeps one run per GPU without touching CUDA_VISIBLE_DEVICES, which loky's
    reused workers would ignore once CUDA is initialised.
    """
    import torch
    from hydra.core.hydra_config import HydraConfig

    if run.device not in ("auto", "cuda") or torch.cuda.device_count() < 2:
        return run
    try:
        num = HydraConfig.get().job.num
    except ValueError:
        return run
    return dataclasses.replace(run, device=f"cuda:{num % torch.cuda.device_count()}")


def _dispatch(run: Run, on_eval: EvalCallback | None = None, on_point=None) -> dict[str, Any]:
    run = _spread_over_gpus(run)
    if run.experiment == "digits":
        from mixsweep.digits import run_digits
        from mixsweep.run import prepare

        # the same runtime as a finetuning run: device, determinism and threads are part of the run's id
        device, determinism = prepare.runtime(run)
        out = run_digits(run, cache_dir=Path(run.paths.cache) / "digits", device=device)
        out["env_device"] = str(device)
        out["env_determinism"] = determinism
        return out
    from mixsweep.run.train import run as finetune  # experiment=finetune: the schema allows no third

    return finetune(run, progress=run.progress, on_eval=on_eval, on_point=on_point)


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # called outside a Hydra job (tests, rerun)
        return []
