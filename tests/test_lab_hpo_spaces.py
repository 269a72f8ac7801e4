"""The stabilizer lab's equal-budget search (issue 32 item 6): one space per lab method in
conf/hpo/lab_*.yaml, the baseline's included, searched by ``make hpo-lab`` with one TRIALS for all."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mixsweep.config import schema
from mixsweep.hpo.request import HpoRequest
from mixsweep.hpo.space import load_space, space_names
from mixsweep.regularizers.base import build_methods
from mixsweep.sweeping.compose import compose_run

ROOT = Path(__file__).resolve().parents[1]
# each base cell of sweeps/stabilizers.yaml -> its space (typed by hand: a lab cell without a space fails)
LAB = {"devlin": "lab_devlin", "reinit_3": "lab_reinit", "llrd": "lab_llrd", "mosbach": "lab_mosbach",
       "recadam": "lab_recadam", "child_tuning_f": "lab_child_tuning_f", "noisytune": "lab_noisytune",
       "r3f": "lab_r3f", "hype": "lab_hype", "rdrop": "lab_rdrop", "spd": "lab_spd", "smart": "lab_smart",
       "lora": "lab_lora", "bitfit": "lab_bitfit", "cwgnc": "lab_cwgnc", "dps": "lab_dps",
       "mixout_0.9": "lab_mixout", "wdecay_0.01": "lab_wdecay"}
# the method's own knob in each space (besides lr), as the space file names it
KNOB = {"lab_reinit": "regularizer.reinit.k", "lab_llrd": "regularizer.llrd.xi", "lab_recadam": "regularizer.recadam.t0",
        "lab_child_tuning_f": "regularizer.child_tuning.p_f", "lab_noisytune": "regularizer.noisytune.lam",
        "lab_r3f": "regularizer.r3f.lam", "lab_hype": "regularizer.hype.eps", "lab_rdrop": "regularizer.rdrop.alpha",
        "lab_spd": "regularizer.spd.lam", "lab_smart": "regularizer.smart.alpha",
        "lab_lora": "regularizer.lora.alpha", "lab_bitfit": "train.batch_size",
        "lab_cwgnc": "regularizer.cwgnc.max_norm", "lab_dps": "regularizer.dps.reserve_p",
        "lab_mixout": "regularizer.mixout.p", "lab_wdecay": "regularizer.wdecay.lam"}
PETUNING_LR = [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2]  # search_{lora,bitfit}.sh's `for lr in`


def test_every_lab_cell_has_one_space_and_no_space_is_left_over():
    cells = OmegaConf.to_container(compose_run(["+sweeps=stabilizers"], hydra=True).hydra.sweeper.cells)
    assert list(cells) == list(LAB)
    assert sorted(n for n in space_names() if n.startswith("lab_")) == sorted(LAB.values())


def test_every_full_finetuning_method_searches_the_same_lr_axis_and_the_peft_methods_their_grid():
    for name in LAB.values():
        lr = {p.key: p for p in load_space(name).params}["optimizer.lr"]
        if name in ("lab_lora", "lab_bitfit"):
            assert (lr.kind, list(lr.choices)) == ("categorical", PETUNING_LR)
        else:
            assert (lr.kind, lr.low, lr.high, lr.log, lr.step) == ("float", 1e-5, 5e-5, True, None)
    assert [p.key for p in load_space("lab_devlin").params] == ["optimizer.lr"]  # the baseline: lr alone
    recadam = {p.key: p for p in load_space("lab_recadam").params}  # RecAdam README's grids
    assert list(recadam["regularizer.recadam.k"].choices) == [0.05, 0.1, 0.2, 0.5, 1.0]
    assert list(recadam["regularizer.recadam.t0"].choices) == [100, 250, 500, 1000]
    cwgnc = {p.key: p for p in load_space("lab_cwgnc").params}  # FineTuningStability run.sh's grid
    assert list(cwgnc["regularizer.cwgnc.max_norm"].choices) == [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 1e5]


def _ends(space, end: int) -> dict:
    """Every parameter at one end of its range (end 0: low / first choice, 1: high / last choice)."""
    return {p.key: (p.choices[-end] if p.kind == "categorical" else (p.low, p.high)[end]) for p in space.params}


@pytest.mark.parametrize("name", sorted(LAB.values()))
def test_each_lab_space_runs_at_both_ends_of_its_ranges_with_the_trials_values(name, tmp_path):
    space = load_space(name)
    req = HpoRequest(task="rte", space=name, results=str(tmp_path / "r"), overrides=["model=tiny"])
    for end in (0, 1):
        values = _ends(space, end)
        cfg = compose_run(req.run_overrides(space, values, seed=0, cell="trial"))
        plain = OmegaConf.to_container(cfg, resolve=True)
        assert schema.problems(plain) == []
        build_methods(plain["regularizer"])  # raises on a value the method refuses
        for key, value in values.items():  # the trial's value wins over the space's base
            assert OmegaConf.select(cfg, key) == value, key
        if name in KNOB:
            assert KNOB[name] in values


def test_make_hpo_lab_runs_every_lab_space_with_the_same_trials_and_seeds():
    out = subprocess.run(["make", "-n", "hpo-lab", "TASK=rte", "TRIALS=7", "ARGS=--seeds 2"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    loop = next(line for line in out.splitlines() if line.startswith("for s in"))
    assert sorted(re.search(r"for s in (.*?);", loop).group(1).split()) == sorted(LAB.values())
    assert "make --no-print-directory hpo SPACE=$s || exit 1" in loop
    # what each iteration runs: the same TRIALS and ARGS, passed down to `make hpo`
    one = subprocess.run(["make", "-n", "hpo", "SPACE=lab_r3f", "TASK=rte", "TRIALS=7", "ARGS=--seeds 2"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "mixsweep hpo --task rte --space lab_r3f --trials 7 --workers 1 --results results --seeds 2" in one
