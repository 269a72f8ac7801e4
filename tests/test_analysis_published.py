"""Published numbers of other papers beside a study's cells (paper_data/published_<study>.csv)."""

from __future__ import annotations

import pandas as pd

from mixsweep.analysis.published import beside_ours, published_numbers


def _runs(study: str, cell: str, task: str, values: list[float]) -> tuple[pd.DataFrame, pd.Series]:
    runs = pd.DataFrame({"sweep": study, "task": task, "cell": cell, "label": "x", "seed": range(len(values))})
    return runs, pd.Series(values, dtype=float)


def test_stabilizers_ship_mosbachs_table1_rows():
    pub = published_numbers("stabilizers").set_index(["task", "cell"])
    # Mosbach et al. 2021, Table 1 as typed in peers.md §4.1.
    assert pub.loc[("rte", "devlin"), ["mean", "std", "median", "max"]].tolist() == [52.3, 7.2, 47.3, 71.1]
    assert pub.loc[("cola", "mosbach"), ["mean", "std", "median", "max"]].tolist() == [64.6, 1.0, 64.7, 66.8]
    assert pd.isna(pub.loc[("rte", "reinit_3"), "max"])  # Zhang gives mean ± std only: left empty
    assert published_numbers("smoke") is None


def test_ours_beside_theirs_with_delta():
    runs, scores = _runs("stabilizers", "devlin", "rte", [50.0, 60.0, float("nan")])
    table = beside_ours(runs, scores)
    row = table.iloc[0]
    assert row["n"] == 2 and row["ours mean ± std (max)"] == "55.0 ± 5.0 (60.0)"
    assert row["published mean ± std (max)"] == "52.3 ± 7.2 (71.1)" and row["Δmean"] == "+2.7"
    assert "Mosbach" in row["source"] and row["their n"] == 25


def test_no_rows_for_a_study_without_published_numbers():
    assert beside_ours(*_runs("smoke", "devlin", "rte", [50.0])) is None
