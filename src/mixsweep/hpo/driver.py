"""Study creation and resume, stale-trial cleanup, and the worker loop (local or SLURM).

Storage: an Optuna journal file ``<results>/hpo/<study>/journal.log`` by default (safe for
several processes on one shared file system, unlike SQLite), or any RDB URL.

Trial cap: workers *claim* a trial under a file lock next to the journal: a new trial is asked
only while COMPLETE + PRUNED + RUNNING trials number fewer than ``--trials``. The cap is thus a
total across relaunches and workers, reached exactly (Optuna's ``MaxTrialsCallback`` stops a
worker only after its trial ends, so N parallel workers overshoot by up to N - 1).

Stale trials: the journal has no heartbeat of its own, so each running trial records
``worker = host:pid`` and refreshes a ``heartbeat`` time every 30 s. At start-up, a RUNNING
trial is failed when its worker ran on this host and that process is gone, or when its last
heartbeat is older than ``--stale-after`` seconds (workers on other hosts). ``--retry-failed K``
then re-enqueues the parameters of each failed trial, at most K times per trial.

Seeding: the TPE sampler is seeded from ``--seed``, the worker index and the number of trials
already in the study, so one uninterrupted worker is reproducible and a relaunch does not re-propose
the same start-up points (a seeded sampler re-proposes them on every invocation). Parallel workers are not order-deterministic.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixsweep.errors import UserError
from mixsweep.hpo.request import RESERVED, HpoRequest
from mixsweep.hpo.secrets import mask
from mixsweep.hpo.space import SearchSpace, check_keys, load_space
from mixsweep.sweeping.overrides import override_key

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

HEARTBEAT_S = 30.0
CLAIM_LOCK = ".claim.lock"
LAUNCHERS = ("local", "slurm", "submitit_local")


# ---------------------------------------------------------------- validation


def validate(req: HpoRequest) -> SearchSpace:
    """Check the request and the space against the composed run config; one-line errors."""
    from mixsweep.config.paths import CONF_DIR
    from mixsweep.sweeping.launch import options

    tasks = options(CONF_DIR / "task")
    if req.task not in tasks:
        raise UserError(f"unknown task '{req.task}': choose one of {', '.join(tasks)} (conf/task/*.yaml)")
    for name, value, least in (("--trials", req.trials, 0), ("--workers", req.workers, 1),
                               ("--seeds", req.seeds, 1), ("--retry-failed", req.retry_failed, 0)):
        if value < least:
            raise UserError(f"{name} must be >= {least}, got {value}")
    from mixsweep.store.runs import check_location

    check_location(req.results)
    if req.storage and "://" not in req.storage:  # a journal file of the user's choosing
        check_location(Path(req.storage).parent, what="journal folder",
                       writes="the study's journal file (--storage PATH) would be written there",
                       option="--storage PATH")
    if req.launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher '{req.launcher}': choose one of {', '.join(LAUNCHERS)}")
    if req.launcher_overrides:
        if req.launcher != "slurm":
            raise UserError(f"'{req.launcher_overrides[0]}' sets a SLURM setting: add --launcher slurm, or drop it")
        launcher_settings(req)
    if not req.valid_name():
        raise UserError(f"study name '{req.study_name}' may hold only letters, digits, '_', '.' and '-': "
                        f"choose another with --study")
    for ov in req.overrides:
        if "=" not in ov:
            raise UserError(f"override '{ov}' is not key=value: write ARGS=\"key=value other.key=value\"")
        if override_key(ov) in RESERVED:
            raise UserError(f"override '{ov}' is set by mixsweep hpo itself: use --task, --seeds, --study "
                            f"or --results instead")
    space = load_space(req.space)
    cfg = _compose_base(req, space)
    groups = {d.name: options(d) for d in CONF_DIR.iterdir() if d.is_dir() and d.name != "hpo"}
    # A key that exists only under one option of a tuned group (regularizer.mixout.p under
    # regularizer=mixout) is checked against the config that option composes.
    for p in space.params:
        if p.key in groups and p.kind == "categorical":
            for choice in (c for c in p.choices if c in groups[p.key]):
                cfg = _merged(cfg, _compose_base(req, space, [f"{p.key}={choice}"]))
    check_keys(space, cfg, groups)
    return space


def _merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.merge(a, b), resolve=False)


def _compose_base(req: HpoRequest, space: SearchSpace, extra: list[str] | None = None) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from mixsweep.sweeping.compose import compose_run

    try:
        cfg = compose_run([f"task={req.task}", *req.base_overrides(space), *(extra or []),
                           f"paths.results={req.results}"])
    except Exception as e:  # noqa: BLE001 - Hydra raises several types for a bad override
        msg = " ".join(str(e).split())
        raise UserError(f"cannot compose the run config from the space base and ARGS ({msg}): fix the "
                        f"override") from e
    return OmegaConf.to_container(cfg, resolve=False)


# ---------------------------------------------------------------- storage and study


def make_storage(req: HpoRequest) -> Any:
    """An RDB URL as given, or a journal file (``--storage PATH``, default in the study dir)."""
    if req.storage and "://" in req.storage:
        return req.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(req.storage_target)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(req: HpoRequest, space: SearchSpace, worker: int = 0,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create or load the study; refuse to resume one whose objective was defined differently."""
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if pruner is None:
        use = req.prune and not req.multi_objective
        pruner = optuna.pruners.MedianPruner(n_startup_trials=req.prune_startup) if use else optuna.pruners.NopPruner()
    directions = ["maximize", "minimize"] if req.multi_objective else ["maximize"]
    with storage_errors(req):
        study = optuna.create_study(study_name=req.study_name, storage=make_storage(req), pruner=pruner,
                                    directions=directions, load_if_exists=True)
    settings = json.loads(json.dumps(req.settings(space)))  # as the storage returns it: lists, not tuples
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
    elif stored != settings:
        changed = sorted(k for k in settings.keys() | stored.keys() if settings.get(k) != stored.get(k))
        raise UserError(f"study '{req.study_name}' was created with different {', '.join(changed)}: "
                        f"relaunch with the same arguments, or start a new study with --study NAME")
    n_trials = len(study.get_trials(deepcopy=False))
    seed = int(np.random.SeedSequence([req.sampler_seed, worker, n_trials]).generate_state(1)[0])
    # few random start-up trials for short studies; Optuna's default (10) for 30+ trials
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, req.trials // 3)))
    return study


@contextmanager
def storage_errors(req: HpoRequest) -> Iterator[None]:
    """A storage that cannot be opened (no driver, no server, a bad URL) as one line with the fix,
    its URL masked."""
    try:
        yield
    except ImportError as e:  # Optuna's message when SQLAlchemy finds no driver for the URL's scheme
        raise UserError(f"no database driver for the storage {mask(req.storage_target)} ({_first_line(e)}): "
                        "install it (pip install psycopg2-binary for postgresql://, PyMySQL for "
                        "mysql+pymysql://), or drop --storage to use a journal file") from e
    except Exception as e:
        import sqlalchemy.exc

        if not isinstance(e, sqlalchemy.exc.SQLAlchemyError):
            raise
        cause = getattr(e, "orig", None) or e
        raise UserError(f"cannot open the storage {mask(req.storage_target)} ({mask(_first_line(cause))}): check "
                        "that the server runs and the URL (host, port, database, user), or drop --storage "
                        "to use a journal file") from e


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


@contextmanager
def claim_lock(req: HpoRequest) -> Iterator[None]:
    """Serializes claiming trials and start-up cleanup across workers (an OS lock on the shared FS)."""
    from filelock import FileLock

    req.study_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(req.study_dir / CLAIM_LOCK)):
        yield


def counted(study: optuna.Study) -> int:
    """Trials that use up the cap: finished (COMPLETE, PRUNED) or in progress (RUNNING)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                         TrialState.RUNNING)))


# ---------------------------------------------------------------- stale trials and retries


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial: FrozenTrial, now: float, stale_after_s: float, host: str,
             alive: Callable[[int], bool] = pid_alive) -> bool:
    """A RUNNING trial whose worker is gone: same host and dead pid, or a heartbeat too old."""
    worker = str(trial.user_attrs.get("worker", ""))
    if ":" in worker:
        wh, pid = worker.rsplit(":", 1)
        if wh == host and pid.isdigit() and not alive(int(pid)):
            return True
    started = trial.datetime_start.timestamp() if trial.datetime_start else now
    last = float(trial.user_attrs.get("heartbeat", started))
    return now - last > stale_after_s


def fail_stale_trials(study: optuna.Study, stale_after_s: float) -> list[int]:
    from optuna.trial import TrialState

    host, now = socket.gethostname(), time.time()
    stale = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
             if is_stale(t, now, stale_after_s, host)]
    for number in stale:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    return stale


def enqueue_retries(study: optuna.Study, max_retries: int, room: int) -> list[int]:
    """Re-enqueue the params of FAIL trials not yet retried, each at most ``max_retries`` times
    (counted along its chain of retries), and no more than ``room`` trials in all."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = []
    for t in trials:
        if len(queued) >= room:
            break
        depth = int(t.user_attrs.get("retry", 0))
        if t.state == TrialState.FAIL and t.number not in retried and depth < max_retries:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "retry": depth + 1})
            queued.append(t.number)
    return queued


# ---------------------------------------------------------------- workers


class _Heartbeat:
    """Refreshes the trial's ``heartbeat`` attribute from a daemon thread while it runs."""

    def __init__(self, trial: optuna.Trial, interval_s: float = HEARTBEAT_S) -> None:
        self.trial, self.interval_s = trial, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # noqa: BLE001 - a lost beat only delays stale detection
                pass

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_worker(req: HpoRequest, index: int = 0, pruner: optuna.pruners.BasePruner | None = None) -> int:
    """Claim and run trials until the cap is reached; returns how many this worker ran."""
    import optuna
    from optuna.trial import TrialState

    from mixsweep.hpo.objective import Objective
    from mixsweep.hpo.report import trial_line

    space = load_space(req.space)
    study = open_study(req, space, worker=index, pruner=pruner)
    objective = Objective(req, space)
    ran = 0
    while True:
        with claim_lock(req):
            if counted(study) >= req.trials:
                return ran
            trial = study.ask()
            trial.set_user_attr("worker", worker_id())
            trial.set_user_attr("heartbeat", time.time())
        try:
            with _Heartbeat(trial):
                values, state = objective(trial), TrialState.COMPLETE
        except optuna.TrialPruned:
            values, state = None, TrialState.PRUNED
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)  # never leave it RUNNING
            raise
        frozen = study.tell(trial, values, state=state)
        ran += 1
        print(trial_line(frozen, req), flush=True)


def prepare(req: HpoRequest, space: SearchSpace, pruner: optuna.pruners.BasePruner | None = None) -> str:
    """Start-up under the claim lock: open the study, fail stale trials, enqueue retries."""
    study = open_study(req, space, pruner=pruner)
    with claim_lock(req):
        stale = fail_stale_trials(study, req.stale_after_s)
        queued = enqueue_retries(study, req.retry_failed, room=max(0, req.trials - counted(study)))
    done = counted(study)
    lines = [f"hpo study {req.study_name}: {done}/{req.trials} trials, {req.workers} worker(s), "
             f"{req.seeds} seed(s) per trial; storage {mask(req.storage_target)}"]
    if stale:
        lines.append(f"failed trial(s) {stale}: left RUNNING by a worker that is gone")
    if queued:
        lines.append(f"re-enqueued the parameters of failed trial(s) {queued} (--retry-failed)")
    return "\n".join(lines)


def launch(req: HpoRequest, pruner: optuna.pruners.BasePruner | None = None) -> None:
    """Run the workers: in this process, as local processes, or as a SLURM array via submitit."""
    if req.launcher == "local" and req.workers == 1:
        run_worker(req, 0, pruner)
        return
    if req.launcher == "local":
        _spawn_local(req, pruner)
        return
    _submit(req)


def _spawn_local(req: HpoRequest, pruner: optuna.pruners.BasePruner | None) -> None:
    import multiprocessing

    if req.threads is None:
        req = replace(req, threads=max(1, (os.cpu_count() or 1) // req.workers))
    ctx = multiprocessing.get_context("spawn")  # no forked torch / Hydra state
    procs = [ctx.Process(target=run_worker, args=(req, i, pruner), name=f"hpo-worker-{i}")
             for i in range(req.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        print(f"mixsweep: warning: worker(s) exited abnormally {bad}; relaunch to finish the study", flush=True)


def _submit(req: HpoRequest) -> None:
    """One SLURM array task per worker (``--launcher slurm``), configured like the sweeps'
    ``conf/launcher/slurm.yaml``; ``submitit_local`` runs the same path on this machine."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(req.study_dir / ".submitit" / "%j"),
                                     cluster="local" if req.launcher == "submitit_local" else None)
    executor.update_parameters(**submitit_parameters(req))
    try:
        jobs = executor.map_array(run_worker, [req] * req.workers, range(req.workers))
    except submitit.core.utils.FailedJobError as e:  # sbatch refused the array
        from mixsweep.sweeping.slurm import scheduler_error

        raise (scheduler_error(e) or e) from e
    print(f"submitted {len(jobs)} worker(s) as job array {jobs[0].job_id.split('_')[0]}; waiting "
          f"(logs in {req.study_dir / '.submitit'})", flush=True)
    unfinished = []
    for job in jobs:
        try:
            job.result()
        except submitit.core.utils.UncompletedJobError:  # cancelled, timed out, node lost
            unfinished.append(f"{job.job_id} ({job.state})")
    if unfinished:
        print(f"mixsweep: warning: worker(s) {', '.join(unfinished)} ended before the study did; relaunch the "
              f"same command to continue it (stale trials are failed on start-up)", flush=True)


def submitit_parameters(req: HpoRequest) -> dict[str, Any]:
    params: dict[str, Any] = {"name": f"hpo-{req.study_name}", "tasks_per_node": 1}
    if req.launcher == "submitit_local":
        return {**params, "timeout_min": 60}
    launcher = launcher_settings(req)
    generic = ("timeout_min", "mem_gb", "cpus_per_task", "gpus_per_node", "nodes")
    prefixed = {"partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos",
                "setup": "slurm_setup", "additional_parameters": "slurm_additional_parameters"}
    for key, value in launcher.items():
        if value is None or value == {}:
            continue
        if key in generic:
            params[key] = value
        elif key in prefixed:
            params[prefixed[key]] = value
    params["slurm_array_parallelism"] = req.workers
    return params


def launcher_settings(req: HpoRequest) -> dict[str, Any]:
    """``conf/launcher/slurm.yaml``'s ``hydra.launcher`` block with the ``hydra.launcher.KEY=VALUE``
    overrides from ARGS applied (values read as YAML: ``0``, ``null``, ``[a, b]``)."""
    import yaml

    from mixsweep.config.paths import CONF_DIR
    from mixsweep.hpo.request import LAUNCHER_PREFIX

    launcher = yaml.safe_load((CONF_DIR / "launcher" / "slurm.yaml").read_text())["hydra"]["launcher"]
    for ov in req.launcher_overrides:
        key, _, value = ov.removeprefix(LAUNCHER_PREFIX).partition("=")
        if key not in launcher:
            raise UserError(f"unknown SLURM setting '{key}' in '{ov}': choose one of {', '.join(sorted(launcher))} "
                            f"(conf/launcher/slurm.yaml)")
        try:
            launcher[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError as e:
            raise UserError(f"cannot read the value of '{ov}' ({' '.join(str(e).split())}): quote it") from e
    return launcher


def run_study(req: HpoRequest, pruner: optuna.pruners.BasePruner | None = None) -> Any:
    """The whole command: validate, clean up, run the workers, write and print the report.
    Returns the best trial (:class:`mixsweep.hpo.report.Best`) or None."""
    from mixsweep.hpo.report import write_report

    space = validate(req)
    with _full_disk_is_one_line(req):
        try:
            req.study_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise UserError(f"cannot create {req.study_dir} ({e.strerror}): choose another --results") from e
        print(prepare(req, space, pruner), flush=True)
        launch(req, pruner)
        best, lines = write_report(open_study(req, space, pruner=pruner), req, space)
    print("\n".join(lines), flush=True)
    return best


@contextmanager
def _full_disk_is_one_line(req: HpoRequest) -> Iterator[None]:
    """A full disk (or quota) as one line; a study it stopped before its first write leaves nothing:
    the empty journal Optuna created, the claim lock and the folders made for them are removed. A
    journal that holds trials is kept: it is the study, and a relaunch continues it."""
    from mixsweep.analysis.outdir import write_error

    journal = None if req.storage and "://" in req.storage else Path(req.storage_target)
    fresh = journal is not None and not journal.exists()
    missing = [p for p in (req.study_dir, *req.study_dir.parents) if not p.exists()]
    try:
        yield
    except BaseException as e:
        cause = write_error(e)
        if cause is None or cause.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if fresh and journal.is_file() and journal.stat().st_size == 0:
            journal.unlink()
            (req.study_dir / CLAIM_LOCK).unlink(missing_ok=True)
        for path in missing:  # deepest first; stops at the first that is not empty
            try:
                path.rmdir()
            except OSError:
                break
        raise UserError(f"the disk is full ({cause.strerror}: {cause.filename or journal or 'a study file'}): "
                        "free disk space or choose another results directory with --results DIR, then relaunch "
                        "the same command (finished trials are kept)") from e
