"""Shared fixtures: tiny model + fixture GLUE data, isolated results and caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GLUE = FIXTURES / "glue"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_overrides(tmp: Path, task: str = "rte") -> list[str]:
    """A run that needs no download: random-init 2-layer BERT on the hand-written GLUE fixtures."""
    return [
        f"task={task}",
        "model=tiny",
        "data.source=glue_dir",
        f"data.glue_dir={GLUE}",
        "train.epochs=1",
        "train.batch_size=8",
        "train.eval_batch_size=16",
        "optimizer.lr=1e-3",
        f"paths.results={tmp / 'results'}",
        f"paths.cache={tmp / 'cache'}",
        "threads=1",
    ]


def tiny_bert(num_labels: int = 2):
    """A seeded random-init 2-layer BERT classifier built from a config (no download)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=num_labels)
    return BertForSequenceClassification(config)


@pytest.fixture
def tiny(tmp_path: Path) -> list[str]:
    return tiny_overrides(tmp_path)
