"""Published numbers of other papers beside a study's cells (paper_data/published_<study>.csv)."""

from __future__ import annotations

import pandas as pd

from mixsweep.analysis.published import beside_ours, published_numbers


def _runs(study: str, cell: str, task: str, final: list[float], best: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"sweep": study, "task": task, "cell": cell, "label": "x", "seed": range(len(final)),
                         "final_score": final, "best_score": best if best is not None else final,
                         "zhang2021_score": float("nan")})


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
