"""Determinism on the CPU, seed independence, ``mixsweep rerun``, and numeric faults."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from helpers import OUTCOME, records, sweep_argv, write_study
from mixsweep.cli import main


@pytest.fixture(scope="module")
def train_once(tmp_path_factory):
    """``run(overrides)`` -> the measurements of one tiny run (no store involved)."""
    from mixsweep.run.train import run
    from mixsweep.sweeping.compose import compose_run

    base = tiny_overrides(tmp_path_factory.mktemp("det"))
    return lambda *overrides: run(compose_run([*base, "regularizer=mixout", "regularizer.mixout.p=0.5",
                                               "train.eval_every=1", *overrides]))


def measured(out: dict) -> dict:
    return {k: out[k] for k in OUTCOME if k in out}


def test_same_config_and_seed_give_bitwise_identical_metrics_and_curves(train_once):
    a, b = train_once("seed=3"), train_once("seed=3")
    assert a["status"] == "ok" and len(a["eval_curve"]) > 1
    assert measured(a) == measured(b)


def test_each_seed_drives_its_own_source_of_randomness(train_once):
    """init_seed (the head's init), data_seed (the batch order) and noise_seed (the mixout masks)
    each change the training losses on their own. Mixout(w_pre) equals w_pre at step 1 whatever
    the mask, so the masks show from step 2 on."""
    def losses(*overrides: str) -> list[float]:
        return [e["loss"] for e in train_once("seed=0", "train.max_steps=2", *overrides)["train_loss"]]

    base = losses()
    varied = {name: losses(f"{name}=1") for name in ("init_seed", "data_seed", "noise_seed")}
    assert varied["init_seed"][0] != base[0] and varied["data_seed"][0] != base[0]
    assert varied["noise_seed"][0] == base[0] and varied["noise_seed"][1] != base[1]
    assert losses() == base


def test_different_seeds_give_different_head_inits():
    from transformers import BertConfig, BertForSequenceClassification

    from mixsweep.models.pretrained import init_head

    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64))

    def head(seed: int) -> torch.Tensor:
        init_head(model, ["classifier"], 0.02, seed)
        return model.classifier.weight.detach().clone()

    assert torch.equal(head(0), head(0))
    assert not torch.equal(head(0), head(1))
    assert abs(head(5).std().item() - 0.02) < 0.01 and model.classifier.bias.abs().sum() == 0


@pytest.fixture
def study(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MIXSWEEP_SEARCH_PATH", str(tmp_path))
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_record_carries_what_a_rerun_needs_and_rerun_reproduces_it(study, capsys):
    write_study(study, "rr", {"mixout_0.5": ["regularizer=mixout", "regularizer.mixout.p=0.5"]}, seeds=1)
    results = study / "results"
    assert main(sweep_argv(results, "rr")) == 0
    (rec,) = records(results, "rr").values()
    assert rec.config["regularizer"]["mixout"]["p"] == 0.5 and rec.config["model"]["name_or_path"] == "tiny"
    assert rec.seeds == {"init": 0, "data": 0, "noise": 0}
    assert rec.env["versions"]["torch"] == torch.__version__ and "commit" in rec.env["git"]
    assert rec.env["determinism"]["deterministic_algorithms"] is True
    capsys.readouterr()

    assert main(["rerun", rec.run_id[:8], "--results", str(results)]) == 0
    assert "metrics match exactly" in capsys.readouterr().out

    path = results / "runs" / rec.run_id / "result.json"
    stored = json.loads(path.read_text())
    stored["final"]["accuracy"] += 1.0  # a record that no longer matches what its config produces
    path.write_text(json.dumps(stored))
    assert main(["rerun", rec.run_id, "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "differs: accuracy" in out and "do NOT match" in out


def test_a_diverging_run_stops_is_recorded_as_diverged_and_counts_as_failed(study, capsys):
    from mixsweep.analysis import aggregate, failure_mask, load_results

    write_study(study, "diverge", {"fine": ["regularizer=none"],
                               "huge_lr": ["regularizer=none", "optimizer.lr=1e12"]}, seeds=2, epochs=2)
    results = study / "results"
    assert main(sweep_argv(results, "diverge")) == 0, "the sweep goes on past a diverged run"
    recs = list(records(results, "diverge").values())
    diverged = [r for r in recs if r.config["optimizer"]["lr"] == 1e12]
    assert len(recs) == 4 and all(r.status == "ok" for r in recs if r not in diverged)
    for r in diverged:
        assert r.status == "diverged" and r.final == {}
        assert r.extra["steps"] < 2 * math.ceil(r.extra["train_size"] / 8), "it stopped early"
        assert not math.isfinite(r.train_loss[-1]["loss"])

    runs = load_results(results, "diverge").runs
    failed = failure_mask(runs, "lee2020")
    assert failed[runs["status"] == "diverged"].all() and len(runs[runs["status"] == "diverged"]) == 2
    table = aggregate(runs)
    assert table["n_nan"].sum() == 2 and table["fail_lee2020"].sum() >= 2
