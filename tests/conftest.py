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


@pytest.fixture
def tiny(tmp_path: Path) -> list[str]:
    return tiny_overrides(tmp_path)
