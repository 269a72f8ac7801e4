"""``mixsweep rerun RUN_ID``: re-execute a stored run from its record and compare."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from mixsweep.errors import UserError
from mixsweep.records import RunRecord
from mixsweep.store import runs as store

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
        shown = ", ".join(_describe(hit) for hit in hits[:MAX_LISTED])
        more = f" and {len(hits) - MAX_LISTED} more" if len(hits) > MAX_LISTED else ""
        raise UserError(f"run id prefix '{rid}' is ambiguous ({len(hits)} runs: {shown}{more}): give more "
                        "characters of the one you mean")
    return hits[0]


MAX_LISTED = 8  # candidates an ambiguous prefix lists


def _describe(directory: Path) -> str:
    """``1ed530fd418e (rte dropout_0.1 seed 1)``: a candidate of an ambiguous prefix."""
    record = store.read_record(directory)
    return directory.name + (f" ({record.task} {record.cell} seed {record.seed})" if record is not None else "")


def check_config(record: RunRecord, directory: Path) -> None:
    """The record's config is a run config that still hashes to the record's run id: rerunning an
    edited config would compare another experiment's metrics with this run's."""
    from mixsweep.store.runid import run_id

    config = record.config
    where = directory / store.RESULT
    if not isinstance(config, dict) or not config:
        raise UserError(_no_config(where, config))
    try:
        hashed = run_id(config)
    except (TypeError, ValueError, AttributeError) as e:
        hashed = f"nothing ({type(e).__name__}: {e})"
    if hashed != directory.name:
        raise UserError(f"the config in {where} no longer matches its run id {directory.name} (it hashes to "
                        f"{hashed}): the record was edited after its run; restore it, or run the changed config "
                        "as a new run with `mixsweep sweep` (a rerun reproduces a stored run, unchanged)")


def compare(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Metric keys whose values differ (NaN equals NaN)."""
    diffs = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        same = x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        if not same:
            diffs.append(f"{k}: stored {x} vs rerun {y}")
    return diffs


def _no_config(where: Path, config) -> str:
    return (f"the record {where} holds no run config (config: {json.dumps(config)[:40]}): it cannot be rerun; "
            "relaunch its sweep to redo the run (delete the folder first)")


def _unreadable(directory: Path) -> str:
    """Why the record in ``directory`` could not be read, in one line: a record whose config is gone or
    not an object gets :func:`check_config`'s wording, anything else the reader's reason."""
    where = directory / store.RESULT
    try:
        raw = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"the record {where} is unreadable ({e}): rerun the sweep to redo it"
    config = raw.get("config") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and (not isinstance(config, dict) or not config):
        return _no_config(where, config)
    return f"the record {where} is not a valid run record: rerun the sweep to redo it"


def rerun(results: str | Path, rid: str) -> int:
    from mixsweep.sweeping.execute import _dispatch

    directory = find_run(results, rid)
    record = store.read_record(directory)
    if record is None:
        raise UserError(_unreadable(directory))
    check_config(record, directory)
    from mixsweep.config import schema

    # the boundary of a rerun: the stored config parsed once (a record from before the schema: 0 meant "off");
    # a bar on a terminal, else a line every ~30 s (progress is not part of the run id)
    run = dataclasses.replace(schema.parsed(schema.upgraded(record.config)), progress=True)
    what = f"{record.run_id} ({record.task} {record.label} seed {record.seed})"
    print(f"rerunning {what} from {directory}", flush=True)
    try:
        out = _dispatch(run)
    except UserError:
        raise  # bad input on this machine (data, model, device): one line, exit 2
    except Exception as e:  # noqa: BLE001 - the run's own failure is the rerun's answer, not a traceback
        return _failed(record, e)
    diffs = compare(record.final, out.get("final", {}))
    curve_same = [e["metrics"] for e in record.eval_curve] == [e["metrics"] for e in out.get("eval_curve", [])]
    print(f"run {what}: stored status {record.status}, rerun status {out['status']}")
    if not diffs and curve_same and record.status == out["status"]:
        print("metrics match exactly (final metrics and the whole eval curve)")
        return 0
    for line in diffs:
        print("  differs: " + line)
    if not curve_same:
        print("  the eval curves differ")
    print("metrics do NOT match (expected across devices or with nondeterministic GPU kernels)")
    return 1


def _failed(record: RunRecord, e: Exception) -> int:
    """Exit status 1 and one line for a rerun whose run raised (its traceback with --debug)."""
    import os
    import sys
    import traceback

    if os.environ.get("MIXSWEEP_DEBUG") == "1":
        traceback.print_exc()
    error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
    stored = (record.error or "").splitlines()[0] if record.error else ""
    same = " as the stored run did" if record.status == "failed" and stored == error else \
        f" (the stored run: {record.status}{', ' + stored if stored else ''})"
    sys.stdout.flush()
    print(f"mixsweep: the rerun of run {record.run_id} failed{same}: {error}; rerun with --debug for the "
          "traceback", file=sys.stderr, flush=True)
    return 1
