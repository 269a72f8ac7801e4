"""Task data: the task registry (:mod:`~mixsweep.data.tasks`) and its dev-set metrics
(:mod:`~mixsweep.data.metrics`); reading (hub, GLUE folder, local files, bundled rt_polarity),
subsampling, tokenizing; the dev set's fixed halves (:mod:`~mixsweep.data.dev_split`); how mixsweep
talks to the Hugging Face hub (:mod:`~mixsweep.data.hub_access`).

``load_splits(task, data_cfg)`` returns standard frames (``text_a``, ``text_b``, ``label``);
``tokenize_splits(...)`` turns them into cached ``datasets.Dataset`` splits. Both are imported lazily
(as the analysis package does), so that reading the task registry does not load pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"load_splits": "loading", "tokenize_splits": "tokenize"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mixsweep.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mixsweep.data' has no attribute {name!r}")
