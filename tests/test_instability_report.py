"""The "Instability beyond SD" analysis: a tiny study end to end, and stores without outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli, sweep_argv, write_study
from mixsweep.analysis.cli import cmd_table
from mixsweep.analysis.load import load_results
from mixsweep.analysis.report import build_report
from mixsweep.analysis.synthetic import demo_store


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("study")
    name = write_study(root, "inst", seeds=3)
    results = root / "results"
    code, out, err = run_cli(root, sweep_argv(results, name), timeout=600)
    assert code == 0, out + err
    return root, results, name


def test_report_has_the_section_with_every_measure_and_the_figure(tiny_study):
    root, results, name = tiny_study
    code, out, err = run_cli(root, ["report", "--sweep", name, "--results", str(results)], timeout=300)
    assert code == 0, out + err
    md = (results / name / "report.md").read_text()
    assert "## Instability beyond SD" in md
    section = md.split("## Instability beyond SD")[1].split("\n## ")[0]
    for symbol in ("SD", "I_pwd", "I_κ", "I_JSD", "I_SVCCA", "I_PWCCA", "I_CKA", "I_OP", "ensemble"):
        assert symbol in section
    assert "Stored per run (mean): outputs" in section
    assert (results / name / "figures" / "instability_layers.png").is_file()
    runs = pd.read_csv(results / name / "runs.csv")
    assert runs["has_outputs"].all() and runs["has_representations"].all()
    assert runs["pwd_final"].between(0, 1).all()


def test_table_measure_per_layer_and_all(tiny_study, capsys):
    import argparse

    _, results, name = tiny_study
    base = dict(sweep=name, results=results, cells=None, from_csv=None, selection="final", failure="default",
                format="csv", view="paper", design=None)
    assert cmd_table(argparse.Namespace(**base, measure="cka")) == 0
    long = capsys.readouterr().out
    rows = pd.read_csv(pd.io.common.StringIO(long))
    assert set(rows["layer"]) == {"layer_1", "layer_2", "head"} and len(set(rows["regularizer"])) == 2
    assert rows["n_runs"].eq(3).all()
    assert cmd_table(argparse.Namespace(**base, measure="all")) == 0
    wide = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert len(wide) == 2 and wide["with outputs"].eq(3).all()


def test_stores_without_outputs_say_so_and_never_fail(tmp_path, capsys):
    import argparse

    results = tmp_path / "results"
    demo_store(results, "old", seeds=3, digits=False)
    table = load_results(results, "old")
    assert not table.runs["has_outputs"].any() and table.runs["pwd_final"].isna().all()
    report = build_report(table, results / "old", "old", figures=False)
    md = report.markdown.read_text()
    assert "## Instability beyond SD" in md and "hold no per-example outputs" in md
    args = argparse.Namespace(sweep="old", results=results, cells=None, from_csv=None, selection="final",
                              failure="default", format="md", measure="pwd", view="paper", design=None)
    assert cmd_table(args) == 0
    assert "hold no per-example outputs" in capsys.readouterr().out
    with pytest.raises(Exception, match="unknown measure"):
        cmd_table(argparse.Namespace(**{**vars(args), "measure": "nope"}))


DEVLIN = "dropout(0.1)+wdecay(0,0.01)"


def _study_store(results: Path) -> None:
    """A stabilizer study's cells on RTE, three restarts each (40 dev examples, 8-dim representations):
    ``devlin@bertadam`` with outputs and representations, ``devlin@adamw_hf`` with outputs only, and
    ``mosbach`` whose restarts all diverged (records, no outputs)."""
    import numpy as np

    from mixsweep.records import RunRecord
    from mixsweep.store import runs as store
    from mixsweep.store.outputs import RunOutputs

    rng = np.random.default_rng(0)
    n = 40
    cells = {"devlin@bertadam": ("bertadam", "ok", True), "devlin@adamw_hf": ("adamw_hf", "ok", False),
             "mosbach": ("adamw", "diverged", False)}
    base = rng.standard_normal((n, 8))
    entries = []
    for name, (optimizer, status, reps) in cells.items():
        for seed in range(3):
            rid = f"{name.replace('@', '-')}-s{seed}"
            score = float(rng.normal(70, 2)) if status == "ok" else float("nan")
            config = {"optimizer": {"name": optimizer}, "regularizer": {"dropout": 0.1, "wdecay": {"lam": 0.01}},
                      "seed": seed}
            rec = RunRecord(run_id=rid, sweep="study", task="rte", cell=name, label=DEVLIN, seed=seed,
                            status=status, headline="acc", final={"acc": score}, best={"acc": score}, config=config)
            if status == "ok":
                out = RunOutputs()
                prob = rng.dirichlet([1, 1], n).astype(np.float16)
                out.outputs = {"labels": rng.integers(0, 2, n), "pred_30": prob.argmax(1).astype(np.int16),
                               "prob_30": prob, "test_half": np.arange(n // 2, n, dtype=np.int32),
                               "val_half": np.arange(n // 2, dtype=np.int32)}
                out.outputs_meta = {"points": {"final": 30, "best": 30, "zhang2021": 30}, "dev_hash": "h" * 64,
                                    "regression": False, "num_classes": 2, "n_examples": n}
                if reps:
                    out.representations = {f"rep_{layer}": (base + rng.standard_normal((n, 8))).astype(np.float16)
                                           for layer in ("layer_2", "head")}
                    out.representations["positions"] = np.arange(n, dtype=np.int32)
                    out.representations_meta = {"layers": ["layer_2", "head"], "step": 30, "dev_hash": "h" * 64,
                                                "n_examples": n, "dtype": "float16"}
                store.write_outputs(store.run_dir(results, rid), out)
            store.write_record(store.run_dir(results, rid), rec)
            entries.append({"run_id": rid, "task": "rte", "cell": name})
    store.add_to_view(results, "study", entries)



def test_every_cell_of_a_stabilizer_study_gets_a_row_with_every_measure(tmp_path):
    from mixsweep.analysis.instability_tables import SYMBOLS, instability

    results = tmp_path / "results"
    _study_store(results)
    table = load_results(results, "study")
    assert set(table.runs["label"]) == {"devlin@bertadam", "devlin@adamw_hf", "mosbach"}  # rows: cell names
    wide = instability(table.runs, table.records, results).wide.set_index("regularizer")
    assert set(wide.index) == {"devlin@bertadam", "devlin@adamw_hf", "mosbach"}
    assert set(SYMBOLS.values()) <= set(wide.columns)
    full = wide.loc["devlin@bertadam"]
    assert all(full[s] != "–" for s in SYMBOLS.values()) and full["layer"] == "layer_2"
    no_reps = wide.loc["devlin@adamw_hf"]  # outputs without representations: prediction measures only
    assert no_reps["I_pwd"] != "–" and no_reps["I_CKA"] == "–" and no_reps["with outputs"] == 3
    diverged = wide.loc["mosbach"]  # no run finished: listed, with nothing to measure
    assert diverged["n"] == 0 and all(diverged[s] == "–" for s in SYMBOLS.values())
    report = build_report(table, results / "study", "study", figures=False)
    section = report.markdown.read_text().split("## Instability beyond SD")[1].split("\n## ")[0]
    for name in ("devlin@bertadam", "devlin@adamw_hf", "mosbach"):
        assert name in section
