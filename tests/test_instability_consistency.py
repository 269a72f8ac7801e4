"""Whether the measures agree (#32 items 13, 14): Kendall's τ over cells, the authors' bootstrap
correlations, the successful/failed split, in the report; and the degeneracy note's measured values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixsweep.instability import (
    cell_measures,
    cka_distance,
    procrustes_distance,
    pwcca_distance,
    svcca_distance,
)
from mixsweep.instability.cell import bootstrap_draws, subset_values
from mixsweep.instability.consistency import bootstrap_correlations, kendall_tau, outcome_split


def test_kendall_tau_by_hand():
    values = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 3.0, 2.0, 4.0], "c": [1.0, 1.0, 2.0, 3.0]})
    tau = kendall_tau(values).set_index(["a", "b"])["tau"]
    # a~b: of the 6 pairs of cells only (2nd, 3rd) is discordant: (5 − 1)/6
    assert tau[("a", "b")] == pytest.approx(2 / 3)
    # a~c: 5 concordant, 0 discordant, 1 pair tied in c only: τ_b = 5/√((5 + 0 + 0)(5 + 0 + 1)) = 5/√30
    assert tau[("a", "c")] == pytest.approx(5 / math.sqrt(30))
    # b~c: pairs (1,2): b up, c tied; (1,3) +; (1,4) +; (2,3): b down, c up → −; (2,4) +; (3,4) +
    # C = 4, D = 1, tied in c only 1: (4 − 1)/√(5 · 6)
    assert tau[("b", "c")] == pytest.approx(3 / math.sqrt(30))
    # fewer than 3 cells with both values: no τ
    short = kendall_tau(pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [2.0, 1.0, 3.0]}))
    assert np.isnan(short["tau"].iloc[0]) and short["n"].iloc[0] == 2


def authors_bootstrap_row(scores, labels_pwd, draw):
    """Port of the authors' "Bootstrapping" cell (``analyze_measures.ipynb``) for one draw: SD with
    ``np.std`` over the drawn seeds, then the loop ``for seed_0_idx, seed_0 in enumerate(sample_seeds):
    for seed_1 in sample_seeds[seed_0_idx+1:]`` over disagreement values, averaged."""
    sd = np.std(np.array([scores[s] for s in draw]))
    stats = []
    for i0, s0 in enumerate(draw):
        for s1 in draw[i0 + 1:]:
            stats.append(1 - np.sum(labels_pwd[s0] == labels_pwd[s1]) / labels_pwd.shape[1])
    return sd, np.mean(np.array(stats))


def test_bootstrap_correlations_follow_the_authors_draws():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, (6, 30))
    scores = rng.normal(70, 3, 6)
    cm = cell_measures(scores, labels=labels, num_classes=2, measures=["sd", "pwd"])
    draws = bootstrap_draws(6, 300, seed=1)
    assert (np.diff(draws, axis=1) >= 0).all()  # sorted, as sorted(random.choices(...))
    ref = np.array([authors_bootstrap_row(scores, labels, list(d)) for d in draws])
    corr = bootstrap_correlations(cm, None, n_boot=300, seed=1)
    assert corr.loc["sd", "pwd"] == pytest.approx(np.corrcoef(ref[:, 0], ref[:, 1])[0, 1], abs=1e-12)
    # a draw with a repeated run pairs it with itself at 0: [0, 0, 1] → (0 + d01 + d01)/3
    d01 = (labels[0] != labels[1]).mean()
    small = cell_measures(scores[:3], labels=labels[:3], num_classes=2, measures=["pwd"])
    assert subset_values(small, np.array([0, 0, 1]), None)["pwd"] == pytest.approx(2 * d01 / 3)


def test_outcome_split_by_hand():
    labels = np.array([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    scores = np.array([70.0, 50.0, 72.0, 52.0, 71.0])
    cm = cell_measures(scores, labels=labels, num_classes=2, measures=["sd", "pwd"])
    split = outcome_split(cm, np.array([0.0, 1.0, 0.0, 1.0, np.nan]), None)  # run 4: not applicable
    # successful runs 0 and 2 differ at example 1: 1/4; failed runs 1 and 3 differ everywhere: 1
    assert split["successful"] == pytest.approx({"n": 2, "sd": 1.0, "pwd": 0.25})
    assert split["failed"] == pytest.approx({"n": 2, "sd": 1.0, "pwd": 1.0})
    one = outcome_split(cm, np.array([0.0, 1.0, 0.0, 0.0, 0.0]), None)["failed"]
    assert one == {"n": 1.0}  # one failed run: nothing to measure


def test_degeneracy_note_states_measured_values():
    # independent standard Gaussians, 300 examples × 1,024 dims: the note's numbers, measured here
    from mixsweep.analysis.instability_tables import DEGENERACY_NOTE, DEGENERATE_300x1024

    r = np.random.default_rng(0)
    x, y = r.standard_normal((300, 1024)), r.standard_normal((300, 1024))
    measured = {"svcca": svcca_distance(x, y), "procrustes": procrustes_distance(x, y),
                "cka": cka_distance(x, y), "pwcca": pwcca_distance(x, y)}
    for name, stated in DEGENERATE_300x1024.items():
        assert measured[name] == pytest.approx(stated, abs=0.003), name
    assert f"{measured['svcca']:.3f}" in DEGENERACY_NOTE and f"{measured['procrustes']:.3f}" in DEGENERACY_NOTE
    assert "stay informative" not in DEGENERACY_NOTE.split("Only CKA")[0]  # SVCCA/Procrustes are not


def _store(results: Path) -> None:
    """Four RTE cells of four restarts (40 dev examples, 10-dim representations), scored on accuracy so
    that lee2020 (accuracy < 55) applies: in ``mixout`` two restarts fail. The cells' disagreement grows
    with their noise, so every measure ranks them alike."""
    from mixsweep.records import RunRecord
    from mixsweep.store import runs as store
    from mixsweep.store.outputs import RunOutputs

    rng = np.random.default_rng(0)
    n = 40
    truth = rng.integers(0, 2, n)
    base = rng.standard_normal((n, 10))
    entries = []
    for c, (name, noise) in enumerate({"devlin": 0.05, "mixout": 0.15, "llrd": 0.3, "reinit": 0.45}.items()):
        for seed in range(4):
            rid = f"{name}-s{seed}"
            pred = np.where(rng.random(n) < noise, 1 - truth, truth)
            if name == "mixout" and seed >= 2:
                pred = np.zeros(n, dtype=int)  # a failed run: the majority class everywhere
            score = 100 * float((pred == truth).mean()) if not (name == "mixout" and seed >= 2) else 50.0
            prob = np.where(np.eye(2)[pred] == 1, 0.8, 0.2).astype(np.float16)
            rec = RunRecord(run_id=rid, sweep="consistency", task="rte", cell=name, label=name, seed=seed,
                            status="ok", headline="accuracy", final={"accuracy": score}, best={"accuracy": score},
                            config={"optimizer": {"name": f"opt{c}"}, "regularizer": {"dropout": 0.1}, "seed": seed})
            out = RunOutputs()
            out.outputs = {"labels": truth, "pred_30": pred.astype(np.int16), "prob_30": prob,
                           "test_half": np.arange(n // 2, n, dtype=np.int32),
                           "val_half": np.arange(n // 2, dtype=np.int32)}
            out.outputs_meta = {"points": {"final": 30, "best": 30, "zhang2021": 30}, "dev_hash": "h" * 64,
                                "regression": False, "num_classes": 2, "n_examples": n}
            out.representations = {"rep_layer_2": (base + (c + 1) * rng.standard_normal((n, 10))).astype(np.float16),
                                   "positions": np.arange(n, dtype=np.int32)}
            out.representations_meta = {"layers": ["layer_2"], "step": 30, "dev_hash": "h" * 64, "n_examples": n,
                                        "dtype": "float16"}
            store.write_outputs(store.run_dir(results, rid), out)
            store.write_record(store.run_dir(results, rid), rec)
            entries.append({"run_id": rid, "task": "rte", "cell": name})
    store.add_to_view(results, "consistency", entries)


MIXOUT = "mixout [optimizer=opt1]"  # cells differ by optimizer only, so the label names it


def test_report_shows_tau_bootstrap_correlations_and_the_outcome_split(tmp_path):
    from mixsweep.analysis.instability_tables import instability, measure_agreement, outcome_table
    from mixsweep.analysis.load import load_results
    from mixsweep.analysis.report import build_report

    results = tmp_path / "results"
    _store(results)
    table = load_results(results, "consistency")
    result = instability(table.runs, table.records, results)
    # τ between I_pwd and the authors' I_κ = n/(n − 1)·I_pwd is 1 whatever the cells (same ranking)
    tau = measure_agreement(result).set_index(["a", "b"])
    assert tau.loc[("pwd", "kappa_authors"), "tau"] == pytest.approx(1.0) and tau.loc[("pwd", "kappa_authors"), "n"] == 4
    # the independent value: τ-b of the two columns as the main table holds them
    pwd = {k[1]: cm.values["pwd"].value for k, cm in result.cells.items()}
    sd = {k[1]: cm.values["sd"].value for k, cm in result.cells.items()}
    from scipy.stats import kendalltau

    labels = sorted(pwd)
    expected = kendalltau(np.round([sd[x] for x in labels], 10), np.round([pwd[x] for x in labels], 10)).statistic
    assert tau.loc[("sd", "pwd"), "tau"] == pytest.approx(expected)
    split = outcome_table(result).set_index(["regularizer", "runs"])
    assert split.loc[(MIXOUT, "failed"), "n"] == 2 and split.loc[(MIXOUT, "failed"), "I_pwd"] == "0.000"
    assert split.loc[(MIXOUT, "successful"), "n"] == 2 and ("devlin [optimizer=opt0]", "failed") not in split.index
    section = build_report(table, results / "consistency", "consistency", figures=False).markdown.read_text()
    section = section.split("## Instability beyond SD")[1].split("\n## ")[0]
    for text in ("I_κ (textbook)", "I_κ (authors)", "Kendall's τ-b", "bootstrap draws", "successful runs alone",
                 "jackknife", "lee2020"):
        assert text in section, text
