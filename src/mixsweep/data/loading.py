"""``load_splits``: a task's train and dev data as standard frames, from the configured source."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from mixsweep.config.settings import Data, as_settings
from mixsweep.data.files import read_files_split
from mixsweep.data.hub import read_hub_split
from mixsweep.data.readers import read_glue_split
from mixsweep.data.rt_polarity import read_rt_polarity
from mixsweep.data.subsample import stratified_indices
from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError

SPLITS = ("train", "dev")
SIZE_KEYS = {"train": "train_size", "dev": "dev_size"}
BUNDLED: dict[str, Callable[[TaskSpec], dict[str, pd.DataFrame]]] = {"rt_polarity": read_rt_polarity}
READERS: dict[str, Callable[[TaskSpec, Data], dict[str, pd.DataFrame]]] = {
    "hub": lambda task, data: {s: read_hub_split(task, data, s) for s in SPLITS},
    "glue_dir": lambda task, data: {s: read_glue_split(task, data.glue_dir, s) for s in SPLITS},
    "files": lambda task, data: {s: read_files_split(task, data.files, s) for s in SPLITS},
    "bundled": lambda task, data: BUNDLED[task.name](task),
}


def load_splits(task: TaskSpec, data: Data | Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Read, check and optionally subsample the task's ``train`` and ``dev`` splits.

    Each frame has ``text_a`` (, ``text_b``) and ``label`` columns; ``df.attrs`` records
    ``source`` (hub, glue_dir, files, bundled), ``origin`` (path or hub id) and ``full_size``
    (rows before subsampling).
    """
    data = as_settings(Data, data, "data")
    source = resolve_source(task, data)
    frames = READERS[source](task, data)
    splits: dict[str, pd.DataFrame] = {}
    for split in SPLITS:
        frame = frames[split]
        origin = frame.attrs["origin"]
        if frame.empty:
            raise UserError(
                f"the {split} split of {task.name} from {origin} has no rows: point data.source at non-empty data"
            )
        size = data.train_size if split == "train" else data.dev_size
        full_size = len(frame)
        if size is not None:
            if size > full_size:
                raise UserError(
                    f"data.{SIZE_KEYS[split]}={size} exceeds the {full_size} {split} rows of {task.name}: "
                    f"choose at most {full_size} (or null for all)"
                )
            rows = stratified_indices(
                frame["label"].to_numpy(),
                size,
                data.sample_seed,
                SPLITS.index(split),
                task.is_regression,
            )
            frame = frame.iloc[rows].reset_index(drop=True)
        frame.attrs.update(source=source, origin=origin, full_size=full_size)
        splits[split] = frame
    return splits


def resolve_source(task: TaskSpec, data: Data | Mapping[str, Any]) -> str:
    """``auto`` means the task's ``default_source`` (a task file names one of SOURCES; ``data.source`` is
    declared as ``auto`` or one of them); the source must also serve the task."""
    data = as_settings(Data, data, "data")
    source = task.default_source if data.source == "auto" else data.source
    if source == "bundled" and task.name not in BUNDLED:
        raise UserError(
            f"task '{task.name}' has no bundled data (only {', '.join(BUNDLED)}): use data.source=hub, glue_dir or files"
        )
    if source == "glue_dir" and not data.glue_dir:
        raise UserError(
            f"data.source=glue_dir needs data.glue_dir=PATH, the folder that holds {task.glue_dir_name}/train.tsv"
        )
    return source
