"""Content-addressed run ids: the same experiment always maps to the same directory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mixsweep.config import schema
from mixsweep.records import SCHEMA_VERSION

# How each key enters the hash is declared with the key (mixsweep.config.schema: in_run_id, null_hashed_as,
# omitted_when_off); Hydra's own block is never part of a run's config.
_EXCLUDED_TOP = ("hydra", *(k for k, key in schema.TOP.items() if not key.in_run_id))
_EXCLUDED_NESTED = tuple((block, k) for block, keys in schema.RUN_ID_BLOCKS.items() if block
                         for k, key in keys.items() if not key.in_run_id)
_HASHED_AS_BEFORE = {(block, k): key.null_hashed_as for block, keys in schema.RUN_ID_BLOCKS.items() if block
                     for k, key in keys.items() if key.null_hashed_as is not None}
_OMITTED_AT_DEFAULT = {(block, k): False for block, keys in schema.RUN_ID_BLOCKS.items() if block
                       for k, key in keys.items() if key.omitted_when_off}
# The restart seeds: the runs of one cell differ only in these (a cell's id leaves them out).
SEED_KEYS = ("seed", "init_seed", "data_seed", "noise_seed")
# The digits experiment reads only these blocks; other defaults must not perturb its ids.
_DIGITS_KEYS = ("experiment", "task", "regularizer", *SEED_KEYS, "deterministic", "fault")


def plain_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved run config as plain data, without Hydra's own block (which only resolves in a job)."""
    if not isinstance(cfg, DictConfig):
        return json.loads(json.dumps(cfg))
    if "hydra" in cfg:
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)


def semantic_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config minus every key that cannot change the run's numbers."""
    d = plain_config(cfg)
    for key in _EXCLUDED_TOP:
        d.pop(key, None)
    for outer, inner in _EXCLUDED_NESTED:
        if isinstance(d.get(outer), dict):
            d[outer].pop(inner, None)
    for (outer, inner), before in _HASHED_AS_BEFORE.items():
        block = d.get(outer)
        if isinstance(block, dict) and inner in block and block[inner] is None:
            block[inner] = before
    for (outer, inner), default in _OMITTED_AT_DEFAULT.items():
        block = d.get(outer)
        if isinstance(block, dict) and inner in block and block[inner] in (default, None):
            del block[inner]
    if isinstance(d.get("regularizer"), dict):
        d["regularizer"] = _active_methods_only(d["regularizer"])
    if d.get("experiment") == "digits":
        d = {k: d[k] for k in _DIGITS_KEYS if k in d}
    return d


def run_id(cfg: DictConfig | Mapping[str, Any]) -> str:
    """sha1 of the canonical JSON of :func:`semantic_config` (+ record schema), 12 hex chars.

    Hashing the *resolved* config (not the override delta) means a changed default changes the
    id, so stale results are never silently reused.
    """
    payload = json.dumps({"schema": SCHEMA_VERSION, "config": semantic_config(cfg)}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def _active_methods_only(reg: dict[str, Any]) -> dict[str, Any]:
    """The active methods with their resolved settings: methods whose settings make them no-ops are
    dropped (dropout(0) and mixout(w_pre, 0) are the same run), and a default left out equals the
    default written out. A block that does not validate is kept whole (planning reports it)."""
    from mixsweep.regularizers.base import RegularizerError, build_methods

    try:
        return {m.name: m.settings() for m in build_methods(reg)}
    except RegularizerError:
        return reg
