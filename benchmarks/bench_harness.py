"""Harness overhead: wall time of a whole sweep / Σ in-run (train + eval) time.

Everything that is not training or evaluating counts as overhead: composing configs, planning,
loading the pretrained weights, reading and tokenizing data, writing records, progress lines.
Target: ≤ 1.10 on the embedded smoke sweep.

    python benchmarks/bench_harness.py                 # the smoke sweep as shipped (9 runs)
    python benchmarks/bench_harness.py --seeds 1       # quicker: 3 runs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="smoke")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from mixsweep.cli import main as cli
    from mixsweep.store import runs as store

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        argv = ["sweep", "--sweep", args.sweep, "--results", str(results), "--no-summary",
                f"paths.cache={tmp}/cache", *args.overrides]
        if args.seeds:
            argv += ["--seeds", str(args.seeds)]
        t0 = time.perf_counter()
        assert cli(argv) == 0
        wall = time.perf_counter() - t0
        records = [r.to_dict() for r in store.iter_records(results, args.sweep)]
    inside = sum(r["times"].get("train_s", 0.0) + r["times"].get("eval_s", 0.0) for r in records)
    print(f"\nsweep '{args.sweep}': {len(records)} runs")
    print(f"  wall time of the sweep      {wall:8.1f} s")
    print(f"  sum of train + eval time    {inside:8.1f} s")
    print(f"  harness overhead ratio      {wall / inside:8.3f}   (target <= 1.10)")


if __name__ == "__main__":
    main()
