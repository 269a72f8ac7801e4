"""What ran, read back from the run records: the report's provenance block and recipe table.

Every record stores its resolved config, its seeds, the git commit, the package versions, the
device and the time it was written (see :mod:`mixsweep.run.environment`). This module only
summarizes them; a value that differs between runs is listed with how many runs had it, so a
mixed study (two commits, a dirty checkout, two torch versions) is visible at a glance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from mixsweep.config.stored import stored
from mixsweep.records import RunRecord
from mixsweep.run.recipe import recipe_line
from mixsweep.store.cell_id import flatten
from mixsweep.store.runid import SEED_KEYS

# Config keys that are no part of the recipe: the cell (its own column), the restart seeds (the
# provenance block), where files go, and test/UI switches.
NOT_RECIPE = ("regularizer", *SEED_KEYS, "cell", "sweep", "paths", "progress", "fault", "threads",
              "experiment", "data.cache_dir", "data.hub_cache_dir")
# What the finetuning runs read (the digits runs read their recipe from task.*).
RECIPE_PREFIXES = {
    "finetune": ("model", "optimizer", "train", "data", "task.name", "bf16", "deterministic", "device"),
    "digits": ("task", "deterministic", "device"),
}


def fmt_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    return str(v)


def distinct(values: Iterable[Any]) -> str:
    """One value as itself; several as ``a (3 runs), b (1 run)``, most frequent first."""
    counts = Counter(fmt_value(v) for v in values)
    if not counts:
        return "–"
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{v} ({n} run{'s' * (n != 1)})" for v, n in counts.most_common())


def _experiment(r: RunRecord) -> str:
    return stored(r.config).experiment


def _seed_range(seeds: list[int]) -> str:
    s = sorted(set(seeds))
    if s and s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}–{s[-1]} ({len(s)} restarts)"
    return ", ".join(map(str, s)) + f" ({len(s)} restart{'s' * (len(s) != 1)})"


def _model(r: RunRecord) -> str:
    saved = stored(r.config)
    if saved.experiment == "digits":
        return saved.digits_model
    rev = saved.model_revision
    return (saved.model_name_or_path or "?") + (f" @ {rev}" if rev else "")


def _data(r: RunRecord) -> str:
    saved, extra = stored(r.config), r.extra or {}
    if saved.experiment == "digits":
        sizes = extra.get("sizes") or {}
        return (f"target train {sizes.get('target_train', '?')}, val {sizes.get('target_val', '?')}; "
                f"source train {sizes.get('source_train', '?')}")
    # the source the run read (auto resolved), named as the sweep's header names it (data.loading)
    max_length = "?" if saved.max_length is None else saved.max_length
    return (f"{r.task} from {saved.source}: train {extra.get('train_size', '?')}, "
            f"dev {extra.get('dev_size', '?')}, max_length {max_length}")


def _commit(r: RunRecord) -> str:
    git = (r.env or {}).get("git") or {}
    commit = git.get("commit")
    if not commit:
        return "unknown (not run from a git checkout)"
    dirty = git.get("dirty")
    state = "dirty: uncommitted changes" if dirty else ("clean" if dirty is False else "dirty flag unknown")
    return f"{commit[:12]} ({state})"


def provenance_lines(records: list[RunRecord]) -> list[str]:
    """Markdown bullet lines: model, data and sizes, recipe, seeds, code, packages, device, date."""
    if not records:
        return []
    lines = [
        f"- **Model**: {distinct(_model(r) for r in records)}",
        f"- **Data**: {distinct(_data(r) for r in records)}",
        f"- **Recipe**: {distinct(recipe_line(r.config or {}) for r in records)} (every setting: the recipe table below)",
        f"- **Seeds**: restarts {_seed_range([r.seed for r in records])}; "
        + _seed_note(records),
        f"- **Code**: git {distinct(_commit(r) for r in records)}",
        "- **Packages**: " + _versions(records),
        f"- **Device**: {distinct((r.env or {}).get('device', '?') for r in records)} on "
        f"{distinct((r.env or {}).get('platform', '?') for r in records)}",
        f"- **Date**: {_dates(records)}",
    ]
    return lines


SEED_KINDS = (("init", "init"), ("data", "data order"), ("noise", "dropout/mixout masks"))


def _seed_note(records: list[RunRecord]) -> str:
    """How each seed relates to the restart index: equal to it, fixed, or otherwise set."""
    parts = []
    for key, what in SEED_KINDS:
        values = [(r.seeds or {}).get(key) for r in records]
        if all(v is None for v in values):
            continue
        if all(v == r.seed for v, r in zip(values, records, strict=True)):
            parts.append(f"{what} = restart")
        elif len(set(values)) == 1:
            parts.append(f"{what} fixed at {values[0]}")
        else:
            parts.append(f"{what} set per run (see each record's `seeds`)")
    return "; ".join(parts) if parts else "no per-kind seeds recorded"


def _versions(records: list[RunRecord]) -> str:
    names: dict[str, list[Any]] = {}
    for r in records:
        for name, v in ((r.env or {}).get("versions") or {}).items():
            names.setdefault(name, []).append(v)
    if not names:
        return "not recorded"
    return "; ".join(f"{name} {distinct(vs)}" for name, vs in names.items())


def _dates(records: list[RunRecord]) -> str:
    stamps = sorted(r.created for r in records if r.created)
    if not stamps:
        return "not recorded"
    first, last = stamps[0], stamps[-1]
    return first if first == last else f"{first} to {last} (UTC)"


def recipe_table(records: list[RunRecord]) -> pd.DataFrame:
    """Every setting the runs read, one row each: its value, or the values and how many runs had
    each where they differ. The regularizer (the cells) and the restart seeds are left out."""
    rows: dict[str, list[Any]] = {}
    for r in records:
        prefixes = RECIPE_PREFIXES.get(_experiment(r), RECIPE_PREFIXES["finetune"])
        for key, value in flatten(r.config or {}).items():
            if key.startswith(prefixes) and not key.startswith(NOT_RECIPE):
                rows.setdefault(key, []).append(value)
    out = [{"setting": k, "value": distinct(vs)} for k, vs in sorted(rows.items())
           if not (k.startswith("data.files.") and all(v is None for v in vs))]  # unused file-source slots
    return pd.DataFrame(out, columns=["setting", "value"])
