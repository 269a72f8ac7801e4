"""Analysis at scale: load, aggregate and report 10,000 synthetic run records.

Writes the records as result.json files in a temp dir (4 tasks x 10 cells x 250 seeds, 8 eval
points each), then times each phase; load and aggregate are repeated and the median is shown.
Target: load + aggregate + report (with figures) <= 10 s on the 2-core dev machine.

    .venv/bin/python benchmarks/bench_analysis.py [--records 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from mixsweep.analysis.cells import aggregate, compare_with_paper  # noqa: E402
from mixsweep.analysis.failures import DEFINITIONS  # noqa: E402
from mixsweep.analysis.load import load_results  # noqa: E402
from mixsweep.analysis.naming import PAPER_ORDER  # noqa: E402
from mixsweep.analysis.report import build_report  # noqa: E402
from mixsweep.analysis.synthetic import text_task_record  # noqa: E402
from mixsweep.store import runs as store  # noqa: E402

TASKS = ("rte", "mrpc", "cola", "stsb")
LABELS = (*PAPER_ORDER, "none", "dropout(0.3)", "mixout(w_pre,0.3)", "mixout(w_pre,0.8)", "mixout(w_pre,0.9)",
          "wdecay(w_pre,0.04)")
TARGET_S = 10.0


def write_plain(records, root: str) -> None:
    """Setup only: plain writes, because per-file fsync (the store's atomic writes) is slow and not measured."""
    views: dict[str, list[dict]] = {}
    for r in records:
        path = store.run_dir(root, r.run_id) / store.RESULT
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r.to_dict()))
        views.setdefault(r.sweep, []).append({"run_id": r.run_id, "task": r.task, "cell": r.cell})
    for sweep, entries in views.items():
        store.add_to_view(root, sweep, entries)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    seeds = max(1, args.records // (len(TASKS) * len(LABELS)))
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        records = [text_task_record(t, lab, s, "bench", rng, n_evals=8) for t in TASKS for lab in LABELS
                   for s in range(seeds)]
        n = len(records)
        _, t_write = timed(lambda: write_plain(records, tmp))
        loads, aggs = [], []
        for _ in range(args.repeats):
            table, t = timed(lambda: load_results(tmp, "bench"))
            loads.append(t)
            runs = table.runs
            _, t = timed(lambda: compare_with_paper(aggregate(runs, "final", DEFINITIONS)))  # noqa: B023
            aggs.append(t)
        out = Path(tmp) / "bench"
        report, t_report = timed(lambda: build_report(table, out, "bench", figures=True))
        _, t_tables = timed(lambda: build_report(table, out, "bench", figures=False))
    load_s, agg_s = statistics.median(loads), statistics.median(aggs)
    total = load_s + agg_s + t_report
    print(f"records: {n} ({len(TASKS)} tasks x {len(LABELS)} cells x {seeds} seeds), written in {t_write:.1f} s")
    print(f"load       {load_s:6.2f} s  (median of {args.repeats}; {n / load_s:,.0f} records/s)")
    print(f"aggregate  {agg_s:6.2f} s  (median of {args.repeats}; 3 failure definitions + paper join)")
    print(f"report     {t_report:6.2f} s  ({len(report.figures)} figures, PNG+PDF; tables only: {t_tables:.2f} s)")
    print(f"total      {total:6.2f} s  (target <= {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
