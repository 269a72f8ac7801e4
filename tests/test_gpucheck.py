"""scripts/gpu-check (issue 17): the CPU mode end to end, and its parts on hand-worked examples."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from mixsweep.gpucheck import estimate
from mixsweep.gpucheck.correctness import compare, determinism_check, operator_checks, target_check
from mixsweep.gpucheck.summary import render_markdown

ROOT = Path(__file__).resolve().parents[1]
TINY = {"name_or_path": "tiny", "revision": None,
        "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64, "seed": 1234}}


def test_steps_per_run_match_glue_sizes():
    # ceil(n / 32) * 3 by hand: RTE 2490 -> 78, MRPC 3668 -> 115, CoLA 8551 -> 268, STS-B 5749 -> 180
    got = {t: estimate.steps_per_run(n) for t, (n, _) in estimate.GLUE_SIZES.items()}
    assert got == {"rte": 234, "mrpc": 345, "cola": 804, "stsb": 540}
    assert estimate.steps_per_run(2490, batch=4) == 623 * 3  # 2490 / 4 = 622.5


def test_makespan_longest_first_hand_example():
    # 3->A, 3->B, 2->A (5), 2->B (5), 2->A (7)
    assert estimate.makespan([2, 3, 2, 3, 2], 2) == 7
    assert estimate.makespan([2, 3, 2, 3, 2], 1) == 12
    assert estimate.makespan([2, 3, 2, 3, 2], 8) == 3
    with pytest.raises(ValueError):
        estimate.makespan([1], 0)


def test_table1_estimate_counts_880_runs():
    step = {"devlin": 1.0, "wdecay": 1.0, "mixout": 1.0, "mixout_wdecay": 1.0}
    est = estimate.table1_estimate(step, eval_s_per_example=0.0, overhead_s=0.0)
    assert est["runs"] == 880  # 4 tasks x 11 rows x 20 seeds (Table 1)
    # (234 + 345 + 804 + 540) steps x 11 rows x 20 seeds at 1 s each
    assert est["run_s"]["sum"] == pytest.approx(1923 * 220)
    assert est["gpus"]["1"]["wall_s"] == pytest.approx(1923 * 220)
    assert 1923 * 220 / 8 <= est["gpus"]["8"]["wall_s"] <= 1923 * 220 / 8 + 804
    # a row's step time enters only that row's runs: mixout 2 s adds 3 rows x 20 seeds x 1923 steps
    slower = estimate.table1_estimate({**step, "mixout": 2.0}, 0.0, 0.0)
    assert slower["run_s"]["sum"] - est["run_s"]["sum"] == pytest.approx(3 * 20 * 1923)
    with pytest.raises(ValueError, match="wdecay"):
        estimate.table1_runs({"devlin": 1.0, "mixout": 1.0, "mixout_wdecay": 1.0}, 0.0, 0.0)


def test_compare_reports_the_difference():
    ok = compare("x", "operator", "fp32", {"a": torch.tensor([1.0, 2.0])}, {"a": torch.tensor([1.0, 2.0])})
    bad = compare("x", "operator", "fp32", {"a": torch.tensor([1.0, 2.0])}, {"a": torch.tensor([1.0, 2.5])})
    assert ok["max_abs_diff"] == 0 and ok["passed"]
    assert bad["max_abs_diff"] == pytest.approx(0.5) and bad["rel"] == pytest.approx(0.2) and not bad["passed"]


def test_operator_checks_cpu_against_cpu_are_exact():
    # The mask is random per call unless fixed_mask takes effect, so 0 here shows both sides used one mask.
    checks = {c["name"]: c for c in operator_checks(torch.device("cpu"), bf16=True)}
    assert checks["mixout() fp32"]["max_abs_diff"] == 0
    assert checks["MixLinear fp32"]["max_abs_diff"] == 0
    assert checks["MixLinear fp32"]["tensors"] == ["grad_bias", "grad_weight", "grad_x", "out"]
    for name in ("mixout() bf16", "MixLinear bf16 autocast"):  # bf16 rounds: close, not equal
        assert 0 < checks[name]["rel"] <= checks[name]["tol"]


def test_target_check_on_cpu():
    t = target_check(TINY, torch.device("cpu"), steps=2, batch=2, seq=8)
    # 2 layers x (query, key, value, attention.output.dense, output.dense) + pooler.dense; the FFN
    # up-projection is not mixed (layers=paper)
    assert t["mixlinear_layers"] == 11
    assert t["targets_in_optimizer"] == 0 and t["targets_in_state_dict"] == 0
    assert t["targets_unchanged"] and t["weights_changed"] == 11 and t["passed"]


def test_determinism_check_reports_distance():
    def fake(losses):
        it = iter(losses)

        def runner(cfg):
            return {"status": "ok", "final": {}, "times": {"train_s": 0.0},
                    "train_loss": [{"step": i + 1, "loss": v} for i, v in enumerate(next(it))]}
        return runner

    same = determinism_check(["model=tiny"], runner=fake([[0.7, 0.6], [0.7, 0.6]]))
    apart = determinism_check(["model=tiny"], runner=fake([[0.7, 0.6, 0.5], [0.7, 0.1, 0.5]]))
    assert same["identical"] and same["max_abs_loss_diff"] == 0 and same["first_differing_step"] is None
    assert not apart["identical"] and apart["max_abs_loss_diff"] == pytest.approx(0.5)
    assert apart["first_differing_step"] == 2


def test_quick_plan_holds_parsed_settings(tmp_path):
    from mixsweep.config.settings import Model, TinyModel
    from mixsweep.gpucheck.cli import build_parser, make_plan
    from mixsweep.gpucheck.prepare import run_settings

    plan = make_plan(build_parser().parse_args(["--device", "cpu", "--quick", "--out", str(tmp_path / "gc")]))
    # conf/model/tiny.yaml, typed here from the file
    tiny = Model(name_or_path="tiny", revision=None, tiny=TinyModel(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, seed=1234))
    assert plan.correctness.model == tiny and plan.cost.models == (tiny,)
    assert plan.cost.regularizers[0] == "none" and (plan.cost.batch, plan.cost.seq) == (4, 16)
    run = run_settings(plan.throughput.run)  # --quick: 32 / 16 examples of rt_polarity, 1 epoch, batch 8, mixout
    assert (run.task_name, run.data.train_size, run.data.dev_size) == ("rt_polarity", 32, 16)
    assert (run.train.epochs, run.train.batch_size, run.regularizer_name) == (1, 8, "mixout")
    assert not (tmp_path / "gc").exists()  # planning writes nothing


def test_throughput_variants_are_new_settings():
    import pickle

    from mixsweep.gpucheck.prepare import run_settings
    from mixsweep.gpucheck.throughput import one_step, restart

    run = run_settings(["model=tiny", "task=rt_polarity", "train.max_steps=6"])
    warm = one_step(restart(run, 3))
    assert (warm.seed, warm.init_seed, warm.data_seed, warm.noise_seed) == (3, 3, 3, 3)
    assert warm.train.max_steps == 1 and warm.train.batch_size == run.train.batch_size
    assert (run.seed, run.init_seed, run.train.max_steps) == (0, 0, 6)  # the original is untouched
    assert pickle.loads(pickle.dumps(warm)) == warm  # what the spawned workers receive


def test_markdown_shows_errors_and_skips():
    md = render_markdown({"device": "cuda:0", "started": "t", "budget_s": 480.0, "wall_s": 1.0, "passed": False,
                          "sections": {"environment": {"status": "error", "error": "RuntimeError: boom"},
                                       "cost": {"status": "skipped", "reason": "3s of the budget left"}}})
    assert "**error**: `RuntimeError: boom`" in md and "**skipped**: 3s of the budget left" in md
    assert "FAILED or incomplete" in md
    boom = {"error": "RuntimeError: boom"}
    md = render_markdown({"device": "cuda:0", "started": "t", "budget_s": 480.0, "passed": False, "sections": {
        "correctness": {"status": "ok", "operator": boom, "target": boom, "determinism": {"fp32": boom}}}})
    assert md.count("RuntimeError: boom") == 3


@pytest.mark.parametrize("args, problem", [
    (["--bert-large", "/nonexistent/bert-large"], "--bert-large /nonexistent/bert-large: no config.json"),
    (["--sections", "cost,speed"], "unknown section(s) speed"),
    (["--regularizers", "none,mixup"], "unknown regularizer(s) mixup"),
    (["--ks", "0,2"], "--ks '0,2'"),
    (["--out", "/proc/version/gc"], "is not writable"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, args, problem):
    from mixsweep.gpucheck.cli import main

    out = tmp_path / "out"
    assert main(["--device", "cpu", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu-check: error: ") and problem in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_quick_cpu_mode_end_to_end(tmp_path):
    out = tmp_path / "gc"
    env = {**os.environ, "MIXSWEEP_CACHE": str(tmp_path / "cache")}
    # a generous budget: the check must complete even on a loaded machine (it takes < 1 min idle)
    proc = subprocess.run([str(ROOT / "scripts" / "gpu-check"), "--device", "cpu", "--quick", "--out", str(out),
                           "--budget", "900"], capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[gpu-check" in proc.stdout and "correctness: ok" in proc.stdout  # progress lines
    s = json.loads((out / "summary.json").read_text())
    sec = s["sections"]
    assert s["passed"] is True and s["device"] == "cpu" and s["quick"] is True
    assert {k: v["status"] for k, v in sec.items()} == dict.fromkeys(
        ("environment", "correctness", "cost", "throughput"), "ok")

    env_ = sec["environment"]
    assert env_["torch"] == torch.__version__ and env_["cuda_build"] == torch.version.cuda
    assert env_["gpu_name"] is None and env_["cublas_workspace_config"] == ":4096:8"

    corr = sec["correctness"]
    ops = {c["name"]: c for c in corr["operator"]}
    assert ops["mixout() fp32"]["max_abs_diff"] == 0 and ops["MixLinear fp32"]["max_abs_diff"] == 0
    assert corr["target"]["passed"] and corr["target"]["targets_in_optimizer"] == 0
    det = corr["determinism"]["fp32"]
    assert det["identical"] and det["max_abs_loss_diff"] == 0 and det["steps"] == [6, 6]
    assert det["status"] == ["ok", "ok"]

    (model,) = sec["cost"]["models"]
    assert model["model"] == "tiny" and model["batch"] == 4 and model["seq"] == 16
    for precision in ("fp32", "bf16"):
        entry = model["precisions"][precision]
        names = [v["regularizer"] for v in entry["variants"]]
        assert names == ["none", "dropout", "devlin", "wdecay", "mixout", "mixout_wdecay"]
        assert all(v["ratio"] > 0 and v["steps_per_s"] > 0 and v["resident_mib"] > 0 for v in entry["variants"])
        assert entry["variants"][0]["ratio"] == 1.0
        assert all(v["step_peak_mib"] is None for v in entry["variants"])  # no allocator counter on a CPU
        assert entry["mixout_over_dropout"] > 0
        assert entry["paper_mixout_over_dropout"] == pytest.approx(1.325, abs=1e-3)  # App. E: 843 s / 636 s
        assert entry["eval_s_per_example"] > 0

    thr = sec["throughput"]
    assert [r["k"] for r in thr["k"]] == [1, 2] and thr["skipped_k"] == []
    assert all(r["runs_per_hour"] > 0 and r["wall_s"] > 0 for r in thr["k"])
    assert thr["k"][0]["gain"] == 1.0
    est = thr["table1_estimate"]
    assert est["model"] == "tiny" and est["is_bert_large"] is False
    t1 = est["precisions"]["fp32"]["serial"]
    assert t1["runs"] == 880
    assert t1["gpus"]["1"]["wall_s"] / 8 <= t1["gpus"]["8"]["wall_s"] <= t1["gpus"]["1"]["wall_s"]

    md = (out / "summary.md").read_text()
    for heading in ("## 1. Environment", "## 2. Correctness", "## 3. Cost", "## 4. Throughput"):
        assert heading in md
    assert "not BERT-large" in md


@pytest.mark.slow
def test_cost_measures_a_local_model_directory_first(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from mixsweep.gpucheck.cli import main

    local = tmp_path / "my-bert-large"
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64)).save_pretrained(local)
    out = tmp_path / "gc"
    rc = main(["--out", str(out), "--device", "cpu", "--quick", "--sections", "cost",
               "--regularizers", "none,mixout", "--bert-large", str(local)])
    assert rc == 0
    cost = json.loads((out / "summary.json").read_text())["sections"]["cost"]
    assert [m["model"] for m in cost["models"]] == [str(local.resolve()), "tiny"]
    large = cost["models"][0]
    assert [v["regularizer"] for v in large["precisions"]["fp32"]["variants"]] == ["none", "mixout"]
    assert 0 < large["parameters"] < cost["models"][1]["parameters"]  # 1 encoder layer vs tiny's 2
