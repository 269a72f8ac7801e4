"""Local train/dev files (CSV, JSON, JSON Lines, Parquet) with an explicit column mapping.

``data.files`` names the two files and, optionally, the columns; columns default to the task's
text keys and ``label``. Labels may be class names or ids; STS-B-like tasks need numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mixsweep.config.settings import DataFiles, as_settings
from mixsweep.data.frames import label_ids_by_name_or_id, make_frame
from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError

FORMATS = ("csv", "json", "jsonl", "parquet")
_SUFFIX_FORMAT = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def read_files_split(task: TaskSpec, files: DataFiles | Mapping[str, Any], split: str) -> pd.DataFrame:
    """Read the ``split`` file of ``data.files`` into the standard frame (see :mod:`mixsweep.data.frames`)."""
    files = as_settings(DataFiles, files, "data.files")
    given = files.train if split == "train" else files.dev
    if not given:
        raise UserError(
            f"data.source=files needs data.files.{split}=PATH (a csv, json, jsonl or parquet file with "
            f"columns {', '.join(_mapping(task, files).values())})"
        )
    path = Path(given).expanduser()
    if not path.is_file():
        raise UserError(
            f"missing {path}: set data.files.{split} to an existing csv, json, jsonl or parquet file"
        )
    table = read_table(path, files.format)
    mapping = _mapping(task, files)
    absent = [c for c in mapping.values() if c not in table.columns]
    if absent:
        raise UserError(
            f"{path}: no column {absent[0]!r} (found {list(table.columns)}); "
            "set data.files.text_a / text_b / label to the right column names"
        )
    # 1-based data rows; a CSV row N is file line N+1 because of its header.
    return make_frame(
        task,
        texts=[table[mapping[k]].tolist() for k in ("text_a", "text_b") if k in mapping],
        raw_labels=table[mapping["label"]].tolist(),
        label_ids=label_ids_by_name_or_id(task),
        locate=lambda i: f"{path} row {i + 1}",
        origin=str(path),
    )


def read_table(path: Path, fmt: str | None) -> pd.DataFrame:
    fmt = fmt or _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise UserError(
            f"{path}: unknown file format {fmt!r}; set data.files.format to one of {', '.join(FORMATS)}"
        )
    try:
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if fmt in ("json", "jsonl"):
            return pd.read_json(path, lines=fmt == "jsonl", dtype=False)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: cannot read as {fmt} ({first_line}); check data.files.format") from None


def _mapping(task: TaskSpec, files: DataFiles) -> dict[str, str]:
    """The frame's columns -> the file's: ``data.files.text_a``/``text_b``/``label``, else the task's own names."""
    given = {"text_a": files.text_a, "text_b": files.text_b, "label": files.label}
    defaults = dict(zip(("text_a", "text_b"), task.text_keys, strict=False)) | {"label": "label"}
    return {key: given[key] or default for key, default in defaults.items()}
