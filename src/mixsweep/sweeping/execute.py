"""The task function every launcher calls: skip, lock, run, record — never raise.

One bad cell must not stop a sweep (Hydra's sweeper re-raises a job's exception once its batch
ends, and the multirun exits 1), so exceptions become ``failed`` records, which the next launch
retries. ``ok`` and ``diverged`` records are final. The one exception that leaves no record is
:class:`RunAbandoned` (an HPO trial pruned mid-run).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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

    ``on_eval(step, dev_metrics)`` is passed to the training loop (finetune runs only).
    """
    rid = run_id(cfg)
    results, sweep, task = Path(cfg.paths.results), str(cfg.sweep), str(cfg.task.name)
    directory = store.run_dir(results, rid)
    existing = store.read_record(directory)
    if store.is_final(existing):
        _join_view(cfg, rid)
        return {"run_id": rid, "status": existing.status, "skipped": True}

    with store.run_lock(directory) as held:
        if not held:
            print(f"run {rid} is running in another process; skipped", flush=True)
            return {"run_id": rid, "status": "running-elsewhere", "skipped": True}
        existing = store.read_record(directory)  # another process may have finished it meanwhile
        if store.is_final(existing):
            _join_view(cfg, rid)
            return {"run_id": rid, "status": existing.status, "skipped": True}
        live = _live_run(cfg, rid)  # None unless +tracking=...: the store stays the source of truth
        try:
            record = _run_and_record(cfg, rid, on_eval, live)
            store.write_record(directory, record)
        except BaseException:
            store.discard_unfinished(directory)  # a run that ends without an outcome leaves nothing
            if live is not None:
                live.discard()
            raise
        if live is not None:
            live.finish(store.read_record(directory) or record)  # as stored: the export compares the same
    _join_view(cfg, rid)

    from mixsweep.sweeping.plan import progress_line

    line = progress_line(results, sweep)
    score = record.final.get(record.headline)
    print(f"[{task} {record.cell} seed {record.seed}] {record.status}"  # the cell name, as in the plan
          + (f" {record.headline}={score:.2f}" if score is not None else "")
          + (f" ({record.error.splitlines()[-1]})" if record.error else ""), flush=True)
    if line:
        print(line, flush=True)
    return {"run_id": rid, "status": record.status, "skipped": False}


def _join_view(cfg: DictConfig, rid: str) -> None:
    """List the run in its study's view (a sweep did at planning time; HPO trials and single
    runs do it here), so that the study's report finds it."""
    store.add_to_view(cfg.paths.results, str(cfg.sweep),
                      [{"run_id": rid, "task": str(cfg.task.name), "cell": str(cfg.get("cell") or "")
                        or cell_label(OmegaConf.to_container(cfg.regularizer, resolve=True))}])


def _live_run(cfg: DictConfig, rid: str):
    """The run's live mirror in an experiment tracker (``+tracking=mlflow``), or None when off."""
    if not cfg.get("tracking"):
        return None
    from mixsweep.tracking import live

    reg = OmegaConf.to_container(cfg.regularizer, resolve=True)
    label = cell_label(reg)
    return live.start(plain_config(cfg), rid, str(cfg.cell) if cfg.get("cell") else label, label)


def _run_and_record(cfg: DictConfig, rid: str, on_eval: EvalCallback | None = None, live=None) -> RunRecord:
    reg = OmegaConf.to_container(cfg.regularizer, resolve=True)
    label = cell_label(reg)
    t0 = time.perf_counter()
    device, determinism = str(cfg.get("device", "auto")), {}
    try:
        out = _dispatch(cfg, on_eval, live.on_eval if live is not None else None)
        store.write_outputs(store.run_dir(cfg.paths.results, rid), out.pop("outputs", None))
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
        sweep=str(cfg.sweep),
        task=str(cfg.task.name),
        cell=str(cfg.cell) if cfg.get("cell") else label,
        label=label,
        seed=int(cfg.seed),
        config=_masked(plain_config(cfg)),
        overrides=[_masked_override(o) for o in _job_overrides()],
        env=environment(device, determinism),
        error=error,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **out,
    )


def _masked(config: dict[str, Any]) -> dict[str, Any]:
    """The config to store: a tracking URI's password masked (MLFLOW_TRACKING_URI keeps it out altogether)."""
    tracking = config.get("tracking")
    if isinstance(tracking, dict) and isinstance(tracking.get("uri"), str):
        config["tracking"] = {**tracking, "uri": mask(tracking["uri"])}
    return config


def _masked_override(override: str) -> str:
    """An override as stored, any URL password masked; Hydra escapes its colons (``http\\://u\\:pw@``)."""
    plain = override.replace("\\:", ":")
    masked = mask(plain)
    return override if masked == plain else masked


def _spread_over_gpus(cfg: DictConfig) -> DictConfig:
    """With several visible GPUs, job k of a sweep uses GPU k mod n.

    Parallel launchers run jobs in separate processes that all see every GPU; picking the device
    from the job number keeps one run per GPU without touching CUDA_VISIBLE_DEVICES, which loky's
    reused workers would ignore once CUDA is initialised.
    """
    import torch
    from hydra.core.hydra_config import HydraConfig

    if str(cfg.get("device", "auto")) not in ("auto", "cuda") or torch.cuda.device_count() < 2:
        return cfg
    try:
        num = HydraConfig.get().job.num
    except ValueError:
        return cfg
    cfg = cfg.copy()
    cfg.device = f"cuda:{num % torch.cuda.device_count()}"
    return cfg


def _dispatch(cfg: DictConfig, on_eval: EvalCallback | None = None, on_point=None) -> dict[str, Any]:
    cfg = _spread_over_gpus(cfg)
    if cfg.experiment == "digits":
        from mixsweep.digits import run_digits
        from mixsweep.run import prepare

        container = OmegaConf.to_container(cfg, resolve=True)
        # the same runtime as a finetuning run: device, determinism and threads are part of the run's id
        device, determinism = prepare.runtime(container)
        out = run_digits(container, cache_dir=Path(cfg.paths.cache) / "digits", device=device)
        out["env_device"] = str(device)
        out["env_determinism"] = determinism
        return out
    if cfg.experiment != "finetune":
        raise UserError(f"unknown experiment '{cfg.experiment}': use experiment=finetune or experiment=digits")
    from mixsweep.run.train import run

    return run(cfg, progress=bool(cfg.get("progress", False)), on_eval=on_eval, on_point=on_point)


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # called outside a Hydra job (tests, rerun)
        return []
