"""The testbed calibration (issue 31): the per-regime table, the rule that picks the regime, and the
published calibration's provenance (the rule was committed before any calibration run).

Expected values are worked out by hand from the small tables below.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from mixsweep.analysis.calibration import choose_regime, qualification, regime_table, rule_fingerprint
from mixsweep.analysis.load import records_frame
from mixsweep.records import RunRecord

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "docs" / "testbed" / "calibration.csv"
PUBLISHED_RUNS = ROOT / "docs" / "testbed" / "calibration_runs.csv"


def _row(regime="r", rate=0.5, gap=12.0, change=0.4, spread=2.0, rerun=math.nan, again=math.nan,
         steps=64, failed=5, restarts=10):
    return {"regime": regime, "failure_rate": rate, "gap": gap, "last_change": change, "spread_ok": spread,
            "rerun": rerun, "rerun_failed": again, "steps": steps, "failed": failed, "restarts": restarts}


# -- the four criteria ----------------------------------------------------------------------------------

def test_the_band_includes_its_bounds_and_excludes_what_lies_outside():
    assert qualification(_row(rate=0.2))["band"] and qualification(_row(rate=0.8))["band"]
    assert not qualification(_row(rate=0.1))["band"] and not qualification(_row(rate=0.9))["band"]


def test_the_gap_is_ten_points_over_the_majority_inclusive():
    assert qualification(_row(gap=10.0))["gap"] and not qualification(_row(gap=9.9))["gap"]
    assert not qualification(_row(gap=math.nan))["gap"]  # no restart left the majority answer


def test_plateau_compares_the_last_change_with_the_spread_of_the_good_restarts():
    assert qualification(_row(change=2.0, spread=2.0))["plateau"]
    assert not qualification(_row(change=2.4, spread=2.0))["plateau"]


def test_stays_failed_needs_three_quarters_of_the_reruns_and_is_unknown_before_them():
    assert qualification(_row())["stays_failed"] is None
    assert qualification(_row(rerun=4, again=3))["stays_failed"] is True      # 3/4 = 75%
    assert qualification(_row(rerun=5, again=3))["stays_failed"] is False     # 3/5 = 60%


# -- the choice -----------------------------------------------------------------------------------------

def test_among_qualifying_regimes_the_failure_rate_closest_to_half_wins():
    table = pd.DataFrame([
        _row("a", rate=0.3, failed=3, rerun=3, again=3),
        _row("b", rate=0.6, failed=6, rerun=6, again=5),     # |0.6 − 0.5| = 0.1 < 0.2
        _row("c", rate=0.5, failed=5, gap=9.0, rerun=5, again=5),  # closest, but its gap fails
    ])
    choice = choose_regime(table)
    assert (choice.regime, choice.qualified) == ("b", True)


def test_a_tie_in_rate_goes_to_fewer_updates_then_the_larger_gap():
    table = pd.DataFrame([
        _row("long", rate=0.4, steps=128, gap=20.0, rerun=4, again=4),
        _row("short_small_gap", rate=0.6, steps=64, gap=11.0, rerun=6, again=6),
        _row("short_large_gap", rate=0.4, steps=64, gap=15.0, rerun=4, again=4),
    ])
    assert choose_regime(table).regime == "short_large_gap"


def test_with_no_qualifying_regime_the_closest_is_named_as_a_negative_result():
    table = pd.DataFrame([
        _row("two", rate=0.9, failed=9, gap=15.0),                      # gap, plateau: 2 criteria
        _row("three", rate=0.7, failed=7, rerun=7, again=2),            # band, gap, plateau; reruns learn
        _row("three_far", rate=0.2, failed=2, rerun=2, again=0),        # also 3, but farther from 50%
    ])
    choice = choose_regime(table)
    assert (choice.regime, choice.qualified) == ("three", False)
    assert "stays_failed" in choice.reason and "3 of 4" in choice.reason


def test_an_empty_calibration_picks_nothing():
    assert choose_regime(pd.DataFrame()).regime is None


# -- the per-regime table -------------------------------------------------------------------------------

def _record(cell: str, seed: int, curve: list[float], n=256, b=16, epochs=4, lr=2e-4, warmup=0.1,
            wall=10.0) -> RunRecord:
    config = {"data": {"train_size": n}, "train": {"batch_size": b, "epochs": epochs, "warmup_ratio": warmup},
              "optimizer": {"name": "bertadam", "lr": lr}, "regularizer": {"dropout": {"p": 0.1}},
              "task": {"name": "rt_polarity"}}
    points = [{"step": 4 * (i + 1), "epoch": 0.0, "metrics": {"accuracy": s}} for i, s in enumerate(curve)]
    return RunRecord(run_id=f"{cell}-{seed}", sweep="testbed_calibration", task="rt_polarity", cell=cell,
                     label="dropout(0.1)", seed=seed, status="ok", headline="accuracy",
                     final={"accuracy": curve[-1]}, majority={"accuracy": 56.0}, times={"total_s": wall},
                     eval_curve=points, config=config)


def test_regime_table_by_hand():
    records = [
        # 250 examples at batch 16: ceil(250/16) = 16 updates per epoch, 4 epochs -> 64 steps
        _record("r", 0, [56.0, 56.0], n=250, wall=10.0),   # = majority: failed
        _record("r", 1, [70.0, 72.0], n=250, wall=12.0),   # last change 2
        _record("r", 2, [55.0, 50.0], n=250, wall=14.0),   # below majority: failed
        _record("r", 3, [79.0, 80.0], n=250, wall=16.0),   # last change 1
        _record("s", 0, [60.0, 60.0], wall=30.0),
    ]
    reruns = [_record("r_x2", 0, [57.0, 56.0], epochs=8), _record("r_x2", 2, [60.0, 70.0], epochs=8)]
    table = regime_table(records_frame(records), records, records_frame(reruns)).set_index("regime")
    r = table.loc["r"]
    assert (r["steps"], r["restarts"], r["failed"], r["failed_seeds"]) == (64, 4, 2, "0 2")
    assert r["failure_rate"] == pytest.approx(0.5)
    assert r["mean"] == pytest.approx(64.5)                 # (56 + 72 + 50 + 80) / 4
    assert r["median_ok"] == pytest.approx(76.0)            # median(72, 80)
    assert r["gap"] == pytest.approx(20.0)                  # 76 − 56
    assert r["last_change"] == pytest.approx(1.5)           # median(2, 1)
    assert r["spread_ok"] == pytest.approx(4.0)             # population std of (72, 80)
    assert r["wall_s"] == pytest.approx(13.0)
    assert (r["rerun"], r["rerun_failed"]) == (2, 1)        # seed 0 fails again at 56; seed 2 reaches 70
    q = qualification(r)
    assert q == {"band": True, "gap": True, "plateau": True, "stays_failed": False}   # 1/2 < 75%
    s = table.loc["s"]
    assert s["failed"] == 0 and math.isnan(s["rerun"]) and s["last_change"] == 0.0


# -- the published calibration ----------------------------------------------------------------------------

def _published() -> pd.DataFrame:
    if not PUBLISHED.exists() or "rule_commit" not in pd.read_csv(PUBLISHED, nrows=0).columns:
        pytest.skip("the issue-31 calibration is not published yet (docs/testbed/calibration.csv)")
    return pd.read_csv(PUBLISHED)


def _git(*args: str) -> str:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"], capture_output=True,
                      text=True).stdout.strip() != "false":
        pytest.skip("a shallow clone has no history to check the rule's commit against")
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_no_calibration_record_predates_the_commit_that_states_the_rule():
    table = _published()
    sha = str(table["rule_commit"].iloc[0])
    committed = pd.Timestamp(_git("show", "-s", "--format=%cI", sha).strip())
    runs = pd.read_csv(PUBLISHED_RUNS)
    created = pd.to_datetime(runs["created"], utc=True, format="ISO8601")
    assert len(runs) >= int(table["restarts"].sum())
    early = runs[created <= committed]
    assert early.empty, f"{len(early)} calibration run(s) started before the rule's commit {sha[:12]}"


def test_the_rule_has_not_changed_since_the_calibration_ran():
    table = _published()
    sha = str(table["rule_commit"].iloc[0])
    then = _git("show", f"{sha}:src/mixsweep/analysis/calibration.py")
    now = (ROOT / "src" / "mixsweep" / "analysis" / "calibration.py").read_text(encoding="utf-8")
    assert rule_fingerprint(then) == rule_fingerprint(now)


def test_reapplying_the_rule_to_the_published_table_picks_the_published_regime():
    table = _published()
    chosen = table.loc[table["chosen"].fillna("") == "◀", "regime"].tolist()
    assert choose_regime(table.drop(columns=["chosen"])).regime == (chosen[0] if chosen else None)
