"""The one place that touches Hydra's private API (``hydra._internal``; Hydra is pinned to 1.3.x).

Hydra 1.3 has no public API for three things mixsweep needs: the basic sweeper (the cell sweeper
subclasses it and reuses its grid expansion), and starting Hydra in-process with mixsweep's config
directory for a multirun or for ``--cfg``/``--info``. Everything else uses Hydra's public API. What
mixsweep relies on here is pinned by ``tests/test_hydra_adapter.py``, so an upgrade that changes it
fails there, not in a sweep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["basic_sweeper", "grid", "hydra_app"]


def basic_sweeper() -> type:
    """Hydra's ``BasicSweeper`` class as Hydra's module binds it *now*. Hydra's plugin scan re-executes
    its core plugin modules, and ``BasicSweeper.__init__`` calls ``super(BasicSweeper, self)`` through
    that module's global name: a subclass must derive from the class bound when it is defined (the cell
    sweeper calls this at its own import, during the scan), never from one cached earlier."""
    import importlib

    return importlib.import_module("hydra._internal.core_plugins.basic_sweeper").BasicSweeper


def grid(parsed_overrides: Sequence[Any]) -> list[list[str]]:
    """The cartesian product of parsed sweep overrides, one list of ``key=value`` per job, in Hydra's
    order (the last key varies fastest): ``seed=range(0,2) task=a,b`` → ``[seed=0 task=a], [seed=0
    task=b], [seed=1 task=a], [seed=1 task=b]``."""
    return [list(job) for job in basic_sweeper().split_arguments(list(parsed_overrides), None)[0]]


@contextlib.contextmanager
def hydra_app(config_dir: Path, task_name: str = "mixsweep") -> Iterator[Any]:
    """A fresh in-process Hydra app over ``config_dir`` (the global instance cleared before and after)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    from mixsweep.config import hydra_node

    hydra_node.register()
    GlobalHydra.instance().clear()
    try:
        yield Hydra.create_main_hydra2(task_name=task_name,
                                       config_search_path=create_config_search_path(str(config_dir)))
    finally:
        GlobalHydra.instance().clear()
