"""Pure expansion of a study's grid into per-run override lists."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mixsweep.errors import UserError
from mixsweep.sweeping.overrides import override_key

CROSS_SEP = "@"  # a crossed cell's name: <cell>@<value>[@<value>...]
# A cell name travels as a Hydra override (cell=NAME) and into tables, CSVs and file names: plain characters only.
CELL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
CELL_NAME_RULE = "letters, digits and _ . - @ (starting with a letter, digit or _)"


def check_cell_names(study: str, cells: Collection[str]) -> None:
    """Every cell name (a crossed one is ``<cell>@<value>``) is made of :data:`CELL_NAME_RULE`'s characters."""
    bad = [name for name in cells if not CELL_NAME.fullmatch(name)]
    if bad:
        raise UserError(f"cell name {', '.join(map(repr, bad))} of study '{study}' has other characters than "
                        f"{CELL_NAME_RULE}: rename it in sweeps/{study}.yaml (hydra.sweeper.cells, or the values "
                        "of hydra.sweeper.cross that name crossed cells), e.g. mixout_0.7")


def cross_cells(cells: Mapping[str, Sequence[str]],
                cross: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """Each cell once per value of each crossed key (``hydra.sweeper.cross``), named ``<cell>@<value>``.

    ``cross: {optimizer: [bertadam, adamw_hf]}`` turns ``devlin: [regularizer=devlin]`` into
    ``devlin@bertadam: [regularizer=devlin, optimizer=bertadam]`` and ``devlin@adamw_hf: [...]``, in
    the study's cell order, values in the order given. A cell that sets a crossed key itself keeps
    its own value and is not crossed on that key (its name is unchanged), e.g. a recipe that defines
    its optimizer.
    """
    out = {str(k): [str(o) for o in v] for k, v in cells.items()}
    for key, values in (cross or {}).items():
        values = [str(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
        if not values:
            raise UserError(f"hydra.sweeper.cross.{key} lists no values: give a list such as [bertadam, adamw_hf]")
        crossed: dict[str, list[str]] = {}
        for name, ovs in out.items():
            if any(override_key(o) == key for o in ovs):
                crossed[name] = ovs
                continue
            for v in values:
                crossed[f"{name}{CROSS_SEP}{v}"] = [*ovs, f"{key}={v}"]
        out = crossed
    return out


def select_cells(cells: Mapping[str, Sequence[str]], names: Sequence[str] | None) -> dict[str, list[str]]:
    """The study's cells named in ``names`` (``--cells``/``CELLS=``), in the study's order; all if None.

    A crossed cell is named ``<cell>@<value>``; its base name ``<cell>`` selects all of its values."""
    if names is None:
        return {k: list(v) for k, v in cells.items()}

    def chosen(cell: str) -> bool:
        return cell in names or cell.split(CROSS_SEP, 1)[0] in names

    known = set(cells) | {c.split(CROSS_SEP, 1)[0] for c in cells}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(f"unknown cell {', '.join(map(repr, unknown)) or '(none given)'}: choose from "
                        f"{', '.join(cells) or '(this study names no cells)'}")
    return {k: list(v) for k, v in cells.items() if chosen(k)}


def expand_jobs(
    grid: Sequence[Sequence[str]], cells: Mapping[str, Sequence[str]], keep_keys: Collection[str] = (),
    per_task: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> list[list[str]]:
    """Return ``grid × cells``: each grid point followed by each cell's overrides and ``cell=<name>``.

    ``grid`` is the cartesian product of the sweep params (already expanded by Hydra's parser),
    e.g. ``[["task=rte", "seed=0"], ["task=rte", "seed=1"], ...]``. With no cells the grid is
    returned as is. Seeds vary slowest if the sweep lists ``seed`` first, so a partial sweep
    already holds comparable cells. A cell override of a key in ``keep_keys`` (what the user set on
    the command line) is dropped, so the user's value holds in every cell. A cell's method setting
    is passed as add-or-override (:func:`method_settings_added`).

    ``per_task`` (``hydra.sweeper.per_task``: cell → task → overrides) gives a cell other settings on
    one task (:func:`with_task_settings`); without it, or on a task it does not name, the jobs are as before.
    """
    grid = [list(g) for g in grid] or [[]]
    if not cells:
        return grid
    keep = {override_key(k) for k in keep_keys}
    per_task = per_task or {}

    def job(point: list[str], name: str, ovs: Sequence[str]) -> list[str]:
        ovs = with_task_settings(ovs, per_task.get(name.split(CROSS_SEP, 1)[0], {}).get(_value_of(point, "task"), ()))
        return point + method_settings_added([o for o in ovs if override_key(o) not in keep]) + [f"cell={name}"]

    return [job(point, name, ovs) for point in grid for name, ovs in cells.items()]


def study_jobs(study: str, params: Sequence[Any], cells: Mapping[str, Sequence[str]], select: Sequence[str] | None,
               *, keep_keys: Collection[str] = (), per_task: Mapping[str, Any] | None = None,
               seeds_per_cell: Mapping[str, Any] | None = None) -> list[list[str]]:
    """A study's jobs, the one expansion the sweeper and ``compose`` share: the cells ``select`` keeps
    (:func:`select_cells`) × the grid of the parsed sweep ``params`` (Hydra's cartesian product), with each
    cell's ``per_task`` settings (:func:`expand_jobs`), and a cell named in ``seeds_per_cell`` cut to its first
    seeds (:func:`limit_seeds`). The maps and the study's size are checked before the grid is listed
    (:func:`check_per_task`, :func:`check_seeds_per_cell`, :func:`check_study_size`)."""
    from mixsweep.sweeping.hydra_adapter import grid as hydra_grid

    chosen = select_cells(cells, select)
    per_task = per_task or {}
    seeds_per_cell = seeds_per_cell or {}
    check_per_task(study, per_task, cells)
    check_seeds_per_cell(study, seeds_per_cell, cells)
    check_study_size(study, params, len(chosen))  # before the grid is listed: it may not fit in memory
    jobs = expand_jobs(hydra_grid(params), chosen, keep_keys=keep_keys, per_task=per_task)
    return limit_seeds(jobs, seeds_per_cell)


def limit_seeds(jobs: Sequence[Sequence[str]], seeds_per_cell: Mapping[str, int]) -> list[list[str]]:
    """The jobs, with each cell named in ``seeds_per_cell`` (``hydra.sweeper.seeds_per_cell``: base cell
    name → n) kept for the first n distinct seeds it meets in the grid's order, on each task; other cells whole.

    Seeds run slowest-first in a study's grid, so a cell limited to n runs seeds 0..n-1 of ``range(0,20)``,
    and a 5-seed launch of the same study holds the same runs: a relaunch with more seeds resumes it.
    ``{long: 2}`` on jobs for seeds 0, 1, 2 × cells {short, long} keeps short 0-2 and long 0-1.
    """
    if not seeds_per_cell:
        return [list(j) for j in jobs]
    seen: dict[tuple[str, str | None], set[str | None]] = {}
    out = []
    for job in jobs:
        cell = _value_of(job, "cell") or ""
        limit = seeds_per_cell.get(cell.split(CROSS_SEP, 1)[0])
        if limit is not None:
            seed, seeds = _value_of(job, "seed"), seen.setdefault((cell, _value_of(job, "task")), set())
            if seed not in seeds:
                if len(seeds) >= limit:
                    continue
                seeds.add(seed)
        out.append(list(job))
    return out


def with_task_settings(cell: Sequence[str], task_settings: Sequence[str]) -> list[str]:
    """A cell's overrides with its settings for one task: an override of a key the cell sets replaces
    the cell's in place (so a ``+key=`` the cell adds keeps its ``+``: Hydra adds a key once), the others follow.

    ``[regularizer=devlin, +regularizer.r3f.lam=1.0]`` with ``[regularizer.r3f.lam=0.7, train.batch_size=8]``
    → ``[regularizer=devlin, +regularizer.r3f.lam=0.7, train.batch_size=8]``."""
    given = {override_key(o): o for o in task_settings}
    out = []
    for o in cell:
        key = override_key(o)
        if key in given:
            setting = given.pop(key)
            adds = o[:len(o) - len(o.lstrip("+"))]  # the cell's + or ++, kept: the key is added once
            o = setting if setting.startswith("~") else adds + setting.lstrip("+")
        out.append(o)
    return out + list(given.values())


def _value_of(job: Sequence[str], key: str) -> str | None:
    """The value a job's (or grid point's) override of ``key`` sets, e.g. its task; None if it sets none."""
    return next((o.split("=", 1)[1] for o in job if override_key(o) == key), None)


def check_per_task(study: str, per_task: Mapping[str, Any], cells: Collection[str]) -> None:
    """``hydra.sweeper.per_task`` names cells of the study (base names, before ``@``) and maps each task to a
    list of overrides; a one-line UserError otherwise."""
    known = {c.split(CROSS_SEP, 1)[0] for c in cells}
    for cell, tasks in per_task.items():
        if cell not in known:
            raise UserError(f"hydra.sweeper.per_task names cell '{cell}', which sweeps/{study}.yaml does not define: "
                            f"choose from {', '.join(sorted(known)) or '(no cells)'}")
        if not isinstance(tasks, Mapping) or not all(
                isinstance(v, Sequence) and not isinstance(v, str) and all(isinstance(o, str) and o for o in v)
                for v in tasks.values()):
            raise UserError(f"hydra.sweeper.per_task.{cell} in sweeps/{study}.yaml must map each task to a list of "
                            "overrides, e.g. {rte: [regularizer.r3f.lam=0.7]}")


def check_seeds_per_cell(study: str, seeds_per_cell: Mapping[str, Any], cells: Collection[str]) -> None:
    """``hydra.sweeper.seeds_per_cell`` names cells of the study (base names) and gives each a whole number
    of seeds >= 1; a one-line UserError otherwise."""
    known = {c.split(CROSS_SEP, 1)[0] for c in cells}
    for cell, n in seeds_per_cell.items():
        if cell not in known:
            raise UserError(f"hydra.sweeper.seeds_per_cell names cell '{cell}', which sweeps/{study}.yaml does not "
                            f"define: choose from {', '.join(sorted(known)) or '(no cells)'}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"hydra.sweeper.seeds_per_cell.{cell} in sweeps/{study}.yaml is {n!r}: give a whole "
                            "number of seeds >= 1, e.g. 5")


def method_settings_added(overrides: Sequence[str]) -> list[str]:
    """``regularizer.<method>.<key>=v`` as Hydra's add-or-override ``++``: a method's keys exist only in
    the yamls that select it, and a setting given for a study (ARGS) or a cell holds also where another
    regularizer yaml was chosen (it adds that method there, e.g. ``regularizer.wdecay.lam=0.02`` gives
    every cell wdecay). Prefixed overrides (``+``, ``++``, ``~``) are left as written."""
    return [f"++{o}" if o.startswith("regularizer.") and o.count(".", 0, max(o.find("="), 0)) >= 2 else o
            for o in overrides]


# The most runs one launch plans: a planned run costs ~a millisecond and a few kB, a study this size is
# already weeks of GPU time, and a typo (SEEDS=100000000) must not exhaust the machine's memory.
MAX_RUNS = 10_000


def check_study_size(study: str, params: Sequence[Any], n_cells: int) -> int:
    """The number of runs of ``study`` (its sweep params × ``n_cells``), counted from each factor's
    size without expanding it; a one-line UserError for a factor with no value, or above :data:`MAX_RUNS`.

    ``params`` are Hydra's parsed overrides; a later one replaces an earlier one of the same key, as in
    Hydra's sweeper (the command line's ``seed=`` replaces the study file's). A range's size is
    ``len(range(start, stop, step))``, or ``ceil((stop - start) / step)`` for a float step.
    """
    sizes: dict[str, tuple[int, str]] = {}
    for override in params:
        if not override.is_sweep_override():
            sizes.pop(override.get_key_element(), None)
            continue
        key = override.get_key_element()
        text = override.input_line or key
        n = _values_in(override.value())
        if n == 0:
            raise UserError(f"sweep parameter {text} gives no values (a range(start, stop) needs start < stop): "
                            f"fix it in sweeps/{study}.yaml (hydra.sweeper.params) or on the command line, "
                            "e.g. seed=range(0,3) for seeds 0, 1, 2")
        sizes[key] = (n, text)
    total = max(1, n_cells)
    for n, _ in sizes.values():
        total *= n
    if total > MAX_RUNS:
        factors = " × ".join([f"{n:,} ({text})" for n, text in sizes.values()] + [f"{n_cells} cells"] * (n_cells > 1))
        raise UserError(f"study '{study}' has {total:,} runs ({factors}), over the limit of {MAX_RUNS:,} runs per "
                        f"launch: split it into launches of at most {MAX_RUNS:,} runs, each narrowed to some of its "
                        "cells or tasks (--cells/CELLS=, --task/TASK=), or give fewer seeds (--seeds/SEEDS=); the "
                        "launches add their runs to the same study")
    return total


def _values_in(sweep: Any) -> int:
    """How many values one Hydra sweep (choice, range, glob) gives, without listing a range."""
    if hasattr(sweep, "list"):  # ChoiceSweep
        return len(sweep.list)
    if hasattr(sweep, "step"):  # RangeSweep
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if all(isinstance(v, int) for v in (start, stop, step)):
            return len(range(start, stop, step))
        return max(0, math.ceil((stop - start) / step))
    return 1  # a glob over a config group's options: a handful, counted when Hydra lists them
