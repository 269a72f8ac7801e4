"""The testbed calibration: the per-regime table and the rule that picks the regime (issue 23).

Expected values are worked out by hand from the small tables below.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mixsweep.analysis.calibration import choose_regime, regime_table
from mixsweep.analysis.load import records_frame
from mixsweep.records import RunRecord


def _table(rows):
    return pd.DataFrame(rows, columns=["regime", "failure_rate", "failed", "restarts", "wall_s", "std"])


def test_the_cheapest_regime_in_the_band_wins_and_a_tie_goes_to_the_larger_std():
    table = _table([
        ("rare", 0.1, 1, 10, 5.0, 9.0),       # out of the band: too few failures, even if cheapest
        ("slow", 0.5, 5, 10, 30.0, 9.0),
        ("b_small_std", 0.3, 3, 10, 20.0, 2.0),
        ("c_large_std", 0.8, 8, 10, 20.0, 5.0),  # 80% is inside the band (bounds included)
        ("always", 0.9, 9, 10, 1.0, 1.0),
    ])
    assert choose_regime(table).regime == "c_large_std"


def test_band_bounds_are_inclusive_at_20_percent():
    table = _table([("a", 0.2, 2, 10, 10.0, 1.0), ("b", 0.5, 5, 10, 11.0, 1.0)])
    assert choose_regime(table).regime == "a"


def test_without_a_regime_in_the_band_the_largest_spread_is_chosen():
    table = _table([("never", 0.0, 0, 10, 5.0, 1.5), ("wide", 0.1, 1, 10, 50.0, 7.25),
                    ("always", 1.0, 10, 10, 2.0, 0.0)])
    choice = choose_regime(table)
    assert choice.regime == "wide"
    assert "no regime" in choice.reason and "7.25" in choice.reason


def _record(cell: str, seed: int, score: float, n: int, b: int, epochs: int, lr: float, wall: float) -> RunRecord:
    config = {"data": {"train_size": n}, "train": {"batch_size": b, "epochs": epochs},
              "optimizer": {"name": "bertadam", "lr": lr}, "regularizer": {"dropout": {"p": 0.1}},
              "task": {"name": "rt_polarity"}}
    return RunRecord(run_id=f"{cell}-{seed}", sweep="testbed_calibration", task="rt_polarity", cell=cell,
                     label="dropout(0.1)", seed=seed, status="ok", headline="accuracy",
                     final={"accuracy": score}, majority={"accuracy": 56.0}, times={"total_s": wall},
                     config=config)


def test_regime_table_counts_majority_failures_and_averages_by_hand():
    records = [
        # 130 examples at batch 16: ceil(130/16) = 9 updates per epoch, 2 epochs -> 18 steps
        _record("small", 0, 56.0, 130, 16, 2, 5e-5, 10.0),  # = majority: failed
        _record("small", 1, 70.0, 130, 16, 2, 5e-5, 12.0),
        _record("small", 2, 50.0, 130, 16, 2, 5e-5, 14.0),  # below majority: failed
        _record("small", 3, 80.0, 130, 16, 2, 5e-5, 16.0),
        _record("big", 0, 60.0, 256, 32, 3, 2e-5, 30.0),
        _record("big", 1, 62.0, 256, 32, 3, 2e-5, 32.0),
    ]
    table = regime_table(records_frame(records), records).set_index("regime")
    small = table.loc["small"]
    assert small["steps"] == 18 and small["restarts"] == 4 and small["failed"] == 2
    assert small["failure_rate"] == pytest.approx(0.5)
    assert small["mean"] == pytest.approx(64.0)          # (56 + 70 + 50 + 80) / 4
    assert small["std"] == pytest.approx(11.7473401, abs=1e-6)  # sqrt((64+36+196+256)/4) = sqrt(138)
    assert (small["min"], small["max"]) == (50.0, 80.0)
    assert small["wall_s"] == pytest.approx(13.0)
    big = table.loc["big"]
    assert (big["steps"], big["failed"], big["std"], big["lr"]) == (24, 0, 1.0, 2e-5)
