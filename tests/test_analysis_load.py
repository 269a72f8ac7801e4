"""Loading run records and external CSVs into the tidy run table."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from mixsweep.analysis.load import export_runs, load_external_csv, load_results
from mixsweep.analysis.naming import DEVLIN, OUR_W
from mixsweep.analysis.synthetic import write_records
from mixsweep.errors import UserError
from mixsweep.records import RunRecord
from mixsweep.store.runs import add_to_view


def record(task="rte", label=DEVLIN, seed=0, score=60.0, status="ok", **kw) -> RunRecord:
    base = dict(run_id=f"{task}-{label}-{seed}", sweep="t", task=task, cell=label, label=label, seed=seed,
                status=status, headline="accuracy", final={"accuracy": score}, majority={"accuracy": 52.7})
    base.update(kw)
    return RunRecord(**base)


def test_one_row_per_run_with_sub_metrics(tmp_path):
    write_records([record(seed=s, score=50.0 + s) for s in range(3)]
                  + [record(task="mrpc", seed=0, headline="f1", final={"f1": 88.0, "accuracy": 84.0})], tmp_path)
    runs = load_results(tmp_path, "t").runs
    assert len(runs) == 4
    assert sorted(runs[runs.task == "rte"].final_score) == [50.0, 51.0, 52.0]
    mrpc = runs[runs.task == "mrpc"].iloc[0]
    assert (mrpc.final_score, mrpc.final_f1, mrpc.final_accuracy) == (88.0, 88.0, 84.0)
    assert mrpc.display == "Devlin"


def test_best_comes_from_the_eval_curve_when_missing(tmp_path):
    curve = [{"step": s, "epoch": s / 10, "metrics": {"accuracy": a}} for s, a in
             [(10, 55.0), (20, float("nan")), (30, 70.0), (40, 61.0)]]
    write_records([record(score=61.0, eval_curve=curve)], tmp_path)
    row = load_results(tmp_path, "t").runs.iloc[0]
    assert (row.final_score, row.best_score, row.n_evals) == (61.0, 70.0, 4)


def test_corrupt_partial_and_hidden_entries_are_skipped_with_warnings(tmp_path):
    write_records([record(seed=0), record(seed=1)], tmp_path)
    run_dir = tmp_path / "runs"
    add_to_view(tmp_path, "t", [{"run_id": name, "task": "rte", "cell": "c"}
                                for name in ("broken", "invalid", "badstatus", "pending", "never-started")])
    (run_dir / "broken").mkdir()
    (run_dir / "broken" / "result.json").write_text('{"run_id": "x", "sweep"')  # truncated write
    (run_dir / "invalid").mkdir()
    (run_dir / "invalid" / "result.json").write_text(json.dumps({"run_id": "y", "status": "ok"}))
    (run_dir / "badstatus").mkdir()
    bad = record(seed=9).to_dict() | {"status": "exploded"}
    (run_dir / "badstatus" / "result.json").write_text(json.dumps(bad))
    (run_dir / "pending").mkdir()  # a run still in progress: no result.json yet
    (tmp_path / "t" / ".hydra").mkdir()
    (tmp_path / "t" / ".hydra" / "result.json").write_text("garbage")
    (run_dir / ".tmp-run").mkdir()
    (run_dir / ".tmp-run" / "result.json").write_text("garbage")
    table = load_results(tmp_path, "t")
    assert len(table.runs) == 2
    assert len(table.warnings) == 3
    assert all(w.startswith("corrupt record ") for w in table.warnings)
    assert any("broken" in w for w in table.warnings) and any("lacks" in w for w in table.warnings)


def test_null_metric_is_nan_not_missing(tmp_path):
    write_records([record(task="stsb", headline="spearman", final={"spearman": None, "pearson": None})], tmp_path)
    row = load_results(tmp_path, "t").runs.iloc[0]
    assert math.isnan(row.final_score) and row.metrics == "pearson,spearman"


def test_p_is_recovered_from_a_legacy_config(tmp_path):
    """Records written before the method interface had one flat regularizer shape."""
    reg = {"dropout": 0.0, "mixout": {"p": 0.8}, "wdecay": {"lam": 0.0}, "head": {"policy": "none"}}
    write_records([record(label="mixout(w_pre,0.8)", config={"regularizer": reg}),
                   record(label="dropout(0.3)", seed=3, config={"regularizer": {
                       "dropout": 0.3, "mixout": {"p": 0.0}, "wdecay": {"lam": 0.0}, "head": {"policy": "none"}}})],
                  tmp_path)
    runs = load_results(tmp_path, "t").runs.set_index("label")
    assert (runs.loc["mixout(w_pre,0.8)", "family"], runs.loc["mixout(w_pre,0.8)", "p"]) == ("mixout", 0.8)
    assert (runs.loc["dropout(0.3)", "family"], runs.loc["dropout(0.3)", "p"]) == ("dropout", 0.3)


def test_family_and_p_come_from_the_config_not_the_label(tmp_path):
    # A label that disagrees with its config: the config wins (labels are display only).
    write_records([record(label="mixout(w_pre,0.5)", config={"regularizer": {"mixout": {"p": 0.6}}}),
                   record(label="dropout(0.2)", seed=1, config={"regularizer": {"dropout": {"p": 0.25}}}),
                   record(label="wd", seed=3, config={"regularizer": {"mixout": {"p": 0.6},
                                                                       "wdecay": {"lam": 0.01}}}),
                   record(label="x", seed=2, config={"regularizer": {"name": "none"}})], tmp_path)
    runs = load_results(tmp_path, "t").runs.set_index("label")
    assert (runs.loc["mixout(w_pre,0.5)", "family"], runs.loc["mixout(w_pre,0.5)", "p"]) == ("mixout", 0.6)
    assert (runs.loc["dropout(0.2)", "family"], runs.loc["dropout(0.2)", "p"]) == ("dropout", 0.25)
    assert pd.isna(runs.loc["wd", "family"])  # two methods: not a point of a one-knob p-sweep
    assert (runs.loc["x", "family"], runs.loc["x", "p"]) == ("none", 0.0)


def test_p_is_recovered_from_the_config(tmp_path):
    reg = {"name": "mixout", "mixout": {"p": 0.8, "head": {"policy": "none", "p": None}}}
    write_records([record(label="mixout(w_pre,0.8)", config={"regularizer": reg}),
                   record(label="none", seed=1), record(label=OUR_W, seed=2)], tmp_path)
    runs = load_results(tmp_path, "t").runs.set_index("label")
    assert (runs.loc["mixout(w_pre,0.8)", "family"], runs.loc["mixout(w_pre,0.8)", "p"]) == ("mixout", 0.8)
    assert (runs.loc["none", "family"], runs.loc["none", "p"]) == ("none", 0.0)
    assert pd.isna(runs.loc[OUR_W, "family"]) and math.isnan(runs.loc[OUR_W, "p"])


def test_missing_sweep_names_path_and_fix(tmp_path):
    # not a study and no results by that name: a typo, so name the studies (issue 15 §3)
    with pytest.raises(UserError, match=r"unknown sweep 'nosuch': choose one of .*smoke"):
        load_results(tmp_path, "nosuch")
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match=rf"no results for sweep 'smoke' at {tmp_path / 'smoke'}: run `make sweep "
                                        rf"SWEEP=smoke RESULTS={tmp_path}` first \(sweeps with results in .*: other\)"):
        load_results(tmp_path, "smoke")


def test_external_csv_maps_display_names(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"task": ["STS-B", "RTE", "RTE"], "config": ["Our+W", "D0.3", "mixout(w_pre,0.9)"],
                  "seed": [0, 1, 2], "score": [89.0, 52.7, float("nan")]}).to_csv(path, index=False)
    runs = load_external_csv(path).runs
    assert runs.task.tolist() == ["stsb", "rte", "rte"]
    assert runs.label.tolist() == [OUR_W, "dropout(0.3)", "mixout(w_pre,0.9)"]
    assert runs.headline.tolist() == ["spearman", "accuracy", "accuracy"]  # from conf/task via get_task
    assert runs.final_score.isna().tolist() == [False, False, True]


def test_external_csv_missing_column_is_a_user_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("task,config,score\nrte,Our,60\n")
    with pytest.raises(UserError, match="seed"):
        load_external_csv(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_round_trips(tmp_path, suffix):
    write_records([record(seed=s, score=50.0 + s) for s in range(3)], tmp_path)
    runs = load_results(tmp_path, "t").runs
    path = export_runs(runs, tmp_path / f"runs{suffix}")
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert back.final_score.tolist() == runs.final_score.tolist()
    assert list(back.columns) == list(runs.columns)
    with pytest.raises(UserError):
        export_runs(runs, tmp_path / "runs.xlsx")


def test_stored_r3f_runs_on_stsb_are_left_out_with_a_line_saying_why(tmp_path):
    """R3F adds nothing on STS-B (fairseq: no R3F term on a regression target), so runs stored under an R3F
    cell there are devlin's runs: the analysis must not call them R3F (issue 32 item 7). The same cell on
    RTE, and devlin on STS-B, stay."""
    from omegaconf import OmegaConf

    from mixsweep.analysis.load import load_results
    from mixsweep.analysis.synthetic import write_records
    from mixsweep.config.paths import CONF_DIR
    from mixsweep.records import RunRecord

    devlin = {"dropout": {"p": 0.1, "head": True}, "wdecay": {"lam": 0.01, "target": "zero", "form": "decoupled",
                                                              "head": "zero"}}
    r3f = {**devlin, "r3f": {"lam": 1.0, "eps": 1e-5, "noise": "uniform", "regression": "none"}}

    def rec(task: str, cell: str, reg: dict, seed: int) -> RunRecord:
        headline = {"stsb": "spearman", "rte": "accuracy"}[task]
        task_cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml"))
        return RunRecord(run_id=f"{task}-{cell}-{seed}", sweep="s", task=task, cell=cell, label=cell, seed=seed,
                         status="ok", headline=headline, final={headline: 80.0 + seed}, best={headline: 80.0 + seed},
                         config={"task": task_cfg, "regularizer": reg, "seed": seed})

    write_records([rec(task, cell, reg, seed) for task in ("stsb", "rte")
                   for cell, reg in (("devlin", devlin), ("r3f", r3f)) for seed in (0, 1)], tmp_path)
    table = load_results(tmp_path, "s")
    kept = set(zip(table.runs["task"], table.runs["cell"], strict=True))
    assert kept == {("stsb", "devlin"), ("rte", "devlin"), ("rte", "r3f")}
    assert [w for w in table.warnings if "r3f" in w] == [
        "2 runs of r3f on stsb left out: r3f is inactive on stsb: fairseq's R3F adds no term on a regression "
        "target (sentence_prediction_r3f.py: plain MSE), so its runs would be the baseline's; "
        "regularizer.r3f.regression=gaussian is our extension that adds one"]
