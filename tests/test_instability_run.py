"""A real (tiny) run keeps its per-example outputs and representations, and they reproduce its scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_overrides
from mixsweep.config.settings import Record, parse
from mixsweep.data.metrics import compute_metrics
from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError
from mixsweep.store import runs as store
from mixsweep.store.outputs import layer_names, point_outputs, representation_positions
from mixsweep.store.runid import run_id
from mixsweep.sweeping.compose import compose_run
from mixsweep.sweeping.execute import execute


def _run(tmp_path: Path, *extra: str):
    cfg = compose_run([*tiny_overrides(tmp_path), "train.evals_per_epoch=3", *extra])
    execute(cfg)
    results, rid = Path(cfg.paths.results), run_id(cfg)
    return cfg, results, rid, store.lookup(results, rid)


def test_stored_outputs_reproduce_the_recorded_scores(tmp_path):
    cfg, results, rid, record = _run(tmp_path, "seed=3")
    assert record.status == "ok"
    arrays, meta = store.read_outputs(results, rid)
    task = TaskSpec.from_config(dict(cfg.task))
    assert set(meta["points"]) == {"final", "best", "zhang2021"}
    assert len(meta["dev_hash"]) == 64
    final = point_outputs(arrays, meta, "final")
    assert compute_metrics(task, final.pred, final.labels) == record.final  # exact, every metric
    best = point_outputs(arrays, meta, "best")
    assert compute_metrics(task, best.pred, best.labels) == record.best
    assert meta["points"]["best"] == record.best_step
    zhang = point_outputs(arrays, meta, "zhang2021")
    from mixsweep.analysis.selection import zhang2021_point

    assert compute_metrics(task, zhang.pred[zhang.subset], zhang.labels[zhang.subset]) == \
        zhang2021_point(record.eval_curve, record.headline)
    # probabilities are a distribution whose argmax is the stored label (fp16: up to rounding ties)
    assert np.allclose(final.prob.astype(float).sum(1), 1, atol=2e-3)
    assert (final.prob.argmax(1) == final.pred).mean() > 0.95

    reps, rmeta = store.read_representations(results, rid)
    n = len(final.labels)
    # tiny BERT: 2 layers, quarters = layers 1, 1, 2, 2 → layer_1, layer_2; plus the head's input (pooled)
    assert rmeta["layers"] == ["layer_1", "layer_2", "head"]
    for layer in rmeta["layers"]:
        assert reps[f"rep_{layer}"].dtype == np.float16
        assert reps[f"rep_{layer}"].shape == (n, 32)
    assert (reps["positions"] == np.arange(n)).all()
    # BERT's head reads the pooler's tanh output: bounded by 1, unlike the layer states
    assert np.abs(reps["rep_head"].astype(float)).max() <= 1.0


def test_representations_are_the_final_models_states_of_the_kept_examples(tmp_path, monkeypatch):
    """The stored representations (taken inside the final evaluation's pass) equal what a plain
    Hugging Face forward of the trained model gives for the kept dev examples: [CLS] of each hidden
    layer, and the pooler's output that BERT's classifier reads."""
    import hashlib

    import torch

    from mixsweep.run import prepare, train

    kept: dict = {}
    finetune, loaders = prepare.finetune, train._loaders

    def keep_setup(*a, **k):
        kept["setup"] = finetune(*a, **k)
        return kept["setup"]

    def keep_loaders(*a, **k):
        kept["loaders"] = loaders(*a, **k)
        return kept["loaders"]

    monkeypatch.setattr(prepare, "finetune", keep_setup)
    monkeypatch.setattr(train, "_loaders", keep_loaders)
    cfg, results, rid, record = _run(tmp_path, "seed=1", "record.representations=[all,head]", "record.max_examples=5")
    assert record.status == "ok"
    reps, rmeta = store.read_representations(results, rid)
    model, dev = kept["setup"].model, kept["loaders"][1]
    n = len(dev.dataset)
    # the 5 positions with the smallest sha256 of their decimal index, in dev order
    expected = sorted(sorted(range(n), key=lambda i: hashlib.sha256(str(i).encode()).hexdigest())[:5])
    assert reps["positions"].tolist() == expected and rmeta["step"] == record.eval_curve[-1]["step"]

    model.eval()
    rows: dict = {"layer_1": [], "layer_2": [], "head": []}
    with torch.no_grad():
        for batch in dev:
            out = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             token_type_ids=batch.get("token_type_ids"), output_hidden_states=True)
            rows["layer_1"].append(out.hidden_states[1][:, 0])
            rows["layer_2"].append(out.hidden_states[2][:, 0])
            rows["head"].append(out.pooler_output)
    assert rmeta["layers"] == ["layer_1", "layer_2", "head"]
    for name, parts in rows.items():
        want = torch.cat(parts).numpy()[expected]
        got = reps[f"rep_{name}"].astype(np.float32)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)  # fp16 storage


def test_recording_off_writes_nothing_and_is_not_part_of_the_run_id(tmp_path):
    on = compose_run(tiny_overrides(tmp_path))
    off = compose_run([*tiny_overrides(tmp_path), "record.outputs=false", "record.representations=null"])
    assert run_id(on) == run_id(off)
    _, results, rid, record = _run(tmp_path, "record.outputs=false", "record.representations=null")
    assert record.status == "ok"
    assert store.read_outputs(results, rid) is None and store.read_representations(results, rid) is None


def test_record_settings_and_layers():
    assert layer_names(Record().representations, 24) == \
        ["layer_6", "layer_12", "layer_18", "layer_24", "head"]
    assert layer_names(["all"], 3) == ["layer_1", "layer_2", "layer_3"]
    assert layer_names([-1, 1], 12) == ["layer_1", "layer_12"]
    with pytest.raises(UserError):
        layer_names([13], 12)
    with pytest.raises(UserError):
        parse(Record, {"representations": ["cls"]}, "record")
    with pytest.raises(UserError):
        parse(Record, {"bogus": 1}, "record")
    pos = representation_positions(9815, 1000)
    assert len(pos) == 1000 and (np.diff(pos) > 0).all() and pos.max() < 9815
    assert (representation_positions(277, 1000) == np.arange(277)).all()


def test_regression_runs_store_scores_that_reproduce_the_record_and_get_sd_and_representations(tmp_path):
    from mixsweep.analysis.instability_tables import instability, results_root
    from mixsweep.analysis.load import load_results

    for seed in (0, 1):
        cfg, results, rid, record = _run(tmp_path, "task=stsb", f"seed={seed}", "sweep=reg")
        arrays, meta = store.read_outputs(results, rid)
        final = point_outputs(arrays, meta, "final")
        assert meta["regression"] and final.prob is None and final.pred.dtype == np.float32
        task = TaskSpec.from_config(dict(cfg.task))
        def same(d):  # exact equality, NaN (a constant predictor's correlation) equal to NaN
            return {k: ("nan" if v != v else v) for k, v in d.items()}

        assert same(compute_metrics(task, final.pred, final.labels)) == same(record.final)
    table = load_results(results, "reg")
    wide = instability(table.runs, table.records, results_root(table.origin)).wide
    assert wide.loc[0, "I_pwd"] == "–" and wide.loc[0, "SD"] != "–" and wide.loc[0, "I_CKA"] != "–"
