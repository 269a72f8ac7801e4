"""A cell's identity (its semantic config without the seeds) and its label in a table.

Runs are grouped into cells by identity, never by label: two cells that differ only in the
optimizer, the learning rate, the number of epochs or the model are two rows. The label stays
the paper's regularizer label (:func:`mixsweep.records.cell_label`), and every other knob in
which the cells of one table differ is appended by one rule, :func:`table_labels`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mixsweep.store.runid import SEED_KEYS, semantic_config

ROW_KEY = "task"  # tables put tasks in their own column: never part of the label
LABELLED = "regularizer"  # already spelled out by the regularizer label
_ABSENT = "<absent>"


def cell_config(cfg: Any) -> dict[str, Any]:
    """The semantic config of a run (see :func:`mixsweep.store.runid.semantic_config`) without its seeds."""
    d = semantic_config(cfg)
    for key in SEED_KEYS:
        d.pop(key, None)
    return d


def cell_id(cfg: Any) -> str:
    """sha1 of the canonical JSON of :func:`cell_config`, 12 hex characters."""
    payload = json.dumps(cell_config(cfg), sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 1e-05}}`` -> ``{"optimizer.lr": 1e-05}``: the one flattening of a config.

    Lists are leaves, and so is an empty mapping (``{"wdecay": {}}`` -> ``{"wdecay": {}}``): a
    method switched on with its defaults must not flatten like no method at all, so two configs
    that differ always flatten differently.
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, path + "."))
        else:
            out[path] = v
    return out


def table_labels(cells: Mapping[str, tuple[str, str, Mapping[str, Any]]]) -> dict[str, str]:
    """Table label of each cell: ``cell id -> (task, regularizer label, cell config)`` -> ``id -> label``.

    The rule: a config path is shown when its value is not the same in every cell of the table
    (the task block excepted: it has its own column). A block's ``name`` stands for the block,
    ``optimizer=adamw``, and a path under that block is then left out if its value follows from
    the name in every cell (adamw's own defaults), but kept if not (``optimizer.lr=1e-05``).
    The regularizer block is in the label already; its other paths are added only where two
    cells of one task would otherwise share a label. Example:
    ``mixout(w_pre,0.9) [optimizer=adamw, train.epochs=2]``.
    """
    flat = {cid: flatten({k: v for k, v in cfg.items() if k != ROW_KEY}) for cid, (_, _, cfg) in cells.items()}
    outer = {cid: {p: v for p, v in f.items() if not _under(p, LABELLED)} for cid, f in flat.items()}
    shown = _distinguishing(outer)
    labels = {cid: _with_suffix(cells[cid][1], outer[cid], shown) for cid in cells}

    by_row: dict[tuple[str, str], list[str]] = {}
    for cid, (task, _, _) in cells.items():
        by_row.setdefault((task, labels[cid]), []).append(cid)
    for ids in by_row.values():
        if len(ids) < 2:
            continue
        inner = {cid: {p: v for p, v in flat[cid].items() if _under(p, LABELLED)} for cid in ids}
        extra = _distinguishing(inner)
        for cid in ids:
            labels[cid] = _with_suffix(cells[cid][1], {**outer[cid], **inner[cid]}, shown + extra)
    return labels


def row_names(cells: Mapping[str, tuple[str, str, str, Mapping[str, Any]]]) -> dict[str, str]:
    """Row name of each cell: ``cell id -> (task, cell name, regularizer label, config)`` -> ``id -> name``.

    The rule: where the cells of a table differ in nothing but the regularizer (the paper's grids),
    the row name is the table label of :func:`table_labels` (``mixout(w_pre,0.9)``: the paper's
    labels). Where they differ in more (a stabilizer study: optimizer, lr, epochs), the row name is
    the name the study file gives the cell (``mosbach``), and its full label goes to the table's
    legend. Two cells of one task that share a name (a run launched with extra ARGS, same cell)
    get the settings that tell them apart appended by the rule of :func:`table_labels`
    (``mosbach [model=tiny]``). Records without a name of their own (the cell name is the
    label: a run outside a study's cells) keep the labels.
    """
    labels = table_labels({cid: (task, label, cfg) for cid, (task, _, label, cfg) in cells.items()})
    if all(labels[cid] == label for cid, (_, _, label, _) in cells.items()) or \
            not all(name and name != label for _, name, label, _ in cells.values()):
        return labels
    by_name: dict[tuple[str, str], dict[str, tuple[str, str, Mapping[str, Any]]]] = {}
    for cid, (task, name, _, cfg) in cells.items():
        by_name.setdefault((task, name), {})[cid] = (task, name, cfg)
    out: dict[str, str] = {}
    for group in by_name.values():
        out.update(table_labels(group))
    return out


def _distinguishing(flat: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The paths to show, in sorted order, by the rule of :func:`table_labels`."""
    rows = list(flat.values())
    paths = sorted({p for f in rows for p in f}, key=lambda p: p.removesuffix(".name"))  # a block's name first
    varying = [p for p in paths if len({_key(f.get(p, _ABSENT)) for f in rows}) > 1]
    names = [p for p in varying if p.endswith(".name")]
    shown = []
    for p in varying:
        owner = next((n for n in names if n != p and _under(p, n.removesuffix(".name"))), None)
        if owner is not None and _follows(rows, p, owner):
            continue
        shown.append(p)
    return shown


def _follows(rows: list[Mapping[str, Any]], path: str, name: str) -> bool:
    """Whether the value at ``path`` is a function of the value at ``name`` across the cells."""
    seen: dict[str, str] = {}
    for f in rows:
        n, v = _key(f.get(name, _ABSENT)), _key(f.get(path, _ABSENT))
        if seen.setdefault(n, v) != v:
            return False
    return True


def _with_suffix(label: str, flat: Mapping[str, Any], paths: list[str]) -> str:
    parts = [f"{p.removesuffix('.name') if p.endswith('.name') else p}={_fmt(flat.get(p, _ABSENT))}"
             for p in paths]
    return f"{label} [{', '.join(parts)}]" if parts else label


def _under(path: str, block: str) -> bool:
    return path == block or path.startswith(block + ".")


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)  # exact: 1e-05 and 1.0000001e-05 stay two labels
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)
