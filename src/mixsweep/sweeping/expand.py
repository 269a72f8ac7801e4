"""Pure expansion of a study's grid into per-run override lists."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence


def expand_jobs(
    grid: Sequence[Sequence[str]], cells: Mapping[str, Sequence[str]], keep_keys: Collection[str] = ()
) -> list[list[str]]:
    """Return ``grid × cells``: each grid point followed by each cell's overrides and ``cell=<name>``.

    ``grid`` is the cartesian product of the sweep params (already expanded by Hydra's parser),
    e.g. ``[["task=rte", "seed=0"], ["task=rte", "seed=1"], ...]``. With no cells the grid is
    returned as is. Seeds vary slowest if the sweep lists ``seed`` first, so a partial sweep
    already holds comparable cells. A cell override of a key in ``keep_keys`` (what the user set on
    the command line) is dropped, so the user's value holds in every cell. A cell's method setting
    is passed as add-or-override (:func:`method_settings_added`).
    """
    grid = [list(g) for g in grid] or [[]]
    if not cells:
        return grid
    keep = {_key(k) for k in keep_keys}
    cells = {name: method_settings_added([o for o in ovs if _key(o) not in keep]) for name, ovs in cells.items()}
    return [point + ovs + [f"cell={name}"] for point in grid for name, ovs in cells.items()]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def method_settings_added(overrides: Sequence[str]) -> list[str]:
    """``regularizer.<method>.<key>=v`` as Hydra's add-or-override ``++``: a method's keys exist only in
    the yamls that select it, and a setting given for a study (ARGS) or a cell holds also where another
    regularizer yaml was chosen (it adds that method there, e.g. ``regularizer.wdecay.lam=0.02`` gives
    every cell wdecay). Prefixed overrides (``+``, ``++``, ``~``) are left as written."""
    return [f"++{o}" if o.startswith("regularizer.") and o.count(".", 0, max(o.find("="), 0)) >= 2 else o
            for o in overrides]
