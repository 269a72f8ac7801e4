"""Task data: reading (hub, GLUE folder, local files, bundled rt_polarity), subsampling, tokenizing.

``load_splits(task, data_cfg)`` returns standard frames (``text_a``, ``text_b``, ``label``);
``tokenize_splits(...)`` turns them into cached ``datasets.Dataset`` splits.
"""

from mixsweep.data.loading import load_splits
from mixsweep.data.tokenize import tokenize_splits

__all__ = ["load_splits", "tokenize_splits"]
