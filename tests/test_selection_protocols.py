"""Selection protocols (final, best, zhang2021) on the same runs, and the fixed val/test split of dev."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import unpadded
from mixsweep.analysis.cells import aggregate
from mixsweep.analysis.load import load_external_csv, load_results
from mixsweep.analysis.selection import protocol_table, zhang2021_point
from mixsweep.analysis.synthetic import write_records
from mixsweep.data.dev_split import dev_halves
from mixsweep.errors import UserError
from mixsweep.records import RunRecord, best_point


def _point(step, whole, val, test):
    return {"step": step, "epoch": step / 40, "metrics": {"accuracy": whole},
            "val_half": {"accuracy": val}, "test_half": {"accuracy": test}}


# Two RTE runs. Run A: final 66 (step 40), best whole-dev 75 (step 30), and the best val half (72) is reached
# first at step 20, so zhang2021 = its test half, 68 (step 30 ties on val and loses: the first maximum wins).
# Run B: final 53, best 56 (step 20), best val half 58 at step 10 -> zhang2021 = 42.
RUN_A = [_point(10, 60.0, 55.0, 65.0), _point(20, 70.0, 72.0, 68.0), _point(30, 75.0, 72.0, 78.0),
         _point(40, 66.0, float("nan"), 60.0)]
RUN_B = [_point(10, 50.0, 58.0, 42.0), _point(20, 56.0, 50.0, 58.0), _point(40, 53.0, 52.0, 54.0)]


def test_zhang2021_takes_the_test_half_at_the_first_best_val_half_point():
    assert zhang2021_point(RUN_A, "accuracy") == {"accuracy": 68.0}
    assert zhang2021_point(RUN_B, "accuracy") == {"accuracy": 42.0}
    assert zhang2021_point([{"step": 1, "metrics": {"accuracy": 70.0}}], "accuracy") is None


def test_zhang2021_selects_nothing_when_no_val_half_score_is_finite():
    """One rule with records.best_point: NaN never wins, so an all-NaN val curve selects no point (its test
    half would be 60 at the first point if the first point won by default)."""
    nan = float("nan")
    curve = [_point(10, nan, nan, 60.0), _point(20, nan, nan, 70.0)]
    assert best_point(curve, "accuracy") is None
    out = zhang2021_point(curve, "accuracy")
    assert list(out) == ["accuracy"] and math.isnan(out["accuracy"])
    # a NaN first point never wins over a later finite one
    assert zhang2021_point([_point(10, 1.0, nan, 60.0), _point(20, 1.0, 50.0, 70.0)], "accuracy") == {"accuracy": 70.0}


def _mrpc_point(step, val, test):
    return {"step": step, "metrics": {}, "val_half": val, "test_half": test}


def test_zhang2021_chooses_on_accuracy_where_the_task_has_it_as_the_reference_does():
    """revisit-bert-finetuning run_glue.py keeps the checkpoint with the best val_acc when the task reports
    accuracy (MRPC included), else val_mcc (CoLA), else val_spearmanr (STS-B). MRPC: the best val F1 is at
    step 10 (90), the best val accuracy at step 20 (86): the score is step 20's test F1, 88."""
    mrpc = [_mrpc_point(10, {"accuracy": 80.0, "f1": 90.0}, {"accuracy": 81.0, "f1": 87.0}),
            _mrpc_point(20, {"accuracy": 86.0, "f1": 89.0}, {"accuracy": 84.0, "f1": 88.0})]
    assert zhang2021_point(mrpc, "f1")["f1"] == 88.0
    # CoLA records accuracy too, but the reference computes MCC alone for it: step 10 (MCC 60) wins
    cola = [_mrpc_point(10, {"accuracy": 80.0, "mcc": 60.0}, {"accuracy": 79.0, "mcc": 58.0}),
            _mrpc_point(20, {"accuracy": 85.0, "mcc": 55.0}, {"accuracy": 84.0, "mcc": 57.0})]
    assert zhang2021_point(cola, "mcc")["mcc"] == 58.0
    stsb = [_mrpc_point(10, {"pearson": 88.0, "spearman": 87.0}, {"pearson": 86.0, "spearman": 85.0}),
            _mrpc_point(20, {"pearson": 87.0, "spearman": 88.0}, {"pearson": 84.0, "spearman": 83.0})]
    assert zhang2021_point(stsb, "spearman")["spearman"] == 83.0


def _store(tmp_path):
    records = [
        RunRecord(run_id=f"r{i}", sweep="z", task="rte", cell="c", label="mixout(w_pre,0.7)", seed=i, status="ok",
                  headline="accuracy", final=dict(curve[-1]["metrics"]),
                  best=dict(max(curve, key=lambda p: p["metrics"]["accuracy"])["metrics"]), eval_curve=curve,
                  majority={"accuracy": 52.7})
        for i, curve in enumerate((RUN_A, RUN_B))
    ]
    write_records(records, tmp_path)
    return load_results(tmp_path, "z").runs


def test_the_three_protocols_score_the_same_runs(tmp_path):
    runs = _store(tmp_path)
    means = {s: aggregate(runs, s, ("lee2020",)).iloc[0] for s in ("final", "best", "zhang2021")}
    # final (66 + 53)/2, best (75 + 56)/2, zhang2021 (68 + 42)/2; lee2020 on RTE fails a score < 55.
    assert {s: r["mean"] for s, r in means.items()} == {"final": 59.5, "best": 65.5, "zhang2021": 55.0}
    assert {s: int(r["fail_lee2020"]) for s, r in means.items()} == {"final": 1, "best": 0, "zhang2021": 1}
    table = protocol_table(runs).iloc[0]
    assert (table.n, table.final, table.best, table.zhang2021) == (2, "59.5 [1]", "65.5 [0]", "55.0 [1]")


def test_zhang2021_refuses_runs_without_halves(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("task,config,seed,score\nrte,Our,0,60.0\n")
    runs = load_external_csv(path).runs
    assert aggregate(runs, "final").iloc[0]["mean"] == 60.0
    with pytest.raises(UserError, match="no val/test halves.*--selection final or best"):
        aggregate(runs, "zhang2021")


# --- the split ------------------------------------------------------------------------------------------


def reference_halves(labels) -> tuple[list[int], list[int]]:
    """Port of asappresearch/revisit-bert-finetuning ``run_glue.py``, ``train()``, the
    ``args.test_val_split`` block, on a plain label list (``sample[-1].item()`` is the label): a
    ``defaultdict(list)`` of positions per label in dev order, each list shuffled by a fresh
    ``np.random.RandomState(1)``, the first ``len(indices) // 2`` to val, the rest to test."""
    from collections import defaultdict

    class2idx = defaultdict(list)
    for i, label in enumerate(labels):
        class2idx[label].append(i)
    val_indices, test_indices = [], []
    for _class_num, indices in class2idx.items():
        state = np.random.RandomState(1)
        state.shuffle(indices)
        class_val_indices, class_test_indices = indices[: len(indices) // 2], indices[len(indices) // 2 :]
        val_indices += class_val_indices
        test_indices += class_test_indices
    return sorted(val_indices), sorted(test_indices)


@pytest.mark.parametrize("labels", [
    [0, 1, 1, 0, 1, 1, 0, 1, 1],
    [1, 0, 2, 2, 0, 1, 1, 2, 0, 0, 0, 1, 2],  # three classes, first seen in the order 1, 0, 2
    list(np.random.default_rng(0).integers(0, 2, 277)),  # RTE's dev size
    [1.0, 2.5, 1.0, 2.5, 4.0, 2.5, 0.2, 0.2, 0.2, 0.2],  # STS-B: per distinct float score
])
def test_dev_halves_are_the_references(labels):
    val, test = dev_halves(np.array(labels))
    ref_val, ref_test = reference_halves([x.item() if hasattr(x, "item") else x for x in labels])
    assert val.tolist() == ref_val and test.tolist() == ref_test


def test_dev_halves_by_hand():
    # class 0 at positions 0, 3, 6, class 1 at the other six: each group in the order a fresh
    # RandomState(1) permutes its positions (permutation(n) is the shuffle of 0..n−1), first ⌊n/2⌋ to val
    labels = np.array([0, 1, 1, 0, 1, 1, 0, 1, 1])
    zeros = [[0, 3, 6][k] for k in np.random.RandomState(1).permutation(3)]
    ones = [[1, 2, 4, 5, 7, 8][k] for k in np.random.RandomState(1).permutation(6)]
    val, test = dev_halves(labels)
    assert val.tolist() == sorted(zeros[:1] + ones[:3]) and test.tolist() == sorted(zeros[1:] + ones[3:])
    # a score seen once goes to test (⌊1/2⌋ = 0 to val)
    val, test = dev_halves(np.array([1.0, 2.5, 1.0, 2.5, 4.0, 2.5]))
    assert 4 in test.tolist() and len(val) == 2
    unstratified_val, _ = dev_halves(labels, stratify=False)
    assert unstratified_val.tolist() == sorted(np.random.RandomState(1).permutation(9)[:4].tolist())


def test_dev_halves_do_not_depend_on_anything_but_the_dev_set():
    labels = np.arange(40) % 3
    first, again = dev_halves(labels), dev_halves(labels.copy())
    assert [a.tolist() for a in first] == [a.tolist() for a in again]
    val, test = first
    assert set(val) | set(test) == set(range(40)) and not set(val) & set(test)
    assert np.bincount(labels[val]).tolist() == [7, 6, 6]  # floor(half) of 14, 13, 13


# --- a real run records both halves ----------------------------------------------------------------------


def test_a_run_records_both_halves_at_every_eval(tmp_path):
    from conftest import tiny_overrides
    from mixsweep.run.train import run
    from mixsweep.sweeping.compose import compose_run

    out = run(compose_run([*tiny_overrides(tmp_path), "train.eval_every=1", "train.max_steps=2"]))
    assert len(out["eval_curve"]) == 2
    for point in out["eval_curve"]:
        # The RTE fixture's dev set has 4 + 4 examples: val and test get 2 + 2 each, so the whole-dev
        # accuracy is the mean of the two halves'.
        whole, val, test = point["metrics"], point["val_half"], point["test_half"]
        assert math.isclose(whole["accuracy"], (val["accuracy"] + test["accuracy"]) / 2)
        assert {val["accuracy"], test["accuracy"]} <= {0.0, 25.0, 50.0, 75.0, 100.0}


def test_the_report_compares_the_protocols_and_names_the_chosen_one(tmp_path):
    from mixsweep.analysis.load import RunTable
    from mixsweep.analysis.report import build_report

    runs = _store(tmp_path)
    text = build_report(RunTable(runs, origin="x"), tmp_path / "rep", "t", selection="zhang2021",
                        failures=("lee2020",), figures=False).markdown.read_text()
    text = unpadded(text)
    assert "Selection protocol: **zhang2021** (test half of dev at the best val-half point" in text
    assert "## Selection protocols" in text
    assert "| rte | Our | 2 | 59.5 [1] | 65.5 [0] | 55.0 [1] |" in text


# --- a cell's runs on two different splits of dev (issue 32 item 9's change) ----------------------------


def test_zhang2021_refuses_a_cell_mixing_the_older_halves_with_run_glues(tmp_path):
    """Runs recorded before a run stated its halves (most on the sha256 halves) beside runs on run_glue.py's
    RandomState(1) halves (``extra.dev_halves``): their zhang2021 scores come from different examples."""
    records = [
        RunRecord(run_id=f"r{i}", sweep="z", task="rte", cell="c", label="mixout(w_pre,0.7)", seed=i, status="ok",
                  headline="accuracy", final=dict(curve[-1]["metrics"]), eval_curve=curve,
                  extra=extra)
        for i, (curve, extra) in enumerate(((RUN_A, {}), (RUN_B, {"dev_halves": "run_glue_randomstate1"})))
    ]
    write_records(records, tmp_path)
    runs = load_results(tmp_path, "z").runs
    assert aggregate(runs, "final").iloc[0]["mean"] == 59.5  # the other protocols do not use the halves
    with pytest.raises(UserError, match=r"^rte/c: 1 of 2 runs were scored on the older dev halves .*"
                                        r"rerun those 1 runs with this version") as e:
        aggregate(runs, "zhang2021")
    assert "\n" not in str(e.value)
    records[0].extra = {"dev_halves": "run_glue_randomstate1"}  # rerun: both on the same halves
    write_records(records, tmp_path)
    assert aggregate(load_results(tmp_path, "z").runs, "zhang2021").iloc[0]["mean"] == 55.0


def test_a_run_states_the_rule_of_its_dev_halves(tmp_path):
    from conftest import tiny_overrides
    from mixsweep.run.train import run
    from mixsweep.sweeping.compose import compose_run

    out = run(compose_run([*tiny_overrides(tmp_path), "train.max_steps=1"]))
    assert out["extra"]["dev_halves"] == "run_glue_randomstate1"
