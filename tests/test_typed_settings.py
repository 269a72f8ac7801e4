"""A run's settings are declared once (mixsweep.config.settings), composed by Hydra from those declarations,
parsed once at the boundary into frozen typed objects, and read as attributes everywhere below it.

Expected values are typed from the files the declarations replaced (conf/config.yaml and
conf/data/default.yaml as they were at a0cafad), from conf/optimizer/bertadam.yaml, and from the rule texts
the schema's docstring shows."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from conftest import tiny_overrides
from mixsweep.config import schema
from mixsweep.config.keys import ConfigError
from mixsweep.config.settings import Data, Record, Run, Train, parse, parse_run
from mixsweep.config.stored import stored
from mixsweep.store.runid import plain_config
from mixsweep.sweeping.compose import compose_run

SRC = Path(__file__).resolve().parent.parent / "src"


def composed(*overrides: str) -> dict:
    return plain_config(compose_run(list(overrides)))


# --- the defaults Hydra composes are the declared ones ------------------------------------------------------


def test_the_composed_defaults_are_those_conf_config_yaml_wrote():
    cfg = composed()
    assert cfg["train"] == {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "warmup_ratio": 0.1,
                            "max_grad_norm": 1.0, "max_steps": None, "eval_every": None, "evals_per_epoch": 1,
                            # declared since, off by default (left out of the run id while off)
                            "evals_per_run": None, "eval_at_start": False, "eval_at_epoch_end": False,
                            "head_init_std": 0.02}
    assert cfg["record"] == {"outputs": True, "representations": ["head", "quarters"], "max_examples": 1000}
    assert {k: cfg[k] for k in ("experiment", "sweep", "cell", "seed", "init_seed", "data_seed", "noise_seed",
                                "device", "bf16", "deterministic", "threads", "progress", "fault")} == {
        "experiment": "finetune", "sweep": "adhoc", "cell": None, "seed": 0, "init_seed": 0, "data_seed": 0,
        "noise_seed": 0, "device": "auto", "bf16": False, "deterministic": True, "threads": None,
        "progress": False, "fault": None}
    data = dict(cfg["data"])
    assert data.pop("cache_dir").endswith("/tokenized")  # ${paths.cache}/tokenized
    assert data == {"source": "auto", "glue_dir": None, "hub_id": "nyu-mll/glue", "hub_cache_dir": None,
                    "files": {"train": None, "dev": None, "format": None, "text_a": None, "text_b": None,
                              "label": None},
                    "train_size": None, "dev_size": None, "sample_seed": 0, "max_length": 128}
    assert cfg["paths"]["results"] == "results"


def test_the_seeds_follow_seed_unless_set():
    cfg = composed("seed=7", "data_seed=2")
    assert (cfg["init_seed"], cfg["data_seed"], cfg["noise_seed"]) == (7, 2, 7)
    run = parse_run(cfg)
    assert (run.seeds.restart, run.seeds.init, run.seeds.data, run.seeds.noise) == (7, 7, 2, 7)
    # a plain config that leaves them out means the same
    bare = {k: v for k, v in cfg.items() if k not in ("init_seed", "data_seed", "noise_seed")}
    assert dataclasses.astuple(parse_run(bare).seeds) == (7, 7, 7, 7)


def test_a_declared_key_is_overridden_without_a_plus():
    cfg = composed("train.evals_per_run=5", "train.eval_at_start=true")
    assert cfg["train"]["evals_per_run"] == 5 and cfg["train"]["eval_at_start"] is True


# --- one parse at the boundary -----------------------------------------------------------------------------


def test_parse_run_gives_frozen_typed_settings(tmp_path):
    run = schema.parsed(composed(*tiny_overrides(tmp_path), "optimizer.lr=1", "train.max_grad_norm=null"))
    assert isinstance(run, Run)
    assert run.optimizer.name == "bertadam" and run.optimizer.betas == (0.9, 0.999)  # bertadam.yaml, as a tuple
    assert run.optimizer.lr == 1.0 and isinstance(run.optimizer.lr, float)  # an integer lr reads as a number
    assert run.optimizer.eps == 1.0e-6
    assert run.train.epochs == 1 and run.train.batch_size == 8 and run.train.max_grad_norm is None
    assert run.model.name_or_path == "tiny" and run.model.tiny.hidden_size == 32 and run.model.tiny.seed == 1234
    assert run.data.source == "glue_dir" and run.data.files.train is None
    assert run.record.representations == ("head", "quarters")
    assert run.threads == 1 and run.task_name == "rte" and run.regularizer_name == "dropout"
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.train.epochs = 2  # type: ignore[misc]


@pytest.mark.parametrize(("cls", "values", "where", "message"), [
    (Train, {"max_grad_norm": -1}, "train", "train.max_grad_norm=-1: must be a number > 0, or null for no clipping"),
    (Train, {"max_norm": 1}, "train", "train.max_norm: unknown setting"),
    (Data, {"train_size": 0}, "data", "data.train_size=0: must be an integer >= 1, or null for the whole split"),
    (Record, {"representations": ["cls"]}, "record", "record.representations=[cls]: must be head, quarters"),
])
def test_a_bad_value_is_one_line_naming_the_key(cls, values, where, message):
    with pytest.raises(ConfigError) as err:
        parse(cls, values, where)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_finetuning_run_needs_its_model_and_optimizer():
    cfg = composed()
    del cfg["optimizer"]
    with pytest.raises(ConfigError, match=r"^optimizer: missing"):
        parse_run(cfg)


def test_a_missing_key_takes_its_declared_default():
    train = parse(Train, {"epochs": 5}, "train")
    assert (train.epochs, train.batch_size, train.warmup_ratio, train.max_grad_norm, train.evals_per_epoch) == \
        (5, 32, 0.1, 1.0, 1)


# --- a stored config is read leniently ---------------------------------------------------------------------


def test_a_stored_config_is_read_without_raising():
    assert stored(None).experiment == "finetune" and stored(None).source == "hub"
    odd = stored({"data": "not a block", "optimizer": {"name": 3}, "task": {"default_source": "glue_dir"}})
    assert odd.source == "glue_dir" and odd.optimizer_name == "3" and odd.max_length is None
    saved = stored({"data": {"source": "files", "max_length": 64}, "model": {"name_or_path": "tiny"},
                    "task": {"num_labels": 2}})
    assert (saved.source, saved.max_length, saved.model_name_or_path, saved.num_labels) == ("files", 64, "tiny", 2)


# --- nothing outside the config package reads a setting by key ----------------------------------------------

# The blocks of a run config; a read of one of them by key is a read of the raw config.
BLOCKS = {"train", "optimizer", "data", "model", "record", "paths", "fault", "tracking", "regularizer"}
# The names a raw (unparsed) config goes by (an OmegaConf one's attributes are keys too), and those its blocks
# went by before they were typed; a declared key read by string from one of them is a setting read. (data,
# model, optimizer and record are left out: they name data frames, modules, torch optimizers and run records.)
RAW = re.compile(r"^(cfg|config|conf)$|_(cfg|config)$")
RAW_BLOCK = re.compile(r"^(cfg|config|conf|tr|train|paths|fault|tracking)$|_(cfg|config)$")

GPU_CHECK_ROWS = "a row of gpu-check's own results (the JSON it writes: the model measured, the method's name)"
# Reads the walk flags that are no setting reads, each with why: (module, key, the name read from).
NOT_SETTINGS = {
    ("mixsweep/run/train.py", "train", "tokenized"): "the tokenized splits",
    ("mixsweep/data/readers.py", "train", "raw"): "a task file's glue_tsv layout (the task registry's own block)",
    ("mixsweep/analysis/report.py", "optimizer", "cell"): "a column of the run table",
    ("mixsweep/analysis/load.py", "regularizer", "row"): "a column of the run table",
    ("mixsweep/analysis/published.py", "optimizer", "p"): "a row of the published numbers",
    ("mixsweep/gpucheck/cli.py", "model", "model"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/cli.py", "regularizer", "v"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/cli.py", "model", "est"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/cost.py", "regularizer", "v"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/cost.py", "model", "out"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/summary.py", "model", "r"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/summary.py", "regularizer", "r"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/summary.py", "model", "est"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/summary.py", "model", "m"): GPU_CHECK_ROWS,
    ("mixsweep/gpucheck/summary.py", "regularizer", "v"): GPU_CHECK_ROWS,
}
# Modules that read a raw config by key on purpose, each with why.
RAW_READERS = {
    "mixsweep/store/runid.py": "the run id hashes the plain config itself (its active methods only)",
    "mixsweep/sweeping/preflight.py": "planning applies a cell's regularizer.* overrides to the block before it is "
                                      "parsed (_inert_cell)",
    "mixsweep/analysis/calibration.py": "the testbed calibration's committed rule (issue 31): its code is pinned by "
                                        "an AST fingerprint and may not change",
}


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Call, ast.BoolOp)):
        node = node.values[0] if isinstance(node, ast.BoolOp) else node.func if isinstance(node, ast.Call) \
            else node.value
    return node.id if isinstance(node, ast.Name) else None


def keyed_reads(tree: ast.AST) -> list[tuple[int, str, str | None]]:
    """(line, key, the name it is read from) of every ``x["key"]``, ``x.get("key")`` (pop, setdefault) and
    ``cfg.key`` (an OmegaConf config's attribute) that reads a run config's block, or a declared key of one."""
    declared = {k for block in vars(schema).values() if isinstance(block, dict) and block
                and all(isinstance(v, schema.Key) for v in block.values()) for k in block}
    out = []
    for node in ast.walk(tree):
        key = receiver = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            key, receiver = node.slice.value, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            key, receiver = node.args[0].value, node.func.value
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and RAW.search(node.value.id)
              and node.attr in schema.TOP):
            key, receiver = node.attr, node.value
        if key is None:
            continue
        name = _root(receiver)
        if key in BLOCKS or (key in declared and name is not None and RAW_BLOCK.search(name)):
            out.append((node.lineno, key, name))
    return out


def test_the_walk_finds_the_reads_it_looks_for():
    # the forms the code used before it was typed (run/prepare.py, run/train.py at a0cafad), and forms it must pass
    code = '''
tr = cfg["train"]
n = int(train.get("max_steps") or 0)
lr = float(optimizer_cfg["lr"])
device = str(cfg.get("device", "auto"))
results = cfg.paths.results
ok = run.train.epochs + batch["input_ids"] + frame["label"] + group["lr"]
'''
    found = {(key, name) for _, key, name in keyed_reads(ast.parse(code))}
    assert found == {("train", "cfg"), ("max_steps", "train"), ("lr", "optimizer_cfg"), ("device", "cfg"),
                     ("paths", "cfg")}


def test_nothing_outside_the_config_package_reads_a_setting_by_key():
    found, seen = [], set()
    for path in sorted((SRC / "mixsweep").rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("mixsweep/config/") or rel in RAW_READERS:
            continue
        for line, key, name in keyed_reads(ast.parse(path.read_text(encoding="utf-8"))):
            if (rel, key, name) in NOT_SETTINGS:
                seen.add((rel, key, name))
            else:
                found.append(f"{rel}:{line} reads {key!r} from {name}")
    assert not found, "read these through the typed settings (mixsweep.config.settings):\n" + "\n".join(found)
    assert seen == set(NOT_SETTINGS), f"stale exceptions: {sorted(set(NOT_SETTINGS) - seen)}"
    for rel in RAW_READERS:
        assert keyed_reads(ast.parse((SRC / rel).read_text(encoding="utf-8"))), f"{rel} no longer reads by key"
