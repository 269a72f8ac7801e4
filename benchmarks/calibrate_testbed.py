"""Calibrate the offline testbed (issue 31): which regime, if any, shows the papers' failure.

Runs (or resumes) the calibration study ``sweeps/testbed_calibration.yaml`` (the Devlin baseline on
MiniLM-L6 and rt_polarity, 10 restarts per regime); reruns, at twice the updates and with the same seed,
the failed restarts of every regime that meets the rule's first three criteria
(``sweeps/testbed_calibration_x2.yaml``); then writes the per-regime table, the criteria each regime
meets, and the regime the rule picks (:mod:`mixsweep.analysis.calibration`, committed before any run).
The output names the commit that stated the rule: the oldest commit whose
``src/mixsweep/analysis/calibration.py`` has the rule's current fingerprint.

    .venv/bin/python benchmarks/calibrate_testbed.py                      # run, rerun, then tabulate
    .venv/bin/python benchmarks/calibrate_testbed.py --no-run --out docs/testbed
    make calibrate                                                          # the same, 2 workers, --out docs/testbed

Progress is the sweeps' own (one line per finished run); the table goes to stdout and, with ``--out``,
to ``calibration.md``, ``calibration.csv`` (per regime) and ``calibration_runs.csv`` (per run) there.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from mixsweep.analysis.calibration import (
    CRITERIA,
    HIGH,
    LOW,
    MIN_GAP,
    MIN_STAY,
    choose_regime,
    needs_rerun,
    qualification,
    regime_table,
    rule_fingerprint,
)
from mixsweep.analysis.failures import MAJORITY, failure_mask
from mixsweep.analysis.load import load_results
from mixsweep.analysis.tables import render
from mixsweep.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
STUDY, RERUN = "testbed_calibration", "testbed_calibration_x2"
RULE_FILE = "src/mixsweep/analysis/calibration.py"


def study_cells(study: str) -> list[str]:
    """The cell names the study file declares now (older cells of the same study name are ignored)."""
    cfg = OmegaConf.load(ROOT / "sweeps" / f"{study}.yaml")
    return [str(c) for c in cfg.hydra.sweeper.cells]


def launch(study: str, results: str, workers: int, extra: list[str]) -> float:
    """Run (or resume) a study; returns its wall time in seconds."""
    cmd = [sys.executable, "-m", "mixsweep", "sweep", "--sweep", study, "--results", results, "--no-summary", *extra]
    if workers > 1:
        cmd += ["--launcher", "joblib", "--workers", str(workers)]
    start = time.perf_counter()
    code = subprocess.call(cmd)
    if code != 0:
        sys.exit(code)
    return time.perf_counter() - start


def load(study: str, results: str):
    """The study's runs in its current cells, and their records; nothing yet: empty."""
    try:
        loaded = load_results(results, study)
    except UserError:  # no run of this study in the store yet
        return pd.DataFrame(columns=["cell", "seed", "run_id"]), []
    cells = study_cells(study)
    keep = loaded.runs["cell"].isin(cells) if not loaded.runs.empty else []
    runs = loaded.runs[keep].reset_index(drop=True) if len(keep) else loaded.runs
    ids = set(runs["run_id"]) if not runs.empty else set()
    return runs, [r for r in loaded.records if r.run_id in ids]


def failed_reruns(table: pd.DataFrame, reruns: pd.DataFrame) -> pd.DataFrame:
    """Only the x2 runs of a regime's failed seeds count (the x2 study run whole would hold more)."""
    if reruns.empty:
        return reruns
    wanted = {(f"{r['regime']}_x2", int(s)) for _, r in table.iterrows() for s in str(r["failed_seeds"]).split()}
    mask = [(c, int(s)) in wanted for c, s in zip(reruns["cell"], reruns["seed"], strict=True)]
    return reruns[mask].reset_index(drop=True)


def rule_commit() -> tuple[str, str]:
    """(sha, committer time ISO) of the oldest commit whose rule file has the current rule's fingerprint."""
    now = rule_fingerprint((ROOT / RULE_FILE).read_text(encoding="utf-8"))
    log = subprocess.run(["git", "-C", str(ROOT), "log", "--reverse", "--format=%H %cI", "--", RULE_FILE],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    found: tuple[str, str] | None = None
    for line in filter(None, log):
        sha, when = line.split()
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{sha}:{RULE_FILE}"], capture_output=True,
                              text=True).stdout
        same = bool(text) and rule_fingerprint(text) == now
        if same and found is None:
            found = (sha, when)
        elif not same:
            found = None  # the rule changed after that commit: the latest unbroken stretch counts
    if found is None:
        sys.exit(f"calibrate_testbed: the rule in {RULE_FILE} is not committed: commit it before any calibration run")
    return found


def runs_table(runs: pd.DataFrame, records, budget: str) -> pd.DataFrame:
    by_id = {r.run_id: r for r in records}
    failed = failure_mask(runs, MAJORITY.name).fillna(True) if not runs.empty else pd.Series(dtype=bool)
    return pd.DataFrame([{
        "regime": str(row["cell"]).removesuffix("_x2"), "budget": budget, "seed": int(row["seed"]),
        "final": row["final_score"], "majority": row["majority_score"], "failed": bool(failed.loc[i]),
        "created": by_id[row["run_id"]].created,
        "commit": ((by_id[row["run_id"]].env or {}).get("git") or {}).get("commit"),
        "run_id": row["run_id"]} for i, row in runs.iterrows()])


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.drop(columns=["failed_seeds"]).copy()
    shown["lr"] = shown["lr"].map(lambda v: f"{v:g}")
    shown["failure_rate"] = shown["failure_rate"].map(lambda v: f"{v:.0%}")
    for col, digits in (("mean", 1), ("std", 2), ("min", 1), ("max", 1), ("majority", 1), ("median_ok", 1),
                        ("gap", 1), ("last_change", 2), ("spread_ok", 2), ("wall_s", 1)):
        shown[col] = shown[col].map(lambda v, d=digits: "–" if not math.isfinite(v) else f"{v:.{d}f}")
    for col in ("rerun", "rerun_failed"):
        shown[col] = shown[col].map(lambda v: "–" if not math.isfinite(v) else f"{int(v)}")
    return shown.astype(str)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="results store (default: results)")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (joblib); 1 = one after another")
    p.add_argument("--no-run", action="store_true", help="only tabulate the runs already stored")
    p.add_argument("--out", help="folder for calibration.md, calibration.csv and calibration_runs.csv")
    args = p.parse_args()

    sha, when = rule_commit()
    print(f"calibrate_testbed: the rule is the one committed in {sha[:12]} ({when})", flush=True)
    wall = 0.0
    if not args.no_run:
        wall += launch(STUDY, args.results, args.workers, [])
    runs, records = load(STUDY, args.results)
    if runs.empty:
        print(f"calibrate_testbed: no run of {STUDY} in {args.results} yet: run it (make calibrate)")
        return
    table = regime_table(runs, records)
    for _, row in table.iterrows():
        seeds = str(row["failed_seeds"]).split()
        if not args.no_run and seeds and needs_rerun(row):
            print(f"calibrate_testbed: {row['regime']} meets band, gap and plateau: rerunning its "
                  f"{len(seeds)} failed restart(s) at twice the updates", flush=True)
            wall += launch(RERUN, args.results, args.workers,
                           ["--cells", f"{row['regime']}_x2", f'hydra.sweeper.params.seed="{",".join(seeds)}"'])
    reruns, rerun_records = load(RERUN, args.results)
    reruns = failed_reruns(table, reruns)
    table = regime_table(runs, records, reruns)
    marks = [qualification(r) for _, r in table.iterrows()]
    for k in CRITERIA:  # "<criterion>?" beside the numbers it reads (the rule reads "gap", the number)
        table[f"{k}?"] = ["–" if m[k] is None else ("yes" if m[k] else "no") for m in marks]
    choice = choose_regime(table)
    table.insert(0, "chosen", ["◀" if r == choice.regime else "" for r in table["regime"]])
    per_run = pd.concat([runs_table(runs, records, "x1"), runs_table(reruns, rerun_records, "x2")],
                        ignore_index=True)
    lines = [
        "Calibration of the testbed (issue 31): the Devlin baseline (dropout 0.1 + decoupled wdecay(0, 0.01), "
        "BERTAdam) on MiniLM-L6, rt_polarity (dev 250, max_length 64), "
        f"{int(table['restarts'].max()) if len(table) else 0} restarts per regime, 16 evaluations per run.",
        f"Rule (code in `{RULE_FILE}`), committed in {sha} ({when}), before any calibration run:",
        f"band: failure rate in {LOW:.0%}–{HIGH:.0%}; gap: median of the non-failed restarts >= majority + "
        f"{MIN_GAP:g} points; plateau: their median last change <= their std; stays_failed: >= {MIN_STAY:.0%} "
        "of the failed restarts fail again at twice the updates.",
        "Failure: final dev accuracy <= the dev set's majority-class accuracy. wall_s: mean seconds per run, "
        "as launched (2 parallel workers, other jobs on the machine).",
        "",
        render(formatted(table), "md").rstrip(),
        "",
        f"{'Chosen' if choice.qualified else 'No regime qualifies; closest'}: **{choice.regime}**: {choice.reason}.",
    ]
    if wall:
        lines.append(f"Calibration wall time of this invocation: {wall / 60:.1f} min with {args.workers} worker(s).")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.md").write_text(text, encoding="utf-8")
        table.assign(rule_commit=sha, rule_time=when).to_csv(out / "calibration.csv", index=False)
        per_run.to_csv(out / "calibration_runs.csv", index=False)
        print(f"wrote {out / 'calibration.md'}, {out / 'calibration.csv'} and {out / 'calibration_runs.csv'}")


if __name__ == "__main__":
    main()
