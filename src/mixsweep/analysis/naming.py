"""Names: task keys, the paper's display names for regularizer labels, and the p-sweep families.

Cells are identified by their config (:func:`mixsweep.store.cell_id.cell_id`), never by label. A label
is the canonical regularizer label (:func:`mixsweep.records.cell_label`) with every other knob in
which a table's cells differ appended (:func:`mixsweep.store.cell_id.table_labels`); the paper's short
names (Devlin, Wiese, Our, Our+W; D0.x / M0.x in Fig. 4) are only aliases of labels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from mixsweep.store.cell_id import flatten

DEVLIN = "dropout(0.1)+wdecay(0,0.01)"
WIESE = "wdecay(w_pre,0.01)"
OUR = "mixout(w_pre,0.7)"
OUR_W = "mixout(w_pre,0.7)+wdecay(w_pre,0.01)"

DISPLAY_NAMES: dict[str, str] = {DEVLIN: "Devlin", WIESE: "Wiese", OUR: "Our", OUR_W: "Our+W"}
_LABEL_OF_DISPLAY = {v.lower(): k for k, v in DISPLAY_NAMES.items()}
# Fig. 4 categories: D0.3 = dropout(0.3), M0.3 = mixout(w_pre,0.3), and p = 0 is no regularization.
_FIG4_NAME = re.compile(r"^([DM])(\d+(?:\.\d+)?)$")
_DROPOUT = re.compile(r"^dropout\((\d+(?:\.\d+)?)\)$")
_MIXOUT = re.compile(r"^mixout\(w_pre,(\d+(?:\.\d+)?)\)$")

# Paper order of the Fig. 3 categories and of the tasks; others follow in sorted order.
PAPER_ORDER = (DEVLIN, WIESE, OUR, OUR_W)
TASK_ORDER = ("rte", "mrpc", "cola", "stsb", "sst2")


def normalize_task(name: str) -> str:
    """``"STS-B"`` -> ``"stsb"``, ``"SST-2"`` -> ``"sst2"``, ``"rt_polarity"`` unchanged."""
    return re.sub(r"[^a-z0-9_]", "", str(name).strip().lower())


def display_name(label: str) -> str:
    """The paper's short name for a label (Devlin, Wiese, Our, Our+W), else the label itself."""
    return DISPLAY_NAMES.get(label, label)


def label_of(config_name: str) -> str:
    """Canonical label for a paper display name (``Our+W``, ``D0.2``, ``M0.8``) or a label."""
    name = str(config_name).strip()
    if name.lower() in _LABEL_OF_DISPLAY:
        return _LABEL_OF_DISPLAY[name.lower()]
    m = _FIG4_NAME.match(name)
    if m:
        p = float(m.group(2))
        if p == 0:
            return "none"
        return f"dropout({p:g})" if m.group(1) == "D" else f"mixout(w_pre,{p:g})"
    return name


PKey = tuple[str, tuple[float, ...]]


def sort_labels(labels: list[str] | set[str], keys: Mapping[str, PKey | None] | None = None) -> list[str]:
    """Paper categories first in the paper's order, then the rest alphabetically; with ``keys``
    (label -> :func:`probability_key`), the cells of one family whose p varies stay together,
    at the place of the family's first cell, in increasing p (a p-sweep reads 0.1, 0.2, ...,
    not the paper's "Our" mixout(w_pre,0.7) first)."""
    known = [x for x in PAPER_ORDER if x in labels]
    base = known + sorted(set(labels) - set(known))
    if not keys:
        return base
    groups: dict[Any, list[str]] = {}
    for label in base:
        key = keys.get(label)
        groups.setdefault(("label", label) if key is None else key[0], []).append(label)
    out: list[str] = []
    for members in groups.values():  # insertion order = each family's first place in ``base``
        if len({keys[m][1] for m in members if keys.get(m)}) > 1:
            members = sorted(members, key=lambda m: keys[m][1])  # stable: ties keep ``base`` order
        out += members
    return out


def namer(keys: Mapping[str, PKey | None] | None = None) -> Callable[[str], str]:
    """:func:`display_name`, except that a cell of a family whose p varies (a p-sweep) keeps its
    label: there mixout(w_pre,0.7) is one point of the sweep, not the paper's "Our"."""
    values: dict[str, set] = {}
    for key in (keys or {}).values():
        if key:
            values.setdefault(key[0], set()).add(key[1])
    swept = {label for label, key in (keys or {}).items() if key and len(values[key[0]]) > 1}
    return lambda label: label if label in swept else display_name(label)


def probability_key(regularizer: Mapping[str, Any] | None) -> PKey | None:
    """A cell's p-sweep family and its probabilities, read from its resolved regularizer config.

    Probabilities are the numeric settings named ``p`` (``mixout.p``, ``dropout.p``) and a
    numeric ``dropout``. The family is everything else in the config plus which probabilities
    are non-zero, so dropout(0.1) ... dropout(0.8) form one family, mixout(w_pre, p) another and
    mixout(w_pre, p)+wdecay a third; the probabilities are the non-zero ones, in config order.
    ``None`` when there is no config (an external CSV), so that no label is ever parsed for p.
    """
    if not regularizer:
        return None
    rest: dict[str, Any] = {}
    probs: dict[str, float] = {}
    for path, value in flatten(regularizer).items():
        is_prob = (path.rpartition(".")[2] == "p" or path == "dropout") and isinstance(value, int | float) \
            and not isinstance(value, bool)
        if is_prob:
            probs[path] = float(value)
        else:
            rest[path] = value
    active = [k for k, v in probs.items() if v > 0]
    family = json.dumps({"settings": rest, "active": active}, sort_keys=True, default=str)
    return family, tuple(probs[k] for k in active)


def sort_tasks(tasks: list[str] | set[str]) -> list[str]:
    """The paper's task order (RTE, MRPC, CoLA, STS-B, SST-2), then the rest alphabetically."""
    known = [t for t in TASK_ORDER if t in tasks]
    return known + sorted(set(tasks) - set(known))


def sweep_family(label: str, regularizer: Mapping[str, Any] | None = None) -> tuple[str | None, float]:
    """Which p-sweep a cell belongs to: ``("dropout", p)``, ``("mixout", p)``, ``("none", 0.0)``.

    Only plain cells qualify (no weight decay, no head policy, no non-default choices), as in
    Fig. 2, Fig. 4 and App. F; any other cell gives ``(None, nan)``. A run record is read through
    its resolved regularizer config (each method says whether it is such a point, ``Method.family``);
    only the paper's own numbers and external CSVs, which have no config, fall back to the label.
    """
    if regularizer:
        from mixsweep.regularizers.base import RegularizerError, build_methods
        from mixsweep.regularizers.legacy import upgrade

        try:
            methods = build_methods(upgrade(regularizer))  # records written before the methods too
        except (RegularizerError, ValueError, TypeError):  # a hand-edited record: no family, never a traceback
            return None, float("nan")
        if not methods:
            return "none", 0.0
        point = methods[0].family() if len(methods) == 1 else None
        return point if point is not None else (None, float("nan"))
    if label == "none":
        return "none", 0.0
    for family, pattern in (("dropout", _DROPOUT), ("mixout", _MIXOUT)):
        m = pattern.match(label)
        if m:
            return family, float(m.group(1))
    return None, float("nan")
