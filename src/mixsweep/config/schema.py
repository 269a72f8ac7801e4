"""The run config's schema: every key of the top level, ``train``, ``optimizer``, ``data``, ``model``
and ``task``, with its type, its valid range and its meaning, checked in one place.

Planning checks each cell of a study against it before any job starts
(:func:`mixsweep.sweeping.preflight.study_cells`), and the run setup checks again
(:mod:`mixsweep.run.prepare`), for runs that reach it another way (``rerun``, HPO trials). A bad value
is one line naming the key, the value and the valid range::

    train.max_grad_norm=-1: must be a number > 0, or null for no clipping

One meaning per value: ``null`` turns an optional setting off (no clipping, no step cap, the
per-epoch evaluation cadence, torch's thread count, the whole split); **0 is never "off"**: where
0 is not a meaningful value it is out of range, like any other. Keys a block does not know are
errors with the nearest known key suggested. The ``regularizer`` block is checked by its methods
(:func:`mixsweep.regularizers.build_methods`). Pure: no I/O, no torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from mixsweep.config import digits, settings
from mixsweep.config.keys import (
    BOOL,
    SEED,
    ConfigError,
    Key,
    choice,
    integer,
    is_number,
    line,
    shown,
    text,
)
from mixsweep.config.settings import NOT_SETTINGS, declared

__all__ = ["BOOL", "SEED", "ConfigError", "Key", "check", "line", "problems", "shown", "upgraded", "validate"]

# --- the schema: block -> key -> Key ------------------------------------------------------------------
# A block listed here is closed (unknown keys are errors); a Key of kind "block" is left to its reader.
# The run's own blocks are declared with their defaults in mixsweep.config.settings, the digits task's in
# mixsweep.config.digits; a text task's file here.

TOP = declared(settings.Run)
TRAIN = declared(settings.Train)
OPTIMIZER = declared(settings.Optimizer)
DATA = declared(settings.Data)
DATA_FILES = declared(settings.DataFiles)
MODEL = declared(settings.Model)
MODEL_TINY = declared(settings.TinyModel)
REGULARIZER = declared(settings.Regularizer)
FAULT = declared(settings.Fault)
PATHS = declared(settings.Paths)
RECORD = declared(settings.Record)
TRACKING = declared(settings.Tracking)


TASK: dict[str, Key] = {
    "name": text(),
    "kind": choice("text", "digits"),
    "text_keys": Key("strs"),
    "label_names": Key("strs", null="a regression task"),
    "num_labels": integer(1),
    "metrics": Key("strs"),
    "headline": text(),
    "glue_dir_name": text(null="none"),
    "hub_config": text(null="none"),
    "hub_splits": Key("block"),
    "glue_tsv": Key("block", null="none"),
    "default_source": choice("hub", "glue_dir", "files", "bundled"),
    "failure": Key("block"),
}

# task=digits: declared in mixsweep.config.digits (the digits run parses its task block into those classes)
DIGITS_TASK = declared(digits.DigitsTask)
DIGITS_DATA = declared(digits.DigitsData)
DIGITS_SET = declared(digits.DigitsSet)
DIGITS_MODEL = declared(digits.DigitsModel)
DIGITS_PRETRAIN = declared(digits.DigitsPretrain)
DIGITS_FINETUNE = declared(digits.DigitsFinetune)

# The blocks whose declarations the run id reads (mixsweep.store.runid): top level first.
RUN_ID_BLOCKS: dict[str, dict[str, Key]] = {"": TOP, "train": TRAIN, "optimizer": OPTIMIZER, "data": DATA,
                                            "model": MODEL, "regularizer": REGULARIZER}



def _blocks(cfg: Mapping[str, Any]) -> list[tuple[str, dict[str, Key], Mapping[str, Any]]]:
    """(prefix, schema, values) for every closed block present in ``cfg``."""
    out: list[tuple[str, dict[str, Key], Mapping[str, Any]]] = [
        ("", TOP, {k: v for k, v in cfg.items() if k not in NOT_SETTINGS})]

    def sub(prefix: str, schema: dict[str, Key], value: Any) -> None:
        if isinstance(value, Mapping):
            out.append((prefix, schema, value))

    for name, schema in (("train", TRAIN), ("optimizer", OPTIMIZER), ("data", DATA), ("model", MODEL),
                         ("paths", PATHS), ("fault", FAULT), ("record", RECORD), ("tracking", TRACKING)):
        sub(name, schema, cfg.get(name))
    sub("data.files", DATA_FILES, (cfg.get("data") or {}).get("files") if isinstance(cfg.get("data"), Mapping)
        else None)
    if isinstance(cfg.get("model"), Mapping):
        sub("model.tiny", MODEL_TINY, cfg["model"].get("tiny"))
    task = cfg.get("task")
    if isinstance(task, Mapping):
        if task.get("kind") == "digits" or cfg.get("experiment") == "digits":
            sub("task", DIGITS_TASK, task)
            data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
            sub("task.data", DIGITS_DATA, data)
            sub("task.data.source", DIGITS_SET, data.get("source"))
            sub("task.data.target", DIGITS_SET, data.get("target"))
            sub("task.model", DIGITS_MODEL, task.get("model"))
            sub("task.pretrain", DIGITS_PRETRAIN, task.get("pretrain"))
            sub("task.finetune", DIGITS_FINETUNE, task.get("finetune"))
        else:
            sub("task", TASK, task)
    return out


def problems(cfg: Mapping[str, Any]) -> list[str]:
    """Every problem of a resolved run config, one line each (empty: the config is valid)."""
    lines: list[str] = []
    for prefix, schema, values in _blocks(cfg):
        for key, value in values.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            spec = schema.get(key)
            if spec is None:
                lines.append(_unknown(name, key, schema))
            elif not spec.accepts(value):
                lines.append(line(name, value, spec))
    return lines


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise a :class:`ConfigError` with one line per problem of ``cfg`` (a resolved run config)."""
    found = problems(cfg)
    if found:
        raise ConfigError("\n".join(found))


# Records written before this schema used 0 for "off" in these keys; they meant what null means now.
_LEGACY_ZERO_IS_NULL = (("train", "eval_every"), ("train", "max_grad_norm"), ("train", "max_steps"), ("", "threads"))


def upgraded(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run config (``mixsweep rerun``) in today's terms: a legacy 0 that meant "off" becomes null."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in cfg.items()}
    for block, key in _LEGACY_ZERO_IS_NULL:
        node = out.get(block) if block else out
        if isinstance(node, dict) and is_number(node.get(key)) and node[key] == 0:
            node[key] = None
    return out


def check(name: str, value: Any) -> str | None:
    """The problem line of one top-level or dotted ``name=value`` (None: valid or not a schema key)."""
    prefix, _, key = name.rpartition(".")
    schema = {"": TOP, "train": TRAIN, "optimizer": OPTIMIZER, "data": DATA, "model": MODEL}.get(prefix)
    spec = schema.get(key) if schema is not None else None
    if spec is None or spec.accepts(value):
        return None
    return line(name, value, spec)


def _unknown(name: str, key: Any, schema: Mapping[str, Key]) -> str:
    near = difflib.get_close_matches(str(key), list(schema), n=1)
    where = name.rpartition(".")[0] or "the run config"
    hint = f"did you mean {name.rpartition('.')[0] + '.' if '.' in name else ''}{near[0]}? " if near else ""
    return f"{name}: unknown setting: {hint}{where} takes {', '.join(schema)}"


def parsed(cfg: Mapping[str, Any]) -> settings.Run:
    """A resolved run config as its frozen settings (:func:`mixsweep.config.settings.parse_run`), after
    :func:`validate` has named every problem at once."""
    validate(cfg)
    return settings.parse_run(cfg)
