"""``mixsweep data describe``: a JSON summary computed from the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixsweep.cli import main
from mixsweep.data.cli import data_config

GLUE = Path(__file__).parent / "fixtures" / "glue"


def describe(capsys, *args: str) -> tuple[int, dict | None, str]:
    rc = main(["data", "describe", *args])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else None), err


def test_describe_mrpc_from_a_glue_folder(capsys):
    rc, summary, _ = describe(capsys, "mrpc", "source=glue_dir", f"glue_dir={GLUE}", "train_size=4")
    assert rc == 0
    train, dev = summary["splits"]["train"], summary["splits"]["dev"]
    assert train["size"] == 4 and train["full_size"] == 16 and train["source"] == "glue_dir"
    assert train["label_counts"] == {"not_equivalent": 2, "equivalent": 2}  # 6:10 scaled to 4 rows
    assert dev["label_counts"] == {"not_equivalent": 3, "equivalent": 5}
    assert dev["origin"] == str(GLUE / "MRPC" / "dev.tsv")
    accuracy = 5 / 8  # always "equivalent"
    f1 = 2 * accuracy / (accuracy + 1)
    assert summary["majority_baseline"] == {
        "accuracy": pytest.approx(100 * accuracy),
        "f1": pytest.approx(100 * f1, abs=1e-4),
        "acc_and_f1": pytest.approx(50 * (accuracy + f1), abs=1e-4),
    }


def test_describe_regression_reports_a_score_range_and_no_baseline(capsys):
    rc, summary, _ = describe(capsys, "stsb", "source=glue_dir", f"glue_dir={GLUE}")
    assert rc == 0
    assert summary["splits"]["dev"]["scores"] == {"min": 0.5, "max": 5.0, "mean": pytest.approx(22.45 / 8)}
    assert summary["majority_baseline"] == {"pearson": None, "spearman": None}


def test_describe_errors_are_one_line(capsys):
    rc, _, err = describe(capsys, "rtee")
    assert rc == 2 and err.startswith("mixsweep: error: unknown task 'rtee'") and err.count("\n") == 1
    rc, _, err = describe(capsys, "rte", "colour=red")
    assert rc == 2 and "unknown data setting 'colour'" in err
    rc, _, err = describe(capsys, "rte", "source")
    assert rc == 2 and "not KEY=VALUE" in err


def test_overrides_are_parsed_as_yaml_scalars():
    data = data_config(["train_size=12", "glue_dir=null", "files.train=a.csv"])
    assert data.train_size == 12 and data.glue_dir is None and data.files.train == "a.csv"
    assert data.cache_dir is None  # describe tokenizes nothing: no cache
