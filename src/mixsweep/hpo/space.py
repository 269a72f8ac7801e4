"""Search spaces (``conf/hpo/*.yaml``): parse, check against the run config, suggest.

A space file names the overrides every trial starts from and one distribution per config key::

    base: [regularizer=mixout]
    params:
      regularizer.mixout.p: {type: float, low: 0.1, high: 0.95}
      optimizer.lr: {type: float, low: 1.0e-5, high: 5.0e-5, log: true}
      train.warmup_ratio: {type: float, low: 0.0, high: 0.2, step: 0.02}
      regularizer: {type: categorical, choices: [dropout, mixout]}        # a config group
      regularizer.wdecay.lam: {type: float, low: 1.0e-4, high: 0.1, log: true,
                               when: {regularizer: [wdecay]}}             # conditional

``when`` makes a parameter exist only while an *earlier* categorical parameter takes one of
the listed values, so TPE never tunes a knob the trial does not use.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsweep.config.paths import CONF_DIR
from mixsweep.errors import UserError

SPACE_DIR = CONF_DIR / "hpo"
KINDS = ("float", "int", "categorical")
_KEYS = {
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


@dataclass
class Param:
    key: str  # a config key (``optimizer.lr``) or a config group (``regularizer``)
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass
class SearchSpace:
    name: str
    base: list[str]
    params: list[Param]
    source: str = ""  # the file it came from, for messages

    def spec(self) -> dict[str, Any]:
        """Plain-data form, stored with the study so a relaunch can tell if the space changed."""
        return {"base": list(self.base),
                "params": {p.key: {k: v for k, v in vars(p).items() if k != "key"} for p in self.params}}


def space_names() -> list[str]:
    return sorted(p.stem for p in SPACE_DIR.glob("*.yaml"))


def load_space(name: str) -> SearchSpace:
    """A space by name (``conf/hpo/<name>.yaml``) or by path to a YAML file."""
    import yaml

    path = Path(name)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        path = SPACE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown search space '{name}': choose one of {', '.join(space_names())} "
                        f"(conf/hpo/*.yaml) or give a path to a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"search space {path} is not valid YAML ({_one_line(e)}): fix the file") from e
    return parse_space(path.stem, data, where=str(path))


def parse_space(name: str, data: Any, where: str | None = None) -> SearchSpace:
    """Validate the structure of a space file (everything that needs no run config)."""
    where = where or name
    if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping) or not data["params"]:
        raise UserError(f"search space {where} needs a non-empty 'params:' mapping of config key -> "
                        f"distribution, e.g. optimizer.lr: {{type: float, low: 1.0e-5, high: 5.0e-5, log: true}}")
    unknown = set(data) - {"base", "params", "description"}
    if unknown:
        raise UserError(f"search space {where} has unknown top-level key(s) {sorted(unknown)}: "
                        f"use base, params and description")
    base = data.get("base") or []
    if not isinstance(base, list) or not all(isinstance(o, str) and "=" in o for o in base):
        raise UserError(f"search space {where}: 'base' must be a list of key=value overrides, "
                        f"e.g. [regularizer=mixout]")
    params: list[Param] = []
    for key, spec in data["params"].items():
        params.append(_parse_param(where, str(key), spec, earlier={p.key: p for p in params}))
    return SearchSpace(name=name, base=list(base), params=params, source=where)


def _parse_param(where: str, key: str, spec: Any, earlier: Mapping[str, Param]) -> Param:
    at = f"search space {where}, parameter '{key}'"
    if not isinstance(spec, Mapping) or spec.get("type") not in KINDS:
        raise UserError(f"{at}: give a mapping with type: {' | '.join(KINDS)}, "
                        f"e.g. {{type: float, low: 0.1, high: 0.9}}")
    kind = spec["type"]
    extra = set(spec) - _KEYS[kind]
    if extra:
        raise UserError(f"{at}: unknown field(s) {sorted(extra)} for type {kind}: "
                        f"use {', '.join(sorted(_KEYS[kind] - {'type'}))}")
    when = _parse_when(at, spec.get("when"), earlier)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{at}: a categorical needs a non-empty list, e.g. choices: [paper, all_linear]")
        if len({repr(c) for c in choices}) != len(choices):
            raise UserError(f"{at}: choices {choices} repeat a value: list each choice once")
        return Param(key, kind, choices=tuple(choices), when=when)

    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UserError(f"{at}: low and high must both be numbers, got low={low!r} high={high!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UserError(f"{at}: low and high must be finite, got low={low} high={high}")
    if low > high:
        raise UserError(f"{at}: low {low} > high {high}: swap them")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise UserError(f"{at}: a log-uniform range needs low > 0, got {low}: raise low or drop log: true")
    if step is not None and (log or not isinstance(step, (int, float)) or step <= 0):
        raise UserError(f"{at}: step must be a positive number and cannot be combined with log: true")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise UserError(f"{at}: an int range needs whole-number low/high/step, got {low}, {high}, {step}: "
                        f"use type: float")
    if kind == "int":
        return Param(key, kind, low=int(low), high=int(high), log=log, step=int(step) if step else None, when=when)
    return Param(key, kind, low=float(low), high=float(high), log=log, step=float(step) if step else None,
                 when=when)


def _parse_when(at: str, when: Any, earlier: Mapping[str, Param]) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise UserError(f"{at}: 'when' must map an earlier categorical parameter to its values, "
                        f"e.g. when: {{regularizer: [mixout]}}")
    out = {}
    for parent, values in when.items():
        values = tuple(values) if isinstance(values, list) else (values,)
        p = earlier.get(parent)
        if p is None or p.kind != "categorical":
            raise UserError(f"{at}: 'when' names '{parent}', which is not a categorical parameter listed "
                            f"above it: move it up or fix the name")
        bad = [v for v in values if v not in p.choices]
        if bad:
            raise UserError(f"{at}: 'when' values {bad} are not choices of '{parent}' {list(p.choices)}")
        out[str(parent)] = values
    return out


def check_keys(space: SearchSpace, cfg: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> None:
    """Every key must exist in the composed run config ``cfg`` (plain data); a key naming a
    config group (``groups``: group -> its options) must be a categorical over its options."""
    leaves = sorted(_leaf_keys(cfg))
    for p in space.params:
        at = f"search space {space.source or space.name}, parameter '{p.key}'"
        if p.key in groups:
            bad = [c for c in p.choices if c not in groups[p.key]]
            if p.kind != "categorical" or bad:
                raise UserError(f"{at} is a config group: make it a categorical over its options "
                                f"({', '.join(groups[p.key])})" + (f"; unknown {bad}" if bad else ""))
            continue
        if p.key not in leaves:
            hint = difflib.get_close_matches(p.key, leaves, n=1)
            raise UserError(f"{at}: unknown parameter (not in the run config): "
                            + (f"did you mean '{hint[0]}'? " if hint else "")
                            + "see the keys with `mixsweep plan --show-config`")


def _leaf_keys(node: Any, prefix: str = "") -> set[str]:
    if not isinstance(node, Mapping):
        return {prefix} if prefix else set()
    keys = {prefix} if prefix else set()
    for k, v in node.items():
        keys |= _leaf_keys(v, f"{prefix}.{k}" if prefix else str(k))
    return keys


def active(param: Param, values: Mapping[str, Any]) -> bool:
    """Whether ``param`` exists given the values chosen so far (its ``when`` conditions hold)."""
    return all(parent in values and values[parent] in allowed for parent, allowed in param.when.items())


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Draw one point from an Optuna trial; inactive conditional parameters are left out."""
    values: dict[str, Any] = {}
    for p in space.params:
        if not active(p, values):
            continue
        if p.kind == "categorical":
            values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
        elif p.kind == "int":
            values[p.key] = trial.suggest_int(p.key, p.low, p.high, step=p.step or 1, log=p.log)
        else:
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
    return values


def to_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for a point: ``regularizer=mixout``, ``optimizer.lr=3.1e-05``.

    Config-group choices come first so the reader sees the regularizer before its knobs
    (Hydra applies group choices before values whatever the order).
    """
    ordered = sorted(values.items(), key=lambda kv: "." in kv[0])
    return [f"{k}={_format(v)}" for k, v in ordered]


def _format(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        # 6 significant digits keep overrides readable; the trial's runs use this exact value.
        # A float must stay a float ("1.0", not "1"), or its run id would change.
        text = f"{v:.6g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return str(v)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
