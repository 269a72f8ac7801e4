"""The declared defaults (:mod:`mixsweep.config.settings`) as a Hydra config node.

``conf/config.yaml`` lists :data:`NAME` first in its defaults, so every key of a run is in the composed
config with its declared default (and overridable without ``+``), the config groups and the sweep files
merging over it. Each Hydra start-up (:func:`mixsweep.sweeping.hydra_adapter.hydra_app`,
:func:`mixsweep.sweeping.compose.compose_run`, :func:`mixsweep.sweeping.preflight.study_cells`) calls
:func:`register` before it composes.
"""

from __future__ import annotations

from mixsweep.config import settings

NAME = "mixsweep_settings"


def register() -> None:
    """Store the node in Hydra's ConfigStore (again: the same node, so calling twice is harmless)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=NAME, node=settings.defaults_node(settings.Run), provider="mixsweep")
