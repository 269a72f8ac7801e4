"""Published numbers of other papers beside a study's cells (paper_data/published_<study>.csv)."""

from __future__ import annotations

import pandas as pd

from mixsweep.analysis.published import beside_ours, published_numbers


def _runs(study: str, cell: str, task: str, final: list[float], best: list[float] | None = None,
          metric: str = "accuracy") -> pd.DataFrame:
    """Runs whose headline is ``metric`` (the table's ``<protocol>_score`` and ``<protocol>_<metric>`` agree)."""
    best = best if best is not None else final
    return pd.DataFrame({"sweep": study, "task": task, "cell": cell, "label": "x", "seed": range(len(final)),
                         "final_score": final, "best_score": best, "zhang2021_score": float("nan"),
                         f"final_{metric}": final, f"best_{metric}": best, f"best_on_{metric}": best})


def test_stabilizers_ship_mosbachs_table1_rows():
    pub = published_numbers("stabilizers").set_index(["task", "cell"])
    # Mosbach et al. 2021, Table 1, typed from the table image in uds-lsv/bert-stable-fine-tuning
    # (images/tab1.png): Devlin et al. (2019) RTE 7.2 / 52.3 / 47.3 / 71.1; Ours CoLA 1.0 / 64.6 / 64.7 / 66.8.
    assert pub.loc[("rte", "devlin@bertadam"), ["mean", "std", "median", "max"]].tolist() == [52.3, 7.2, 47.3, 71.1]
    assert pub.loc[("cola", "mosbach"), ["mean", "std", "median", "max"]].tolist() == [64.6, 1.0, 64.7, 66.8]
    # their "Ours" rows are early stopping (best dev checkpoint); the Devlin rows the end of training
    assert set(pub.loc[pub.index.get_level_values("cell") == "mosbach", "protocol"]) == {"best"}
    assert set(pub.loc[pub.index.get_level_values("cell") == "devlin@bertadam", "protocol"]) == {"final"}
    assert published_numbers("smoke") is None


def test_every_published_row_names_a_protocol_and_a_source_we_can_cite():
    from mixsweep.analysis.selection import PROTOCOLS

    pub = published_numbers("stabilizers")
    assert set(pub["protocol"]) <= set(PROTOCOLS)
    text = " ".join(pub["source"].astype(str)) + " ".join(pub["note"].fillna("").astype(str))
    assert "peers.md" not in text and "unverified" not in text


def test_ours_beside_theirs_with_delta():
    runs = _runs("stabilizers", "devlin@bertadam", "rte", [50.0, 60.0, float("nan")], best=[70.0, 70.0, 70.0])
    table = beside_ours(runs)
    row = table.iloc[0]
    assert row["n"] == 2 and row["ours mean ± std (max)"] == "55.0 ± 5.0 (60.0)"  # final, as their row
    assert row["published mean ± std (max)"] == "52.3 ± 7.2 (71.1)" and row["Δmean"] == "+2.7"
    assert "Mosbach" in row["source"] and row["their n"] == 25 and row["protocol (both)"] == "final"


def test_ours_is_scored_under_the_published_rows_protocol():
    """Mosbach's recipe row is best-checkpoint: ours beside it is the best score (80, 84: mean 82.0, std 2.0),
    not the final one (60, 64), which would read -8.1 instead of +11.9 against their 70.1."""
    runs = _runs("stabilizers", "mosbach", "rte", [60.0, 64.0], best=[80.0, 84.0])
    row = beside_ours(runs).iloc[0]
    assert row["protocol (both)"] == "best" and row["ours mean ± std (max)"] == "82.0 ± 2.0 (84.0)"
    assert row["Δmean"] == "+11.9"


def test_no_rows_for_a_study_without_published_numbers():
    assert beside_ours(_runs("smoke", "devlin", "rte", [50.0])) is None


def test_fisher_falls_back_to_a_definition_that_covers_the_task(tmp_path):
    """lee2020 has no thresholds for rt_polarity: Fisher's test there uses the majority definition."""
    from mixsweep.analysis.load import load_results
    from mixsweep.analysis.report import build_report
    from mixsweep.analysis.synthetic import write_records
    from mixsweep.records import RunRecord

    def rec(label: str, seed: int, acc: float) -> RunRecord:
        return RunRecord(run_id=f"{label}-{seed}", sweep="s", task="rt_polarity", cell=label, label=label, seed=seed,
                         status="ok", headline="accuracy", final={"accuracy": acc}, best={"accuracy": acc},
                         eval_curve=[{"step": 1, "epoch": 1.0, "metrics": {"accuracy": acc}}],
                         majority={"accuracy": 56.6})
    base = "dropout(0.1)+wdecay(0,0.01)"
    # Devlin: 3 of 4 at the majority score (failed); the other cell: none failed. Fisher p = 0.1428571.
    runs = [rec(base, s, a) for s, a in enumerate([56.6, 56.6, 56.6, 75.0])]
    runs += [rec("reinit(3)+" + base, s, a) for s, a in enumerate([74.0, 75.0, 76.0, 77.0])]
    write_records(runs, tmp_path)
    md = build_report(load_results(tmp_path, "s"), tmp_path / "s", "t", figures=False).markdown.read_text()
    stats = md.split("## Statistics against the baseline")[1].split("\n## ")[0]
    header, _, *rows = [line for line in stats.splitlines() if line.startswith("|")]
    col = [c.strip() for c in header.strip("|").split("|")].index("p Fisher (default)")
    fisher = {r.split("|")[2].strip(): r.strip("|").split("|")[col].strip() for r in rows}
    assert fisher["reinit(3)+" + base] == "0.143"
    # the legend names the definition the default falls back to on this task
    assert "rt_polarity: majority" in md


def _mrpc_run(cell: str, seed: int, curve: list[tuple[float, float]]):
    """An MRPC run (headline F1) whose eval curve has (accuracy, F1) at steps 1, 2, ...; acc_and_f1 is their
    mean, ``best`` the point F1 chose (as the runner records it), ``final`` the last point."""
    from mixsweep.records import RunRecord

    points = [{"step": i + 1, "epoch": float(i + 1),
               "metrics": {"accuracy": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}}
              for i, (acc, f1) in enumerate(curve)]
    by_f1 = max(points, key=lambda p: p["metrics"]["f1"])
    return RunRecord(run_id=f"{cell}-{seed}", sweep="stabilizers", task="mrpc", cell=cell, label="x", seed=seed,
                     status="ok", headline="f1", final=dict(points[-1]["metrics"]), best=dict(by_f1["metrics"]),
                     best_step=by_f1["step"], eval_curve=points)


# Two MRPC runs where accuracy != F1 and F1 and their mean peak at different points:
#   run 0: (acc 80, F1 90) -> mean 85.0;  (88, 88) -> 88.0
#   run 1: (84, 93)        -> mean 88.5;  (90, 92) -> 91.0
# F1 peaks at step 1 in both (90, 93); the mean at step 2 in both (88.0, 91.0), which is also the end.
_CURVES = [[(80.0, 90.0), (88.0, 88.0)], [(84.0, 93.0), (90.0, 92.0)]]


def test_mrpc_is_scored_on_the_published_rows_acc_and_f1_where_accuracy_and_f1_differ():
    """Mosbach et al.'s MRPC rows are acc_and_f1 and their early stopping chooses on it (issue 32 item 1).
    Ours beside their recipe row (best, 89.6): the mean at the point the mean chose, 88.0 and 91.0 ->
    89.5 ± 1.5 (91.0), Δ -0.1; F1 at the point F1 chose would read 90 and 93 -> 91.5, Δ +1.9. Beside
    their Devlin row (final, 79.0): the mean at the end, again 88.0 and 91.0 -> Δ +10.5 (F1 at the end,
    88 and 92 -> 90.0, would read +11.0)."""
    from mixsweep.analysis.load import records_frame

    runs = records_frame([_mrpc_run(cell, seed, curve) for cell in ("mosbach", "devlin@bertadam")
                          for seed, curve in enumerate(_CURVES)])
    rows = beside_ours(runs).set_index("cell")
    best, final = rows.loc["mosbach"], rows.loc["devlin@bertadam"]
    assert (best["ours mean ± std (max)"], best["Δmean"]) == ("89.5 ± 1.5 (91.0)", "-0.1")
    assert (final["ours mean ± std (max)"], final["Δmean"]) == ("89.5 ± 1.5 (91.0)", "+10.5")
    assert best["protocol (both)"] == "best" and final["protocol (both)"] == "final"
    assert best["metric (both)"] == final["metric (both)"] == "acc_and_f1"


def test_every_published_row_names_a_metric_our_runs_record():
    from mixsweep.data.tasks import get_task

    pub = published_numbers("stabilizers")
    for _, row in pub.iterrows():
        assert row["metric"] in get_task(row["task"]).metrics, (row["task"], row["metric"])
    # Mosbach's MRPC rows: mean(acc, F1) (their configs' metric and early-stopping metric), not F1
    assert set(pub.loc[pub["task"] == "mrpc", "metric"]) == {"acc_and_f1"}
