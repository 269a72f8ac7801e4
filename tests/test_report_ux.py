"""Issue 15 §5/§7: what a shared report says (provenance, recipe, captions, failure fallback) and
the row order of a p-sweep, through the CLI in a subprocess where a user would call it."""

from __future__ import annotations

import math

import pytest

from helpers import run_cli, unpadded
from mixsweep.analysis.load import load_external_csv
from mixsweep.analysis.naming import probability_key, sort_labels
from mixsweep.analysis.synthetic import regularizer_of, write_records
from mixsweep.records import RunRecord

ENV = {"git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
       "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.24.0"},
       "device": "cpu", "platform": "Linux-x86_64"}


def _config(label: str, lr: float = 5e-5) -> dict:
    return {"experiment": "finetune", "seed": 0, "model": {"name_or_path": "minilm_l6", "revision": None},
            "data": {"source": "bundled", "max_length": 64, "cache_dir": "/somewhere"},
            "optimizer": {"name": "bertadam", "lr": lr, "eps": 1e-6},
            "train": {"epochs": 2, "batch_size": 16, "warmup_ratio": 0.1, "max_grad_norm": 1.0},
            "regularizer": regularizer_of(label), "paths": {"results": "/tmp/x"}}


def _rec(label: str, seed: int, score: float, task: str = "rt_polarity", lr: float = 5e-5,
         created: str = "2026-12-01T10:00:00+00:00") -> RunRecord:
    return RunRecord(run_id=f"{label}-{seed}", sweep="s", task=task, cell=label, label=label, seed=seed,
                     status="ok", headline="accuracy", final={"accuracy": score}, best={"accuracy": score},
                     majority={"accuracy": 50.0}, config=_config(label, lr), env=ENV, created=created,
                     seeds={"init": seed, "data": seed, "noise": seed},
                     extra={"train_size": 512, "dev_size": 500})


@pytest.fixture(scope="module")
def smoke_like(tmp_path_factory):
    """rt_polarity (no lee2020 thresholds): majority-class accuracy 50, so a run at <= 50 failed."""
    root = tmp_path_factory.mktemp("r")
    scores = {"dropout(0.1)": [50.0, 71.0, 49.0], "mixout(w_pre,0.9)": [72.0, 73.0, 70.0]}
    recs = [_rec(lab, s, x, created=f"2026-12-01T10:0{s}:00+00:00") for lab, xs in scores.items()
            for s, x in enumerate(xs)]
    recs[-1].config["optimizer"]["lr"] = 1e-4  # one run with another lr: the recipe must say so
    write_records(recs, root)
    return root


def test_table_falls_back_to_majority_where_lee2020_is_undefined(smoke_like):
    rc, out, err = run_cli(smoke_like, ["table", "--sweep", "s", "--results", str(smoke_like)])
    assert rc == 0, err
    out = unpadded(out)
    # dropout(0.1): 50 <= 50 and 49 <= 50 failed (2 of 3); mixout: none (worked out by hand). The one
    # mixout run at lr 1e-4 is a cell of its own (cells are keyed by their whole config)
    assert "| dropout(0.1) [optimizer.lr=5e-05] | 71.0 (71.0) [2] |" not in out  # mean is over all three runs
    assert "| dropout(0.1) [optimizer.lr=5e-05] | 56.7 (71.0) [2] |" in out
    assert "| mixout(w_pre,0.9) [optimizer.lr=5e-05] | 72.5 (73.0) [0] |" in out
    assert "| mixout(w_pre,0.9) [optimizer.lr=0.0001] | 70.0 (70.0) [0] |" in out
    assert "as lee2020 is not defined for rt_polarity" in out and "rt_polarity: majority" in out


def test_report_opens_with_provenance_and_prints_the_recipe_under_the_tables(smoke_like):
    rc, out, err = run_cli(smoke_like, ["report", "--sweep", "s", "--results", str(smoke_like), "--no-figures"])
    assert rc == 0, err
    md = (smoke_like / "s" / "report.md").read_text()
    what_ran = md.split("## What ran")[1].split("\n## ")[0]
    for needle in ("**Model**: minilm_l6", "rt_polarity from bundled: train 512, dev 500, max_length 64",
                   "clipping 1", "restarts 0–2 (3 restarts)", "0123456789ab (dirty: uncommitted changes)",
                   "init = restart; data order = restart; dropout/mixout masks = restart",
                   "torch 2.13.0+cpu", "transformers 5.24.0",
                   "2026-12-01T10:00:00+00:00 to 2026-12-01T10:02:00+00:00"):
        assert needle in what_ran, needle
    assert md.index("## What ran") < md.index("## Per-cell results") < md.index("## Recipe") \
        < md.index("## Statistics")
    recipe = unpadded(md.split("## Recipe")[1].split("\n## ")[0])
    assert md.count("## Recipe") == 1
    assert "| optimizer.lr | 5e-05 (5 runs), 0.0001 (1 run) |" in recipe
    assert "| train.max_grad_norm | 1 |" in recipe and "| model.name_or_path | minilm_l6 |" in recipe
    assert "regularizer" not in recipe.split("|", 1)[1] and "cache_dir" not in recipe and "paths." not in recipe
    # lee2020 and dodge2020 are not defined for rt_polarity: no column of dashes, and the legend says so
    cells = md.split("## Per-cell results")[1].split("\n## ")[0]
    assert "#fail lee2020" not in cells and "#fail majority" in cells
    assert "lee2020: not defined for rt_polarity (no column)" in cells
    assert "## Paper-style table (mean (max) [#failed: majority])" in md
    assert "p Fisher (default)" in md


def test_report_figures_have_sentence_captions(smoke_like):
    rc, _, err = run_cli(smoke_like, ["report", "--sweep", "s", "--results", str(smoke_like)], timeout=300)
    assert rc == 0, err
    md = (smoke_like / "s" / "report.md").read_text()
    html = (smoke_like / "s" / "report.html").read_text()
    assert "*Figure 1.* Dev score of every run (dots)" in md
    assert "<figcaption><b>Figure 1.</b> Dev score of every run (dots)" in html
    assert "<figcaption>fig3_swarms</figcaption>" not in html
    # the Markdown is rendered by markdown-it-py: GFM tables with a header row, lists, emphasis
    assert "<thead>" in html and "<li><strong>Model</strong>: minilm_l6" in html


def test_html_shows_markup_in_record_values_as_text(tmp_path):
    rec = _rec("none", 0, 60.0)
    rec.config["model"]["name_or_path"] = "<script>alert(1)</script>"
    write_records([rec], tmp_path)
    rc, _, err = run_cli(tmp_path, ["report", "--sweep", "s", "--results", str(tmp_path), "--no-figures"])
    assert rc == 0, err
    html = (tmp_path / "s" / "report.html").read_text()
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


P_SWEEP = ["mixout(w_pre,0.7)", "mixout(w_pre,0.1)", "mixout(w_pre,0.9)", "mixout(w_pre,0.3)",
           "dropout(0.5)", "dropout(0.1)", "none"]


def test_table_of_a_p_sweep_lists_each_family_by_increasing_p(tmp_path):
    write_records([_rec(lab, s, 60.0 + s) for lab in P_SWEEP for s in range(2)], tmp_path)
    rc, out, err = run_cli(tmp_path, ["table", "--sweep", "s", "--results", str(tmp_path)])
    assert rc == 0, err
    rows = [line.split("|")[1].strip() for line in out.splitlines()[2:] if line.startswith("|")]
    # mixout first (the paper's "Our" is in it), 0.1 < 0.3 < 0.7 < 0.9; then dropout 0.1 < 0.5; then none.
    # Inside a sweep, mixout(w_pre,0.7) is one point of it: its label, not "Our"
    assert rows == ["mixout(w_pre,0.1)", "mixout(w_pre,0.3)", "mixout(w_pre,0.7)", "mixout(w_pre,0.9)",
                    "dropout(0.1)", "dropout(0.5)", "none"]


def test_p_is_read_from_the_config_in_either_regularizer_layout():
    old = probability_key(regularizer_of("mixout(w_pre,0.7)"))
    # the per-method layout of the regularizer interface: absent = off, dropout is {p, head}
    new_drop = probability_key({"name": "dropout", "dropout": {"p": 0.3, "head": False}})
    new_drop2 = probability_key({"name": "dropout", "dropout": {"p": 0.1, "head": False}})
    new_mix = probability_key({"name": "mixout", "mixout": {"p": 0.7, "layers": "paper", "head": {"p": None}}})
    assert old[1] == (0.7,) and new_drop[1] == (0.3,) and new_mix[1] == (0.7,)
    assert new_drop[0] == new_drop2[0] != new_mix[0]
    with_wd = probability_key({**regularizer_of("mixout(w_pre,0.7)"), "wdecay": {"lam": 0.01, "target": "pretrained"}})
    assert with_wd[0] != old[0]  # mixout + wdecay is its own family
    keys = {"dropout(0.3)": new_drop, "dropout(0.1)": new_drop2}
    assert sort_labels({"dropout(0.3)", "dropout(0.1)"}, keys) == ["dropout(0.1)", "dropout(0.3)"]


def test_labels_are_never_parsed_for_p(tmp_path):
    # a label that claims p = 0.1 while the config ran p = 0.95: the config decides the order
    recs = [_rec("mixout(w_pre,0.5)", 0, 60.0), _rec("mixout(w_pre,0.1)", 0, 61.0)]
    recs[1].config["regularizer"]["mixout"]["p"] = 0.95
    write_records(recs, tmp_path)
    rc, out, _ = run_cli(tmp_path, ["table", "--sweep", "s", "--results", str(tmp_path)])
    rows = [line.split("|")[1].strip() for line in out.splitlines()[2:] if line.startswith("|")]
    assert rc == 0 and rows == ["mixout(w_pre,0.5)", "mixout(w_pre,0.1)"]
    # and a CSV, which has no config, keeps the plain order
    csv = tmp_path / "runs.csv"
    csv.write_text("task,config,seed,score\n" + "".join(f"rte,M{p},0,60\n" for p in (0.9, 0.1)))
    runs = load_external_csv(csv).runs
    assert runs["p_family"].isna().all() and all(v is None or (isinstance(v, float) and math.isnan(v))
                                                  for v in runs["p_values"])


def test_data_source_auto_is_named_as_the_sweep_header_names_it():
    from mixsweep.analysis.provenance import _data

    rec = _rec("dropout(0.1)", 0, 70.0)
    rec.config["data"]["source"] = "auto"
    rec.config["task"] = {"name": "rt_polarity", "default_source": "bundled"}
    assert _data(rec) == "rt_polarity from bundled: train 512, dev 500, max_length 64"
    rec.config["task"] = {"name": "rte"}  # no default_source: the hub, as in data.loading
    assert _data(rec).startswith("rt_polarity from hub:")
