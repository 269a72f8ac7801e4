"""``mixsweep rerun RUN_ID``: re-execute a stored run from its record and compare."""

from __future__ import annotations

import math
import re
from pathlib import Path

from omegaconf import OmegaConf

from mixsweep import store
from mixsweep.errors import UserError

_RUN_ID_PREFIX = re.compile(r"[0-9a-f]{1,12}")


def find_run(results: str | Path, rid: str) -> Path:
    """The stored run whose id starts with ``rid``: hex only, so no path, glob or '..' reaches the store."""
    if not _RUN_ID_PREFIX.fullmatch(rid):
        raise UserError(f"'{rid}' is not a run id: a run id is 12 hex digits (0-9, a-f), the name of a run's "
                        f"folder; give it or a unique prefix of it (list them with `ls {results}/runs/`)")
    hits = store.find_runs(results, rid)
    if not hits:
        raise UserError(f"no stored run '{rid}' under {results}/: a run id is the name of a run's folder "
                        f"(list them with `ls {results}/runs/`), or pass --results DIR where the runs live")
    if len(hits) > 1:
        raise UserError(f"run id prefix '{rid}' is ambiguous ({len(hits)} runs): give more characters")
    return hits[0]


def compare(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Metric keys whose values differ (NaN equals NaN)."""
    diffs = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        same = x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        if not same:
            diffs.append(f"{k}: stored {x} vs rerun {y}")
    return diffs


def rerun(results: str | Path, rid: str) -> int:
    from mixsweep.sweeping.execute import _dispatch

    directory = find_run(results, rid)
    record = store.read_record(directory)
    if record is None:
        raise UserError(f"the record in {directory} is unreadable: rerun the sweep to redo it")
    from mixsweep.schema import upgraded

    cfg = OmegaConf.create(upgraded(record.config))  # a record from before the schema: 0 meant "off"
    cfg.progress = True  # a bar on a terminal, else a line every ~30 s; not part of the run id
    print(f"rerunning {record.run_id} ({record.task} {record.label} seed {record.seed}) from {directory}",
          flush=True)
    out = _dispatch(cfg)
    diffs = compare(record.final, out.get("final", {}))
    curve_same = [e["metrics"] for e in record.eval_curve] == [e["metrics"] for e in out.get("eval_curve", [])]
    print(f"run {record.run_id} ({record.task} {record.label} seed {record.seed}): "
          f"stored status {record.status}, rerun status {out['status']}")
    if not diffs and curve_same and record.status == out["status"]:
        print("metrics match exactly (final metrics and the whole eval curve)")
        return 0
    for line in diffs:
        print("  differs: " + line)
    if not curve_same:
        print("  the eval curves differ")
    print("metrics do NOT match (expected across devices or with nondeterministic GPU kernels)")
    return 1
