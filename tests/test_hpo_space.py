"""HPO building blocks without training: space files, suggestions, scores, stale trials, seeding."""

from __future__ import annotations

import datetime as dt
import socket

import optuna
import pytest

from mixsweep.errors import UserError
from mixsweep.hpo.driver import is_stale, open_study, submitit_parameters, validate
from mixsweep.hpo.objective import objective_values, score_runs
from mixsweep.hpo.request import HpoRequest
from mixsweep.hpo.space import check_keys, parse_space, space_names, suggest, to_overrides
from mixsweep.records import RunRecord

CFG = {"optimizer": {"lr": 2e-5}, "regularizer": {"mixout": {"p": 0.9}, "dropout": 0.1}, "train": {"epochs": 3}}
GROUPS = {"regularizer": ["dropout", "mixout", "wdecay"], "optimizer": ["adamw", "bertadam"]}


@pytest.mark.parametrize(("spec", "message"), [
    ({"x": 1}, "needs a non-empty 'params:'"),
    ({"params": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-5}}}, "low 0.001 > high 1e-05: swap"),
    ({"params": {"optimizer.lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "needs low > 0"),
    ({"params": {"optimizer.lr": {"type": "uniform", "low": 0, "high": 1}}}, "type: float | int | categorical"),
    ({"params": {"optimizer.lr": {"type": "float", "low": 0, "high": 1, "steps": 2}}}, "unknown field(s) ['steps']"),
    ({"params": {"train.epochs": {"type": "int", "low": 1.5, "high": 3}}}, "whole-number"),
    ({"params": {"regularizer": {"type": "categorical", "choices": []}}}, "non-empty list"),
    ({"params": {"regularizer.mixout.p": {"type": "float", "low": 0.1, "high": 0.9, "when": {"regularizer": "mixout"}}}},
     "not a categorical parameter listed above it"),
    ({"params": {"optimizer.lr": {"type": "float", "low": 1e-5, "high": 1e-4}}, "base": "regularizer=mixout"},
     "'base' must be a list"),
])
def test_malformed_space_specs_fail_with_one_line_naming_the_fix(spec, message):
    with pytest.raises(UserError) as e:
        parse_space("bad", spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_keys_must_exist_in_the_run_config_and_groups_must_be_categorical_over_their_options():
    unknown = parse_space("s", {"params": {"regularizer.mixout.pp": {"type": "float", "low": 0.1, "high": 0.9}}})
    with pytest.raises(UserError, match=r"unknown parameter .*did you mean 'regularizer.mixout.p'"):
        check_keys(unknown, CFG, GROUPS)
    bad_choice = parse_space("s", {"params": {"regularizer": {"type": "categorical", "choices": ["mixout", "l3"]}}})
    with pytest.raises(UserError, match=r"config group.*unknown \['l3'\]"):
        check_keys(bad_choice, CFG, GROUPS)
    fine = parse_space("s", {"params": {"regularizer": {"type": "categorical", "choices": ["mixout", "wdecay"]},
                                        "train.epochs": {"type": "int", "low": 1, "high": 5}}})
    check_keys(fine, CFG, GROUPS)


@pytest.mark.parametrize("name", space_names())
def test_every_shipped_space_validates_against_the_composed_run_config(name):
    space = validate(HpoRequest(task="rte", space=name))
    assert space.params


def test_conditional_parameters_exist_only_for_the_choices_that_use_them():
    space = parse_space("s", {"params": {
        "regularizer": {"type": "categorical", "choices": ["dropout", "mixout"]},
        "regularizer.mixout.p": {"type": "float", "low": 0.1, "high": 0.9, "when": {"regularizer": ["mixout"]}},
        "optimizer.lr": {"type": "float", "low": 1e-5, "high": 5e-5, "log": True},
    }})
    off = suggest(optuna.trial.FixedTrial({"regularizer": "dropout", "optimizer.lr": 2e-5}), space)
    assert off == {"regularizer": "dropout", "optimizer.lr": 2e-5}
    on = suggest(optuna.trial.FixedTrial({"regularizer": "mixout", "regularizer.mixout.p": 0.7,
                                          "optimizer.lr": 2e-5}), space)
    assert on["regularizer.mixout.p"] == 0.7


def test_overrides_put_group_choices_first_and_keep_floats_floats():
    ovs = to_overrides({"optimizer.lr": 3.14159265e-05, "regularizer": "mixout", "regularizer.mixout.p": 1.0,
                        "train.epochs": 2, "regularizer.wdecay.lam": 0.0})
    assert ovs == ["regularizer=mixout", "optimizer.lr=3.14159e-05", "regularizer.mixout.p=1.0", "train.epochs=2",
                   "regularizer.wdecay.lam=0.0"]


def _record(status: str = "ok", score: float | None = 60.0, majority: float = 50.0, task: str = "rte") -> RunRecord:
    final = {} if score is None else {"accuracy": score}
    return RunRecord(run_id="r", sweep="hpo-x", task=task, cell="c", label="mixout(w_pre,0.9)", seed=0,
                     status=status, headline="accuracy", final=final, majority={"accuracy": majority})


def test_score_is_the_mean_over_restarts_and_failed_runs_are_counted_by_each_definition():
    good, at_majority, below_lee, diverged = _record(), _record(score=50.0), _record(score=54.0), \
        _record("diverged", None)
    s = score_runs([good, at_majority, below_lee, diverged], ("lee2020", "majority"))
    assert s.mean == pytest.approx((60 + 50 + 54 + 0) / 4)
    assert s.failed == 3 and s.failure_rate == pytest.approx(0.75)
    assert score_runs([good, below_lee], ("majority",)).failed == 0  # 54 > majority; lee2020 not asked
    assert objective_values(s, penalty=2.0, multi_objective=False) == pytest.approx(s.mean - 6.0)
    assert objective_values(s, penalty=2.0, multi_objective=True) == (s.mean, s.failure_rate)


def _frozen(worker: str | None, started_ago_s: float, heartbeat_ago_s: float | None, now: float):
    attrs = {} if worker is None else {"worker": worker}
    if heartbeat_ago_s is not None:
        attrs["heartbeat"] = now - heartbeat_ago_s
    return optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.RUNNING, value=None, values=None,
        datetime_start=dt.datetime.fromtimestamp(now - started_ago_s), datetime_complete=None, params={},
        distributions={}, user_attrs=attrs, system_attrs={}, intermediate_values={}, trial_id=0)


def test_a_running_trial_is_stale_when_its_local_worker_died_or_its_heartbeat_is_old():
    now, host = 1e9, socket.gethostname()
    dead, alive = (lambda pid: False), (lambda pid: True)
    assert is_stale(_frozen(f"{host}:123", 5, 1, now), now, 600, host, dead)
    assert not is_stale(_frozen(f"{host}:123", 5, 1, now), now, 600, host, alive)
    assert not is_stale(_frozen("elsewhere:123", 5, 1, now), now, 600, host, dead)  # can't see its pids
    assert is_stale(_frozen("elsewhere:123", 5000, 700, now), now, 600, host, dead)
    assert is_stale(_frozen(None, 5000, None, now), now, 600, host, alive)  # no heartbeat: its start time


def test_one_fresh_worker_is_reproducible_and_a_relaunch_does_not_repeat_its_first_point(tmp_path):
    space = validate(HpoRequest(task="rte", space="mixout"))

    def next_params(study_name: str) -> dict:
        study = open_study(HpoRequest(task="rte", results=str(tmp_path), study=study_name), space)
        trial = study.ask()
        params = suggest(trial, space)
        study.tell(trial, 1.0)
        return params

    first = next_params("a")
    assert next_params("b") == first  # same seed, same (empty) study
    assert next_params("a") != first  # relaunch: the sampler seed includes the trial count (P8)


def test_the_default_pruner_is_median_and_multi_objective_studies_do_not_prune(tmp_path):
    space = validate(HpoRequest(task="rte", space="mixout"))
    single = open_study(HpoRequest(task="rte", results=str(tmp_path), study="s", prune_startup=2), space)
    assert isinstance(single.pruner, optuna.pruners.MedianPruner) and single.pruner._n_startup_trials == 2
    multi = open_study(HpoRequest(task="rte", results=str(tmp_path), study="m", multi_objective=True), space)
    assert isinstance(multi.pruner, optuna.pruners.NopPruner) and len(multi.directions) == 2


def test_slurm_parameters_come_from_the_sweeps_launcher_config():
    params = submitit_parameters(HpoRequest(task="rte", launcher="slurm", workers=8))
    assert params["slurm_array_parallelism"] == 8 and params["tasks_per_node"] == 1
    assert params["gpus_per_node"] == 1 and params["timeout_min"] > 0
    assert any("CUBLAS_WORKSPACE_CONFIG" in line for line in params["slurm_setup"])


def test_hydra_launcher_args_set_the_slurm_workers_and_stay_out_of_the_runs():
    from mixsweep.hpo.request import split_launcher_overrides

    runs, launcher = split_launcher_overrides(
        ["model=tiny", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
         "hydra.launcher.setup=[module load x, export A=1]"])
    assert runs == ["model=tiny"]
    params = submitit_parameters(HpoRequest(task="rte", launcher="slurm", workers=2, launcher_overrides=launcher))
    assert params["slurm_partition"] == "debug" and params["gpus_per_node"] == 0
    assert params["slurm_setup"] == ["module load x", "export A=1"]
    assert params["cpus_per_task"] == 8  # untouched settings keep conf/launcher/slurm.yaml's value


@pytest.mark.parametrize(("launcher", "override", "says"), [
    ("slurm", "hydra.launcher.gpu=0", "unknown SLURM setting 'gpu'"),
    ("local", "hydra.launcher.partition=debug", "add --launcher slurm"),
])
def test_a_wrong_launcher_arg_is_a_one_line_error_before_anything_runs(tmp_path, launcher, override, says):
    req = HpoRequest(task="rte", launcher=launcher, results=str(tmp_path), launcher_overrides=[override])
    with pytest.raises(UserError, match=says):
        validate(req)
    assert not list(tmp_path.iterdir())
