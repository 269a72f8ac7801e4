"""GLUE from the Hugging Face hub (``nyu-mll/glue``; the old ``glue`` id no longer resolves).

``datasets`` honours ``HF_DATASETS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` itself: offline, only a
cached copy under ``data.hub_cache_dir`` (or the default datasets cache) can be loaded. Hub
label ids are already in the task's ``label_names`` order.
"""

from __future__ import annotations

import os

import pandas as pd

from mixsweep.config.settings import Data
from mixsweep.data.frames import make_frame
from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError

DEFAULT_HUB_ID = "nyu-mll/glue"


def read_hub_split(task: TaskSpec, data: Data, split: str) -> pd.DataFrame:
    import datasets

    if task.hub_config is None:
        raise UserError(
            f"task '{task.name}' is not on the hub: use data.source={task.default_source} or files"
        )
    hub_id = data.hub_id
    origin = f"{hub_id}/{task.hub_config}[{task.hub_splits[split]}]"
    try:
        table = datasets.load_dataset(
            hub_id,
            task.hub_config,
            split=task.hub_splits[split],
            cache_dir=data.hub_cache_dir,
        ).to_pandas()
    except (OSError, ValueError) as e:  # ConnectionError and FileNotFoundError are OSErrors
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        offline = " (offline mode is on)" if _offline() else ""
        raise UserError(
            f"cannot load {origin} from the hub{offline}: {reason}; load it once online into "
            "data.hub_cache_dir, or use data.source=glue_dir data.glue_dir=PATH"
        ) from None
    absent = [k for k in (*task.text_keys, "label") if k not in table.columns]
    if absent:
        raise UserError(f"{origin}: no column {absent[0]!r} (found {list(table.columns)}); check data.hub_id")
    ids = None if task.label_names is None else {str(i): i for i in range(task.num_labels)}
    return make_frame(
        task,
        texts=[table[k].tolist() for k in task.text_keys],
        raw_labels=table["label"].tolist(),
        label_ids=ids,
        locate=lambda i: f"{origin} row {i}",
        origin=origin,
    )


def _offline() -> bool:
    return any(
        os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
        for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )
