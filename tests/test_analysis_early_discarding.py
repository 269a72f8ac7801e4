"""Early discarding (issue 31, item 6; Dodge et al. 2020): the early score, its ROC AUC for a final failure,
and the expected best of start-N-keep-k against equal-compute full restarts, on tiny curves worked by hand.

Four restarts, evaluations at steps 10, 20, 30, 40 (T = 40), majority 50 (failed: final <= 50):

    restart   step 10  20  30  40   failed
    A              50  50  50  50   yes (never left the majority answer)
    B              55  60  70  75   no
    C              50  58  65  70   no
    D              60  62  55  50   yes (looked best early, collapsed)
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mixsweep.analysis.early_discarding import (
    auc,
    auc_ci,
    early_discarding_tables,
    early_frame,
    early_score,
    equal_compute_restarts,
    expected_best_discarding,
    expected_best_full,
)
from mixsweep.analysis.load import load_results
from mixsweep.analysis.stats import expected_max
from mixsweep.analysis.synthetic import write_records
from mixsweep.records import RunRecord

CURVES = {"A": [50, 50, 50, 50], "B": [55, 60, 70, 75], "C": [50, 58, 65, 70], "D": [60, 62, 55, 50]}


def curve(scores):
    return [{"step": 10 * (i + 1), "epoch": i + 1, "metrics": {"accuracy": float(s)}} for i, s in enumerate(scores)]


def test_early_score_is_the_last_evaluation_at_or_before_f_of_training():
    """f = 0.5: 0.5·40 = 20 -> step 20; f = 0.25: 10 -> step 10; f = 0.6: 24 -> step 20; f = 0.1: 4 -> none."""
    c = curve(CURVES["B"])
    assert early_score(c, "accuracy", 0.5) == 60
    assert early_score(c, "accuracy", 0.25) == 55
    assert early_score(c, "accuracy", 0.6) == 60
    assert math.isnan(early_score(c, "accuracy", 0.1))


def test_auc_by_hand():
    """At f = 0.5 the early scores are A 50, B 60, C 58, D 62; failed A, D. Pairs (failed, ok):
    (A 50, B 60) 1, (A 50, C 58) 1, (D 62, B 60) 0, (D 62, C 58) 0 -> AUC 2/4 = 0.5.
    At f = 0.25: A 50, B 55, C 50, D 60: (A, B) 1, (A, C) tie ½, (D, B) 0, (D, C) 0 -> 1.5/4 = 0.375."""
    failed = [True, False, False, True]
    assert auc(failed, [50, 60, 58, 62]) == pytest.approx(0.5)
    assert auc(failed, [50, 55, 50, 60]) == pytest.approx(0.375)
    assert math.isnan(auc([True, True], [1.0, 2.0]))


def test_auc_agrees_with_sklearn_on_random_scores():
    rng = np.random.default_rng(3)
    failed = rng.random(40) < 0.4
    early = np.round(rng.normal(60, 5, 40))  # rounded: ties occur
    assert auc(failed, early) == pytest.approx(roc_auc_score(failed, -early))


def test_auc_ci_of_a_perfect_separation_is_one():
    """Failed restarts all below the others: every resample holding both classes has AUC 1."""
    lo, hi = auc_ci([True, True, False, False, False], [50, 51, 60, 61, 62], n_boot=200, seed=1)
    assert (lo, hi) == (1.0, 1.0)
    assert all(math.isnan(x) for x in auc_ci([True, True], [1.0, 2.0]))  # one class: no AUC


def test_equal_compute():
    """N·f + k·(1 - f): 4·0.5 + 1·0.5 = 2.5 -> 2; 8·0.1 + 1·0.9 = 1.7 -> 1; 8·0.25 + 2·0.75 = 3.5 -> 3;
    4·0.5 + 2·0.5 = 3 -> 3 (exactly, not 2.999...)."""
    assert [equal_compute_restarts(*a) for a in [(4, 1, 0.5), (8, 1, 0.1), (8, 2, 0.25), (4, 2, 0.5)]] == [2, 1, 3, 3]


def test_start_4_keep_1_at_half_by_hand():
    """Sorted by the early score at f = 0.5 (ascending): A 50 (final 50), C 58 (70), B 60 (75), D 62 (50).
    Four draws with replacement; the kept one is the draw with the highest early score, restart i (of 4 in
    that order) with probability (i/4)^4 - ((i-1)/4)^4 = 1/256, 15/256, 65/256, 175/256, so
    E = (50·1 + 70·15 + 75·65 + 50·175) / 256 = 14725/256 = 57.51953125.
    The same compute (2.5 run lengths) buys m = 2 full restarts; finals sorted 50, 50, 70, 75, P(max <= v_i) =
    (i/4)^2: weights 1, 3, 5, 7 (/16): E = (50 + 150 + 350 + 525)/16 = 1075/16 = 67.1875. Here discarding loses:
    D looks best at half-time and collapses."""
    early = [50, 60, 58, 62]
    final = [50, 75, 70, 50]
    assert expected_best_discarding(early, final, 4, 1) == pytest.approx(14725 / 256)
    assert expected_best_full(final, 2) == pytest.approx(1075 / 16)


def _brute_discarding(early, final, n_start, keep):
    """Independent: every ordered draw of n_start restarts (R^N, equally likely), and for each every order of
    the draws as the tie-breaker (all N! equally likely), keep the first ``keep`` by (-early, tie order)."""
    total, count = 0.0, 0
    for draw in itertools.product(range(len(early)), repeat=n_start):
        for order in itertools.permutations(range(n_start)):
            ranked = sorted(range(n_start), key=lambda j: (-early[draw[j]], order[j]))
            total += max(final[draw[j]] for j in ranked[:keep])
            count += 1
    return total / count


@pytest.mark.parametrize(("n_start", "keep"), [(3, 1), (3, 2), (4, 2)])
def test_exact_discarding_with_ties_matches_a_brute_force_enumeration(n_start, keep):
    early = [50.0, 50.0, 58.0, 62.0]  # a tie at the bottom, where the cut often falls
    final = [50.0, 71.0, 70.0, 52.0]
    assert expected_best_discarding(early, final, n_start, keep) == pytest.approx(
        _brute_discarding(early, final, n_start, keep), abs=1e-12)


def test_keeping_all_is_the_expected_max():
    """k = N continues every restart: the expected best of N (stats.expected_max)."""
    early, final = [50.0, 60.0, 58.0, 62.0, 55.0], [50.0, 75.0, 70.0, 50.0, 64.0]
    assert expected_best_discarding(early, final, 3, 3) == pytest.approx(expected_max(final, [3])[0][0])


def _record(name, seed):
    scores = CURVES[name]
    return RunRecord(run_id=f"cell-{name}", sweep="early", task="rt_polarity", cell="cell", label="cell",
                     seed=seed, status="ok", headline="accuracy", final={"accuracy": float(scores[-1])},
                     eval_curve=curve(scores), majority={"accuracy": 50.0})


def test_tables_from_records(tmp_path):
    """The four restarts as run records: at f = 0.5, 4 restarts, 2 failed, AUC 0.5; start 4 keep 1 gives the
    hand-worked 57.52 against 67.19 for m = 2; at f = 0.1 there is no evaluation that early (n = 0)."""
    write_records([_record(n, i) for i, n in enumerate("ABCD")], tmp_path)
    table = load_results(tmp_path, "early")
    aucs, best = early_discarding_tables(table.runs, table.records, [0.1, 0.5], [4], [1], n_boot=50)
    half = aucs[aucs["fraction"] == 0.5].iloc[0]
    assert (half["n"], half["failed"], half["auc"]) == (4, 2, pytest.approx(0.5))
    assert aucs[aucs["fraction"] == 0.1].iloc[0]["n"] == 0
    row = best[best["fraction"] == 0.5].iloc[0]
    assert row["m"] == 2 and row["compute"] == pytest.approx(2.5)
    assert row["discarding"] == pytest.approx(14725 / 256) and row["full"] == pytest.approx(1075 / 16)
    assert row["difference"] == pytest.approx(14725 / 256 - 1075 / 16)


def test_a_run_that_diverged_is_read_on_its_cells_clock(tmp_path):
    """B ran to step 40; E diverged after its evaluation at step 20 (curve 50, 52). At f = 0.5 the cell's T is
    40, so E's early score is its step-20 value 52 (on its own clock, T = 20, it would be step 10's 50)."""
    diverged = RunRecord(run_id="cell-E", sweep="early", task="rt_polarity", cell="cell", label="cell", seed=9,
                         status="diverged", headline="accuracy", eval_curve=curve([50, 52]),
                         majority={"accuracy": 50.0})
    write_records([_record("B", 0), diverged], tmp_path)
    table = load_results(tmp_path, "early")
    frame = early_frame(table.runs, table.records, [0.5]).set_index("run_id")
    assert frame.loc["cell-E", "early_0.5"] == 52 and frame.loc["cell-B", "early_0.5"] == 60
    assert early_score(curve([50, 52]), "accuracy", 0.5) == 50  # its own clock
