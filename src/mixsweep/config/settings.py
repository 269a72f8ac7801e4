"""Every setting of a run, declared once: a frozen dataclass field per key, carrying its :class:`Key`
(kind, valid range, what ``null`` means, its role in the run id, its meaning) and its default.

From these declarations come the schema's block tables (:mod:`mixsweep.config.schema`), the run id's
exclusions (:mod:`mixsweep.store.runid`), the settings page (``scripts/settings_reference.py``) and
the defaults Hydra composes a run from (:func:`defaults_node`, registered by
:mod:`mixsweep.config.hydra_node`; ``conf/config.yaml`` names the config groups and no longer repeats a
default). :func:`parse_run` turns a resolved run config into a frozen :class:`Run` at the boundary (the job,
``rerun``, an HPO trial, ``gpu-check``); the code below reads attributes, never a string key.

Hydra's structured configs (dataclasses in the ConfigStore as the config's schema) were the ecosystem's
way; they are not used as the schema because OmegaConf's checks would run first, with a traceback and
without the ranges, ``null`` meanings, nearest-key hints and the legacy-``0`` reading that one-line
errors need. The declarations here are the schema, and Hydra gets their defaults as a plain node.

A new ``train.*`` knob is one field of :class:`Train` (and the code that reads it): its default reaches
Hydra's composed config, the schema, the settings page and, when ``omitted_when_off``, leaves existing
run ids as they were. Pure: no I/O, no torch, no Hydra (an OmegaConf node handed to :func:`as_settings`
is resolved with omegaconf, imported there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mixsweep.config.keys import SEED, ConfigError, Key, choice, integer, line, number, text

_KEY = "mixsweep.key"
_NODE = "mixsweep.node"
_BLOCK = "mixsweep.block"
# Hydra's node leaves these out: a config group supplies them (model=, optimizer=, task=, regularizer=,
# +tracking=), or they are an override's to add (+fault=...).
OMITTED = object()


def setting(key: Key, default: Any = dataclasses.MISSING, *, node: Any = dataclasses.MISSING,
            block: type | None = None) -> Any:
    """A field declared by ``key`` with ``default`` (none: the config must give it). ``node``: the value
    Hydra composes instead of ``default`` (an interpolation such as ``${seed}``, or :data:`OMITTED`);
    ``block``: the settings class a mapping value is parsed into."""
    metadata = {_KEY: key, _NODE: node, _BLOCK: block}
    if default is dataclasses.MISSING:
        return field(metadata=metadata)
    if dataclasses.is_dataclass(default) or isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(cls: type) -> dict[str, Key]:
    """``cls``'s keys in declaration order: the schema's table of its block."""
    return {f.name: f.metadata[_KEY] for f in dataclasses.fields(cls)}


def defaults_node(cls: type) -> dict[str, Any]:
    """The defaults Hydra composes for ``cls``'s block: plain data, nested blocks included."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        node = f.metadata[_NODE]
        if node is OMITTED:
            continue
        if node is dataclasses.MISSING:
            node = _default(f)
            if node is dataclasses.MISSING:
                continue
        out[f.name] = _plain(node)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):  # a block's default is its class's defaults (interpolations kept)
        return defaults_node(type(value))
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def as_settings(cls: type, value: Any, where: str) -> Any:
    """``value`` if it is already a ``cls``; else a mapping (a plain dict, or a Hydra node, resolved) parsed
    into one. The library's entry points (``load_splits``, ``build_optimizer``, ...) take either."""
    if isinstance(value, cls):
        return value
    if hasattr(value, "_get_node"):  # an OmegaConf node: resolved to plain data first
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    return parse(cls, value, where)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def parse(cls: type, values: Any, where: str = "") -> Any:
    """``values`` (a resolved mapping) as a frozen ``cls``: every key checked against its declaration,
    numbers as float, lists as tuples, a block parsed into its class; a key not given takes its default."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'the run config'}={values!r}: must be a mapping")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(f"{_dotted(where, str(unknown[0]))}: unknown setting: {where or 'the run config'} takes "
                          f"{', '.join(names)}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = _dotted(where, f.name)
        if f.name not in values:
            if _default(f) is dataclasses.MISSING:
                raise ConfigError(f"{name}: missing: the config must set it ({f.metadata[_KEY].rule()})")
            continue
        kwargs[f.name] = _typed(f, values[f.name], name)
    return cls(**kwargs)


def _typed(f: dataclasses.Field, value: Any, name: str) -> Any:
    key: Key = f.metadata[_KEY]
    if not key.accepts(value):
        raise ConfigError(line(name, value, key))
    if value is None:
        return None
    if f.metadata[_BLOCK] is not None:
        return parse(f.metadata[_BLOCK], value, name)
    kind = key.kind
    if kind == "number":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "str":
        return str(value)
    if kind == "numbers":
        return tuple(float(v) for v in value)
    if kind == "ints":
        return tuple(int(v) for v in value)
    if kind == "strs":
        return tuple(str(v) for v in value)
    if kind == "layers":
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if kind == "block":
        return _thawed(value)
    return value


def _thawed(value: Any) -> Any:
    """A block left to its own reader (the regularizer's methods, the task registry), as plain data."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thawed(v) for v in value]
    return value


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# --- the declarations ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Train:
    """``train``: the recipe's step arithmetic and evaluation cadence."""

    epochs: int = setting(integer(1, meaning="passes over the training set"), 3)
    batch_size: int = setting(integer(1, meaning="training examples per optimizer step"), 32)
    eval_batch_size: int = setting(integer(1, meaning="dev examples per forward pass", in_run_id=False), 64)
    warmup_ratio: float = setting(
        number(0, 1, meaning="fraction of the steps with linear warmup; then linear decay to 0"), 0.1)
    max_grad_norm: float | None = setting(
        number(0, open_lo=True, null="no clipping", meaning="clip the global gradient norm"), 1.0)
    max_steps: int | None = setting(integer(1, null="no cap (epochs decide)", meaning="cap on optimizer steps"),
                                    None)
    eval_every: int | None = setting(integer(1, null="the evals_per_epoch cadence",
                                             meaning="evaluate on dev every N steps", null_hashed_as=0), None)
    evals_per_epoch: int = setting(integer(1, meaning="dev evaluations per epoch when eval_every is null"), 1)
    evals_per_run: int | None = setting(
        integer(1, null="the evals_per_epoch cadence", omitted_when_off=True,
                meaning="dev evaluations per run (every total//N steps) when eval_every is null"), None)
    eval_at_start: bool = setting(
        Key("bool", meaning="also evaluate before the first step (step 0; Mosbach et al.'s code)",
            omitted_when_off=True), False)
    eval_at_epoch_end: bool = setting(
        Key("bool", meaning="also evaluate at each epoch's last step (Mosbach et al.'s code)",
            omitted_when_off=True), False)
    head_init_std: float = setting(number(0, meaning="the new head's weights ~ N(0, std^2); 0 = a zero head"),
                                   0.02)


@dataclass(frozen=True, kw_only=True)
class Optimizer:
    """``optimizer``: a config group (``conf/optimizer/*.yaml``) gives every key."""

    name: str = setting(choice("bertadam", "adamw", "adamw_hf",
                               meaning="bertadam = no bias correction; adamw = torch AdamW; "
                                       "adamw_hf = transformers AdamW"))
    lr: float = setting(number(0, open_lo=True, meaning="peak learning rate"))
    betas: tuple[float, float] = setting(Key("numbers", lo=0, hi=1, open_hi=True, size=2,
                                             meaning="Adam's (beta1, beta2)"))
    eps: float = setting(number(0, open_lo=True, meaning="Adam's epsilon"))


@dataclass(frozen=True, kw_only=True)
class DataFiles:
    """``data.files``: with ``data.source=files``, the split files and their columns."""

    train: str | None = setting(text(null="none"), None)
    dev: str | None = setting(text(null="none"), None)
    format: str | None = setting(choice("csv", "json", "jsonl", "parquet", null="the format from the file suffix"),
                                 None)
    text_a: str | None = setting(text(null="the task's first text column"), None)
    text_b: str | None = setting(text(null="the task's second text column"), None)
    label: str | None = setting(text(null="the column 'label'"), None)


@dataclass(frozen=True, kw_only=True)
class Data:
    """``data``: where a task's data comes from, how it is subsampled and tokenized."""

    source: str = setting(choice("auto", "hub", "glue_dir", "files", "bundled",
                                 meaning="where the task's data comes from"),
                          "auto")
    glue_dir: str | None = setting(Key("str", null="none", meaning="a local glue_data/ folder",
                                       in_run_id=False), None)  # where GLUE lives here is not what it holds
    hub_id: str = setting(text(meaning="the hub dataset id"), "nyu-mll/glue")  # the old "glue" id no longer resolves
    hub_cache_dir: str | None = setting(Key("str", null="datasets' default", meaning="hub cache folder",
                                            in_run_id=False), None)
    files: DataFiles = setting(Key("block", meaning="data.source=files: train/dev paths, format and columns"),
                               DataFiles(), block=DataFiles)
    train_size: int | None = setting(integer(1, null="the whole split", meaning="stratified subsample of train"),
                                     None)
    dev_size: int | None = setting(integer(1, null="the whole split", meaning="stratified subsample of dev"), None)
    # fixed across restarts on purpose: restarts differ in order and init, not in data
    sample_seed: int = setting(SEED, 0)
    max_length: int = setting(integer(1, meaning="tokens per example; longer inputs are truncated"), 128)
    cache_dir: str | None = setting(Key("str", null="no tokenization cache", meaning="tokenization cache folder",
                                        in_run_id=False), None, node="${paths.cache}/tokenized")


@dataclass(frozen=True, kw_only=True)
class TinyModel:
    """``model.tiny``: the random-init BERT's sizes and the seed its "pretrained" weights are drawn from."""

    hidden_size: int = setting(integer(1))
    num_hidden_layers: int = setting(integer(1))
    num_attention_heads: int = setting(integer(1))
    intermediate_size: int = setting(integer(1))
    seed: int = setting(SEED)


@dataclass(frozen=True, kw_only=True)
class Model:
    """``model``: a config group (``conf/model/*.yaml``) names it."""

    name_or_path: str = setting(text(meaning="a hub id, a local folder, or an offline preset (minilm_l6, tiny)"))
    revision: str | None = setting(text(null="the default branch", meaning="hub revision"), None)
    tiny: TinyModel | None = setting(Key("block", meaning="model=tiny: the random-init BERT's sizes and seed"),
                                     None, block=TinyModel)


@dataclass(frozen=True, kw_only=True)
class Regularizer:
    """``regularizer``'s one key of its own; the rest is checked by its methods (:mod:`mixsweep.regularizers`)."""

    name: str = setting(Key("str", in_run_id=False, meaning="the yaml's name; what runs is the methods it selects"))


@dataclass(frozen=True, kw_only=True)
class Fault:
    """``fault`` (tests only): a crash or a NaN loss injected at one step."""

    kind: str = setting(choice("raise", "nan_loss"))
    step: int = setting(integer(1))


@dataclass(frozen=True, kw_only=True)
class Paths:
    results: str = setting(text(), "results")
    cache: str = setting(text(), ".cache/mixsweep", node="${oc.env:MIXSWEEP_CACHE,.cache/mixsweep}")


@dataclass(frozen=True, kw_only=True)
class Record:
    """``record``: what a run keeps besides its scores, for the instability measures."""

    outputs: bool = setting(Key("bool", meaning="per-example dev outputs at the final / best / zhang2021 points"),
                            True)
    representations: tuple[str | int, ...] | None = setting(
        Key("layers", null="no representations",
            meaning="[CLS] states kept at the final checkpoint: head, quarters, all, last or layer numbers"),
        ("head", "quarters"))
    max_examples: int | None = setting(
        integer(2, null="every dev example", meaning="representations of at most this many dev examples"), 1000)


@dataclass(frozen=True, kw_only=True)
class Tracking:
    """``tracking`` (``+tracking=mlflow``): the experiment tracker a run is mirrored to while it trains."""

    backend: str = setting(choice("mlflow", meaning="the experiment tracker a run is mirrored to"))
    uri: str | None = setting(text(null="MLFLOW_TRACKING_URI, else sqlite:///<results>/mlflow.db",
                                   meaning="the tracking URI (a server's http://host:port, or a database URI)"),
                              None)


@dataclass(frozen=True, kw_only=True)
class Seeds:
    """The restart index and the three sources of randomness it defaults."""

    restart: int
    init: int
    data: int
    noise: int


@dataclass(frozen=True, kw_only=True)
class Run:
    """The top level of a run config. ``task`` and ``regularizer`` stay mappings: the task registry
    (:class:`mixsweep.data.tasks.TaskSpec`) and the methods (:func:`mixsweep.regularizers.build_methods`)
    parse them against their own declarations."""

    experiment: str = setting(choice("finetune", "digits", meaning="what one run is"), "finetune")
    sweep: str = setting(Key("str", meaning="study name", in_run_id=False), "adhoc")
    cell: str | None = setting(Key("str", null="no cell name", meaning="the sweep file's cell name (display only)",
                                   in_run_id=False), None)
    seed: int = setting(integer(0, meaning="restart index; the default of the three seeds below"), 0)
    # null is not a value a user gives: it stands for "the restart index" where a config omits the key
    init_seed: int | None = setting(integer(0, meaning="classification-head initialisation"), None, node="${seed}")
    data_seed: int | None = setting(integer(0, meaning="training-data order"), None, node="${seed}")
    noise_seed: int | None = setting(integer(0, meaning="dropout / mixout masks"), None, node="${seed}")
    device: str = setting(Key("device", meaning="auto = cuda when a GPU is visible, else cpu", in_run_id=False),
                          "auto")
    bf16: bool = setting(Key("bool", meaning="bf16 autocast on CUDA"), False)
    deterministic: bool = setting(Key("bool", meaning="deterministic torch algorithms, cudnn.benchmark off"), True)
    threads: int | None = setting(integer(1, null="torch's default", meaning="torch CPU threads", in_run_id=False),
                                  None)
    progress: bool = setting(Key("bool", meaning="per-run progress bar", in_run_id=False), False)
    fault: Fault | None = setting(Key("block", null="no fault", meaning="tests only: {kind: raise|nan_loss, step: N}"),
                                  None, block=Fault)
    paths: Paths = setting(Key("block", meaning="results and cache folders", in_run_id=False), Paths(), block=Paths)
    record: Record = setting(Key("block", meaning="what a run keeps for the instability measures "
                                                  "(mixsweep.store.outputs)", in_run_id=False), Record(), block=Record)
    # where a run is mirrored is not what it computes
    tracking: Tracking | None = setting(Key("block", null="no live logging", in_run_id=False,
                                            meaning="+tracking=mlflow: log each run to MLflow while it trains "
                                                    "(mixsweep.tracking.live)"), None, node=OMITTED, block=Tracking)
    regularizer: dict[str, Any] = setting(Key("block", meaning="checked by its methods (mixsweep.regularizers)"),
                                          node=OMITTED)
    task: dict[str, Any] = setting(Key("block"), node=OMITTED)
    # None only where a config leaves them out: a digits run reads neither (parse_run requires them otherwise)
    model: Model | None = setting(Key("block"), None, node=OMITTED, block=Model)
    optimizer: Optimizer | None = setting(Key("block"), None, node=OMITTED, block=Optimizer)
    data: Data = setting(Key("block"), Data(), block=Data)
    train: Train = setting(Key("block"), Train(), block=Train)

    @property
    def task_name(self) -> str:
        """The task's name (the task file's ``name``; the task registry parses the rest of the block)."""
        return str(self.task.get("name"))

    @property
    def regularizer_name(self) -> str | None:
        """The regularizer yaml's name (the block's one key of its own, :class:`Regularizer`)."""
        name = self.regularizer.get("name")
        return None if name is None else str(name)

    @property
    def seeds(self) -> Seeds:
        """``init_seed``, ``data_seed`` and ``noise_seed`` default to ``seed`` (``init_seed: ${seed}``, ...)."""
        r = self.seed
        return Seeds(restart=r, init=r if self.init_seed is None else self.init_seed,
                     data=r if self.data_seed is None else self.data_seed,
                     noise=r if self.noise_seed is None else self.noise_seed)


# Keys of the top level that are not settings of a run: Hydra's own block, and what planning attaches to a
# cell for display.
NOT_SETTINGS = ("hydra", "_sizes")


def parse_run(cfg: Mapping[str, Any]) -> Run:
    """A resolved run config (plain data) as a frozen :class:`Run`: the boundary's one parse. Raises a
    :class:`ConfigError` naming the first bad key; :func:`mixsweep.config.schema.validate` lists them all."""
    run = parse(Run, {k: v for k, v in cfg.items() if k not in NOT_SETTINGS})
    if run.experiment == "finetune" and run.task.get("kind") != "digits":
        for name in ("model", "optimizer"):
            if getattr(run, name) is None:
                raise ConfigError(f"{name}: missing: a finetuning run needs it (choose one: {name}=NAME)")
    return run
