"""The resolved configs of a cell's restarts, with one OmegaConf resolution per cell.

The restarts of a cell differ only in their seeds (:data:`mixsweep.store.runid.SEED_KEYS`). Resolving a
composed config costs ~10 ms (OmegaConf parses every interpolation), 30 s for 3,000 runs, so a cell
is resolved once with a mark in place of each seed key's value, and each restart fills its seeds into
that template, plain data. Seeds reach other keys by node interpolation (``init_seed: ${seed}``,
``name: run_${seed}``), which copies a value or joins it into a string: the mark is then the value,
or stands in the string for ``str(value)``, so filling it in is what OmegaConf would have computed.

Where that may not hold, each restart is resolved in full: a cell whose config hands another node's
value to a resolver (``${oc.decode:${seed}}``), whose seed keys a mark cannot stand in for (a typed
node, a seed from an environment variable), or whose template differs from the full resolution of
its first restart (checked once per cell).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from mixsweep.store.runid import SEED_KEYS

_PREFIX = "\x00mixsweep-seed:"


def _mark(key: str) -> str:
    return f"{_PREFIX}{key}\x00"


class CellRestarts:
    """Resolve the restarts of one cell: ``resolved({"seed": 3})`` is the plain config of seed 3.

    ``cfg`` is the cell's composed config without Hydra's block; it is modified (its seed keys are set).
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        raw = OmegaConf.to_container(cfg, resolve=False)
        self.own = {k: raw[k] for k in SEED_KEYS if k in raw}  # each seed key as the config writes it
        self.marks = {_mark(k): k for k in self.own}
        self.template: dict[str, Any] | None = None
        self.links: dict[str, Any] = {}
        self.checked = False
        if not _hands_a_node_to_a_resolver(raw):
            try:
                self.template, self.links = self._templates()
            except Exception:  # noqa: BLE001 - a mark the config refuses: resolve each restart in full
                self.template = None

    def resolved(self, seeds: dict[str, int]) -> dict[str, Any]:
        values = self._values(seeds) if self.template is not None else None
        if values is None:
            return self._full(seeds)
        out = _filled(self.template, {m: values[k] for m, k in self.marks.items()})
        if not self.checked:
            self.checked = True
            if out != self._full(seeds):
                self.template = None  # not exact for this cell
                return self._full(seeds)
        return out

    def _full(self, seeds: dict[str, int]) -> dict[str, Any]:
        for key, value in self.own.items():  # every key each time: no restart inherits another's seeds
            self.cfg[key] = seeds[key] if key in seeds else value
        return OmegaConf.to_container(self.cfg, resolve=True)

    def _templates(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The config resolved with every seed key a mark, and each seed key's own value resolved with
        the other seed keys as marks (``init_seed: ${seed}`` -> seed's mark; ``seed: 0`` -> 0)."""
        for mark, key in self.marks.items():
            self.cfg[key] = mark
        template = OmegaConf.to_container(self.cfg, resolve=True)
        links = {}
        for mark, key in self.marks.items():
            self.cfg[key] = self.own[key]
            links[key] = OmegaConf.select(self.cfg, key)
            self.cfg[key] = mark
        return template, links

    def _values(self, seeds: dict[str, int]) -> dict[str, int] | None:
        """Every seed key's value for a restart given ``seeds`` (its overrides); None if one follows
        from the others in a way a mark cannot stand for."""
        values = dict(seeds)
        for _ in self.own:  # a chain (init_seed: ${data_seed}, data_seed: ${seed}) settles in len(own) rounds
            for key, link in self.links.items():
                if key in values:
                    continue
                if isinstance(link, int) and not isinstance(link, bool):
                    values[key] = link
                elif isinstance(link, str) and link in self.marks and self.marks[link] in values:
                    values[key] = values[self.marks[link]]
        return values if all(k in values for k in self.own) else None


def _hands_a_node_to_a_resolver(node: Any) -> bool:
    """True if a string of the raw config calls a resolver on an interpolation (``${oc.decode:${seed}}``)."""
    if isinstance(node, dict):
        return any(_hands_a_node_to_a_resolver(v) for v in node.values())
    if isinstance(node, list):
        return any(_hands_a_node_to_a_resolver(v) for v in node)
    return isinstance(node, str) and node.count("${") >= 2 and ":" in node


def _filled(node: Any, values: dict[str, int]) -> Any:
    """``node`` with each mark replaced by its value: a string that is a mark becomes the value, a
    mark inside a longer string its ``str()``."""
    if isinstance(node, dict):
        return {k: _filled(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_filled(v, values) for v in node]
    if isinstance(node, str) and _PREFIX in node:
        if node in values:
            return values[node]
        for mark, value in values.items():
            node = node.replace(mark, str(value))
    return node
