"""Failure kinds (issue 31, item 1): never learned / collapsed / other / unknown, from one run's curves, and
per-cell counts. ln 2 = 0.6931; the band is 0.05 unless a test says otherwise."""

from __future__ import annotations

import math

import pytest

from mixsweep.analysis.failure_kinds import failed_at, failure_kind, kind_counts, quarter_means
from mixsweep.analysis.load import load_results
from mixsweep.analysis.synthetic import write_records
from mixsweep.records import RunRecord


def losses(values, start=1):
    return [{"step": start + i, "loss": v, "task_loss": v} for i, v in enumerate(values)]


def curve(scores, every=2):
    return [{"step": every * (i + 1), "epoch": i + 1, "metrics": {"accuracy": s}} for i, s in enumerate(scores)]


def test_quarters_split_the_logged_steps_by_step_number():
    """T = 10: q·T/4 < s <= (q+1)·T/4 gives {1, 2}, {3, 4, 5}, {6, 7}, {8, 9, 10}; with loss = step the means
    are 1.5, 4, 6.5, 9."""
    assert quarter_means(losses([float(s) for s in range(1, 11)])) == pytest.approx([1.5, 4.0, 6.5, 9.0])


def test_a_step_without_a_finite_task_loss_is_not_read():
    """The diverged step (no task_loss) and a NaN one drop out; T is then 8: quarters {1,2}, {3,4}, ... ."""
    entries = losses([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]) + [{"step": 9, "loss": math.inf}]
    entries[0]["task_loss"] = math.nan
    assert quarter_means(entries) == pytest.approx([1.0, 2.0, 3.0, 4.0])


def test_never_learned_when_every_quarter_stays_in_the_band():
    """Losses 0.69 / 0.70 alternating: every quarter mean 0.695, |0.695 - 0.6931| = 0.002 <= 0.05."""
    run = losses([0.69, 0.70] * 4)
    assert failure_kind(curve([50.0, 50.0]), run, "accuracy", 50.0, 2) == "never_learned"


def test_one_quarter_out_of_the_band_is_not_never_learned():
    """Last quarter (steps 7, 8) at 0.60 and 0.58: mean 0.59, 0.103 below ln 2 > 0.05; evals never above 50:
    other. With the band widened to 0.11 the same run never learned."""
    run = losses([0.69] * 6 + [0.60, 0.58])
    assert failure_kind(curve([49.0, 50.0]), run, "accuracy", 50.0, 2) == "other"
    assert failure_kind(curve([49.0, 50.0]), run, "accuracy", 50.0, 2, band=0.11) == "never_learned"


def test_a_single_step_out_of_the_band_does_not_count_when_its_quarter_mean_stays_in():
    """Steps 7, 8 at 0.76 and 0.64: quarter mean 0.70, in the band."""
    run = losses([0.69] * 6 + [0.76, 0.64])
    assert failure_kind(curve([50.0]), run, "accuracy", 50.0, 2) == "never_learned"


def test_collapsed_when_an_evaluation_was_above_the_threshold():
    """Loss leaves ln 2 (quarters 0.69, 0.45, 0.45, 0.69); evals 50, 70, 50 at threshold 50: 70 > 50."""
    run = losses([0.69, 0.69, 0.5, 0.4, 0.4, 0.5, 0.69, 0.69])
    assert failure_kind(curve([50.0, 70.0, 50.0]), run, "accuracy", 50.0, 2) == "collapsed"
    # at threshold 70 (majority + 20) no evaluation was above it: other
    assert failure_kind(curve([50.0, 70.0, 50.0]), run, "accuracy", 70.0, 2) == "other"


def test_never_learned_is_read_before_collapsed():
    """A loss at ln 2 throughout with one lucky evaluation at 51 > 50 learned nothing: never learned."""
    assert failure_kind(curve([51.0, 50.0]), losses([0.693] * 8), "accuracy", 50.0, 2) == "never_learned"


def test_three_classes_use_ln_3():
    """ln 3 = 1.0986: losses at 1.10 never learned; at 0.69 (ln 2) they are 0.41 away from ln 3."""
    assert failure_kind(curve([33.0]), losses([1.10] * 4), "accuracy", 34.0, 3) == "never_learned"
    assert failure_kind(curve([33.0]), losses([0.69] * 4), "accuracy", 34.0, 3) == "other"


def test_a_record_without_training_loss_is_unknown():
    assert failure_kind(curve([70.0, 50.0]), [], "accuracy", 50.0, 2) == "unknown"


def _record(cell, seed, final, scores, loss_values, status="ok"):
    return RunRecord(run_id=f"{cell}-{seed}", sweep="kinds", task="rt_polarity", cell=cell, label=cell, seed=seed,
                     status=status, headline="accuracy", final={"accuracy": final} if final is not None else {},
                     eval_curve=curve(scores), train_loss=losses(loss_values) if loss_values else [],
                     majority={"accuracy": 50.0}, config={"task": {"num_labels": 2}})


def test_counts_per_cell(tmp_path):
    """Cell a: s0 never learned (final 50), s1 collapsed (70 then 50), s2 fine (75), s3 old record without
    loss at 50 (unknown). Cell b: s0 other (loss drops, evals 48, 49), s1 at 51.5 fails only at majority + 2
    (never above 52: other there), s2 diverged (counted failed; loss in the band before: never learned).
    At majority (threshold 50): a 3 failed (1/1/0, 1 unknown) of 4; b 2 failed of 3 (1 never learned, 1 other).
    At majority + 2: b's s1 fails too (51.5 <= 52): 3 of 3, and a's s1 (70 > 52 before) is still collapsed."""
    fall = [0.69, 0.69, 0.5, 0.4, 0.4, 0.5, 0.69, 0.69]
    records = [
        _record("a", 0, 50.0, [50.0, 50.0], [0.69] * 8),
        _record("a", 1, 50.0, [60.0, 70.0, 50.0], fall),
        _record("a", 2, 75.0, [60.0, 75.0], [0.69, 0.6, 0.5, 0.4]),
        _record("a", 3, 50.0, [50.0, 50.0], None),
        _record("b", 0, 49.0, [48.0, 49.0], [0.69, 0.5, 0.4, 0.3]),
        _record("b", 1, 51.5, [51.0, 51.5], [0.69, 0.6, 0.5, 0.4]),
        _record("b", 2, None, [50.0], [0.69] * 4, status="diverged"),
    ]
    write_records(records, tmp_path)
    table = load_results(tmp_path, "kinds")
    at0 = kind_counts(table.runs, table.records, 0.0)
    assert at0.loc[("rt_polarity", "a")].to_dict() == {"n": 4, "failed": 3, "never_learned": 1, "collapsed": 1,
                                                       "other": 0, "unknown": 1}
    assert at0.loc[("rt_polarity", "b")].to_dict() == {"n": 3, "failed": 2, "never_learned": 1, "collapsed": 0,
                                                       "other": 1, "unknown": 0}
    at2 = kind_counts(table.runs, table.records, 2.0)
    assert at2.loc[("rt_polarity", "b")].to_dict() == {"n": 3, "failed": 3, "never_learned": 1, "collapsed": 0,
                                                       "other": 2, "unknown": 0}
    assert at2.loc[("rt_polarity", "a"), "collapsed"] == 1
    by_seed = dict(zip(table.runs["run_id"], failed_at(table.runs, 2.0), strict=True))
    assert by_seed["b-1"] and not by_seed["a-2"]
