"""Calibrate the offline testbed (issue 23): how often the Devlin baseline fails in each regime.

Runs (or resumes) the calibration study ``sweeps/testbed_calibration.yaml`` -- the baseline on
MiniLM-L6 and rt_polarity over a grid of train size, batch, epochs and learning rate, 10 restarts
each -- then writes, per regime, the failure rate (the report's default: final dev accuracy <= the
majority class), mean, std, min, max and wall time per run, and names the regime that the rule
stated in that file (before any run) picks: :func:`mixsweep.analysis.calibration.choose_regime`.

    .venv/bin/python benchmarks/calibrate_testbed.py                      # run, then tabulate
    .venv/bin/python benchmarks/calibrate_testbed.py --no-run --out docs/testbed
    make calibrate                                                          # the same, 2 workers

Progress is the sweep's own (one line per finished run); the table goes to stdout and, with
``--out``, to ``calibration.md`` and ``calibration.csv`` there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from mixsweep.analysis.calibration import HIGH, LOW, choose_regime, regime_table
from mixsweep.analysis.load import load_results
from mixsweep.analysis.tables import render

STUDY = "testbed_calibration"


def run_study(results: str, workers: int) -> float:
    """Launch (or resume) the calibration study; returns its wall time in seconds."""
    cmd = [sys.executable, "-m", "mixsweep", "sweep", "--sweep", STUDY, "--results", results]
    if workers > 1:
        cmd += ["--launcher", "joblib", "--workers", str(workers)]
    start = time.perf_counter()
    code = subprocess.call(cmd)
    if code != 0:
        sys.exit(code)
    return time.perf_counter() - start


def formatted(table):
    shown = table.copy()
    shown["lr"] = shown["lr"].map(lambda v: f"{v:g}")
    shown["failure_rate"] = shown["failure_rate"].map(lambda v: f"{v:.0%}")
    for col, digits in (("mean", 1), ("std", 2), ("min", 1), ("max", 1)):
        shown[col] = shown[col].map(lambda v, d=digits: f"{v:.{d}f}")
    shown["wall_s"] = shown["wall_s"].map(lambda v: f"{v:.1f}")
    return shown.astype(str)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="results store (default: results)")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (joblib); 1 = one after another")
    p.add_argument("--no-run", action="store_true", help="only tabulate the runs already stored")
    p.add_argument("--out", help="folder for calibration.md and calibration.csv")
    args = p.parse_args()

    wall = None if args.no_run else run_study(args.results, args.workers)
    loaded = load_results(args.results, STUDY)
    table = regime_table(loaded.runs, loaded.records)
    choice = choose_regime(table)
    table.insert(0, "chosen", ["◀" if r == choice.regime else "" for r in table["regime"]])
    lines = [
        f"Calibration of the testbed: the Devlin baseline (BERTAdam) on MiniLM-L6, rt_polarity "
        f"(dev 250, max_length 64), {int(table['restarts'].max())} restarts per regime.",
        f"Failure: final dev accuracy <= the dev set's majority-class accuracy. Band: {LOW:.0%}–{HIGH:.0%}.",
        "wall_s: mean seconds per run (training + dev evaluations), measured with the runs as launched.",
        "",
        render(formatted(table), "md").rstrip(),
        "",
        f"Chosen: **{choice.regime}**: {choice.reason}.",
    ]
    if wall is not None:
        lines.append(f"Calibration wall time: {wall / 60:.1f} min with {args.workers} worker(s).")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.md").write_text(text)
        table.to_csv(out / "calibration.csv", index=False)
        print(f"wrote {out / 'calibration.md'} and {out / 'calibration.csv'}")


if __name__ == "__main__":
    main()
