"""Strict readers of the standard ``glue_data/<TASK>/{train,dev}.tsv`` files.

The real files are tab-separated with quoting off (sentences contain ``"``), so each line is
split on tabs and nothing else: no CSV dialect guessing. Every row must have the header's
column count; the first bad row stops the read with its file:line. The layout of each task
(header or not, which columns hold text and label, the file value of each class id) is the
``glue_tsv`` block of its task yaml.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mixsweep.data.frames import make_frame
from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError

BOM = "\ufeff"  # MRPC's header starts with one


@dataclass(frozen=True)
class TsvLayout:
    header: bool
    text: tuple[str, ...]
    label: str
    label_values: tuple[str, ...] | None = None  # file value of each class id; None for a score
    columns: tuple[str, ...] | None = None  # column names of a headerless file
    train: str = "train.tsv"
    dev: str = "dev.tsv"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TsvLayout:
        values = raw.get("label_values")
        columns = raw.get("columns")
        return cls(
            header=bool(raw["header"]),
            text=tuple(raw["text"]),
            label=str(raw["label"]),
            label_values=None if values is None else tuple(str(v) for v in values),
            columns=None if columns is None else tuple(columns),
            train=raw.get("train", "train.tsv"),
            dev=raw.get("dev", "dev.tsv"),
        )


def glue_split_path(task: TaskSpec, glue_dir: str | Path, split: str) -> Path:
    """``<glue_dir>/<TASK>/<file>``; a missing folder or file names the expected layout."""
    layout = _layout(task)
    root = Path(glue_dir).expanduser()
    path = root / str(task.glue_dir_name) / getattr(layout, split)
    if not root.is_dir():
        raise UserError(
            f"GLUE folder {root} does not exist: set data.glue_dir to the folder that holds "
            f"{task.glue_dir_name}/{layout.train} and {task.glue_dir_name}/{layout.dev}"
        )
    if not path.is_file():
        raise UserError(
            f"missing {path}: data.glue_dir must follow the glue_data layout "
            f"<glue_dir>/{task.glue_dir_name}/{{{layout.train},{layout.dev}}}"
        )
    return path


def read_glue_split(task: TaskSpec, glue_dir: str | Path, split: str) -> pd.DataFrame:
    return read_glue_tsv(task, glue_split_path(task, glue_dir, split))


def read_glue_tsv(task: TaskSpec, path: Path) -> pd.DataFrame:
    """Read one GLUE TSV into the standard frame (see :mod:`mixsweep.data.frames`)."""
    layout = _layout(task)
    rows = _split_lines(path)
    if layout.header:
        header_line, header = next(rows, (0, None))
        if header is None:
            raise UserError(
                f"{path} is empty: a GLUE {task.glue_dir_name} file needs its header row and data rows"
            )
        columns = tuple(header)
    else:
        header_line, columns = 0, tuple(layout.columns or ())
    wanted = (*layout.text, layout.label)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise UserError(
            f"{path}:{max(header_line, 1)}: no column {missing[0]!r} (found {list(columns)}); "
            f"is this the GLUE {task.glue_dir_name} file?"
        )
    line_numbers: list[int] = []
    records: list[list[str]] = []
    for lineno, fields in rows:
        if len(fields) != len(columns):
            raise UserError(
                f"{path}:{lineno}: expected {len(columns)} tab-separated columns, found {len(fields)}; "
                "fix that row (the file must be tab-separated with no quoting)"
            )
        line_numbers.append(lineno)
        records.append(fields)
    index = {name: i for i, name in enumerate(columns)}
    label_ids = None if layout.label_values is None else {v: i for i, v in enumerate(layout.label_values)}
    return make_frame(
        task,
        texts=[[r[index[c]] for r in records] for c in layout.text],
        raw_labels=[r[index[layout.label]] for r in records],
        label_ids=label_ids,
        locate=lambda i: f"{path}:{line_numbers[i]}",
        origin=str(path),
    )


def _split_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, tab-split fields), skipping blank lines.

    Lines end at ``\\n`` only: a stray ``\\r`` inside a sentence must not start a new row.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise UserError(
                    f"{path}:{lineno}: not valid UTF-8 ({e.reason}); re-save the file as UTF-8"
                ) from None
            if lineno == 1:
                line = line.removeprefix(BOM)
            if line:
                yield lineno, line.split("\t")


def _layout(task: TaskSpec) -> TsvLayout:
    if task.glue_tsv is None or task.glue_dir_name is None:
        raise UserError(
            f"task '{task.name}' has no GLUE files: use data.source={task.default_source} or files"
        )
    return TsvLayout.from_mapping(task.glue_tsv)
