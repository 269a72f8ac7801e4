"""Failed-run counts under the named definitions, against the counts the paper states."""

from __future__ import annotations

import pandas as pd
import pytest

from mixsweep.analysis.cells import aggregate
from mixsweep.analysis.failures import describe_definition, failure_mask, parse_definitions
from mixsweep.analysis.load import load_external_csv, load_results
from mixsweep.analysis.naming import DEVLIN, OUR, OUR_W, WIESE
from mixsweep.analysis.paper import paper_runs, paper_runs_csv
from mixsweep.analysis.synthetic import write_records
from mixsweep.analysis.tables import footnotes, paper_style
from mixsweep.errors import UserError
from mixsweep.records import RunRecord


@pytest.fixture(scope="module")
def fig3(tmp_path_factory):
    path = tmp_path_factory.mktemp("paper") / "fig3.csv"
    paper_runs_csv().to_csv(path, index=False)
    return aggregate(load_external_csv(path).runs, failures=("lee2020",))


@pytest.fixture(scope="module")
def fig4(tmp_path_factory):
    path = tmp_path_factory.mktemp("paper") / "fig4.csv"
    runs = paper_runs()[lambda d: d.figure == "Fig. 4"].assign(config=lambda d: d.label)
    runs.assign(seed=runs.groupby("label").cumcount())[["task", "config", "seed", "score"]].to_csv(path, index=False)
    return aggregate(load_external_csv(path).runs, failures=("lee2020",))


@pytest.mark.parametrize(("task", "label", "stated"), [
    ("cola", DEVLIN, 7), ("cola", WIESE, 6), ("cola", OUR, 1),
    ("stsb", DEVLIN, 2), ("stsb", WIESE, 1), ("stsb", OUR, 0), ("stsb", OUR_W, 0),
])
def test_lee2020_reproduces_the_fig3_counts_the_paper_states(fig3, task, label, stated):
    assert fig3.loc[(task, label), "fail_lee2020"] == stated


def test_wdecay_increases_failures_on_mrpc_and_cola(fig3):
    # Sec. 5: adding wdecay(w_pre, 0.01) to mixout(w_pre, 0.7) increases degenerate runs on MRPC and CoLA.
    for task in ("mrpc", "cola"):
        assert fig3.loc[(task, OUR_W), "fail_lee2020"] > fig3.loc[(task, OUR), "fail_lee2020"]


def test_lee2020_reproduces_the_app_e_statements(fig4):
    assert fig4.loc[("rte", "mixout(w_pre,0.8)"), "fail_lee2020"] == 4
    dropout = fig4.loc["rte"].filter(regex=r"^dropout\(", axis=0)
    assert len(dropout) == 9
    assert (dropout["fail_lee2020"] >= 15).all()


def _rec(seed, status="ok", final=None, best=None, majority=None, task="rte", headline="accuracy"):
    return RunRecord(run_id=f"r{seed}", sweep="f", task=task, cell="c", label=DEVLIN, seed=seed, status=status,
                     headline=headline, final=final or {}, best=best or {}, majority=majority or {})


def _runs(tmp_path, records):
    write_records(records, tmp_path)
    return load_results(tmp_path, "f").runs.sort_values("seed").reset_index(drop=True)


def test_diverged_and_nan_count_as_failed_errored_runs_are_left_out(tmp_path):
    runs = _runs(tmp_path, [
        _rec(0, final={"accuracy": 70.0}, majority={"accuracy": 52.7}),
        _rec(1, status="diverged", final={"accuracy": 70.0}, majority={"accuracy": 52.7}),
        _rec(2, final={"accuracy": float("nan")}, majority={"accuracy": 52.7}),
        _rec(3, status="failed"),
        _rec(4, final={"accuracy": 52.7}, majority={"accuracy": 52.7}),
    ])
    for d in ("lee2020", "majority"):
        assert failure_mask(runs, d).tolist() == [False, True, True, pd.NA, True], d
    agg = aggregate(runs, failures=("lee2020", "majority"))
    row = agg.iloc[0]
    assert (row.n, row.n_nan, row.n_error, row.fail_lee2020, row.fail_majority) == (3, 1, 1, 3, 3)


def test_majority_is_not_defined_on_a_regression_task_but_a_nan_correlation_still_fails(tmp_path):
    """STS-B's majority-class Spearman is NaN: the count is NA (``–`` + footnote), never a silent 0."""
    runs = _runs(tmp_path, [
        _rec(0, task="stsb", headline="spearman", final={"spearman": None}, majority={"spearman": None}),
        _rec(1, task="stsb", headline="spearman", final={"spearman": 88.0}, majority={"spearman": None}),
        _rec(2, task="stsb", headline="spearman", status="diverged", majority={"spearman": None}),
    ])
    assert failure_mask(runs, "majority").isna().all()
    assert failure_mask(runs, "lee2020").tolist() == [True, False, True]
    agg = aggregate(runs, failures=("lee2020", "majority"))
    assert agg.iloc[0].fail_majority is pd.NA and agg.iloc[0].fail_lee2020 == 2
    table = paper_style(agg, ("lee2020", "majority"))
    assert table.loc[table.index[0], "stsb"] == "88.0† (88.0) [2/–‡]"
    assert footnotes(agg, ("lee2020", "majority")) == [
        "† the cell's runs include diverged or NaN ones: its mean covers only the finite scores",
        "‡ majority on stsb: not defined for regression (a constant predictor's correlation is undefined)",
    ]
    assert "stsb: not defined for regression" in describe_definition("majority", ["stsb"])


def test_dodge2020_uses_the_best_score_and_its_own_metric(tmp_path):
    runs = _runs(tmp_path, [
        _rec(0, task="mrpc", headline="f1", final={"f1": 81.2, "acc_and_f1": 74.8},
             best={"f1": 85.0, "acc_and_f1": 80.0}),
        _rec(1, task="mrpc", headline="f1", final={"f1": 81.2, "acc_and_f1": 74.8},
             best={"f1": 81.2, "acc_and_f1": 74.8}),
    ])
    assert failure_mask(runs, "dodge2020").tolist() == [False, True]
    assert failure_mask(runs, "lee2020").tolist() == [True, True]
    assert failure_mask(runs, "lee2020", selection="best").tolist() == [False, True]


def test_undeclared_definition_or_unrecorded_metric_is_not_applicable(tmp_path):
    runs = _runs(tmp_path, [_rec(0, task="stsb", headline="spearman", final={"spearman": 80.0}),
                            _rec(1, task="mrpc", headline="f1", final={"f1": 90.0})])
    assert failure_mask(runs, "dodge2020").isna().tolist() == [True, True]  # stsb: none; mrpc: acc_and_f1 missing
    assert failure_mask(runs, "majority").isna().all()  # no majority-class score recorded


def test_explicit_thresholds_replace_the_task_files(tmp_path):
    runs = _runs(tmp_path, [_rec(0, final={"accuracy": 60.0}), _rec(1, final={"accuracy": 56.0})])
    configs = {"rte": {"lee2020": {"metric": "accuracy", "below": 58.1}}}
    assert failure_mask(runs, "lee2020", configs=configs).tolist() == [False, True]
    assert failure_mask(runs, "lee2020").tolist() == [False, False]


def test_definition_names_are_validated():
    assert parse_definitions("all") == ("lee2020", "majority", "dodge2020")
    assert parse_definitions("majority,lee2020") == ("majority", "lee2020")
    with pytest.raises(UserError, match="choose from"):
        parse_definitions("mosbach")
