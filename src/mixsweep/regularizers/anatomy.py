"""Where the parts of a Hugging Face encoder live, and seeded random streams for the methods.

The stabilizers (re-init, LLRD) need the transformer blocks in depth order, the embeddings and the
pooler; these are found from the model's own structure (``base_model`` → ``encoder.layer`` for
BERT/RoBERTa/ELECTRA, ``transformer.layer`` for DistilBERT), never from a hand-written list per
architecture.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn

from mixsweep.regularizers.base import RegularizerError

# Attribute paths (from the base model) of the stack of transformer blocks, first match wins.
_LAYER_STACKS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers")


def base_prefix(model: nn.Module) -> str:
    """Qualified name of the pretrained body (``bert``, ``roberta``, ...); ``""`` if the model is the body."""
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    return prefix if isinstance(body, nn.Module) and body is not model else ""


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def encoder_layers(model: nn.Module, method: str) -> list[str]:
    """Qualified names of the transformer blocks, bottom (closest to the embeddings) to top."""
    prefix = base_prefix(model)
    for path in _LAYER_STACKS:
        try:
            stack = model.get_submodule(_join(prefix, path))
        except AttributeError:
            continue
        if isinstance(stack, nn.ModuleList) and len(stack):
            return [_join(prefix, path, str(i)) for i in range(len(stack))]
    raise RegularizerError(
        f"regularizer.{method} needs a transformer encoder with a list of layers "
        f"({' or '.join(_LAYER_STACKS)} under the base model), and {type(model).__name__} has none: "
        f"drop regularizer.{method} for this model")


def optional_module(model: nn.Module, name: str) -> str | None:
    """``<base>.<name>`` if the model has such a submodule (not None), else None."""
    qualified = _join(base_prefix(model), name)
    try:
        return qualified if model.get_submodule(qualified) is not None else None
    except AttributeError:
        return None


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose`` derived from ``seed``, so that two methods drawing from the same
    run seed (init_seed or noise_seed) get independent streams rather than the same numbers."""
    state = np.random.SeedSequence([int(seed) % 2**63, zlib.crc32(purpose.encode())]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) % 2**63


def generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derived_seed(seed, purpose))
