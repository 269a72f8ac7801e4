"""The task registry: every task yaml loads into a consistent TaskSpec."""

from __future__ import annotations

import shutil

import pytest
from omegaconf import OmegaConf

from mixsweep.config import paths
from mixsweep.data.tasks import TaskSpec, get_task, task_names
from mixsweep.errors import UserError

TEXT_TASKS = {"rte", "mrpc", "cola", "stsb", "sst2", "mnli", "qnli", "qqp", "wnli", "rt_polarity"}

HEADLINES = {
    "rte": "accuracy",
    "mrpc": "f1",
    "cola": "mcc",
    "stsb": "spearman",
    "sst2": "accuracy",
    "mnli": "accuracy",
    "qnli": "accuracy",
    "qqp": "f1",
    "wnli": "accuracy",
    "rt_polarity": "accuracy",
}


@pytest.fixture
def conf_copy(tmp_path, monkeypatch):
    """A private copy of conf/task plus a digits-kind yaml, so the test does not depend on other helpers."""
    shutil.copytree(paths.CONF_DIR / "task", tmp_path / "task")
    (tmp_path / "task" / "digits.yaml").write_text("name: digits\nkind: digits\nwidth: 256\n")
    monkeypatch.setattr(paths, "CONF_DIR", tmp_path)
    return tmp_path


def test_registry_lists_the_text_tasks_and_skips_other_kinds(conf_copy):
    assert set(task_names()) == TEXT_TASKS
    assert "digits" in task_names(kind=None)
    with pytest.raises(UserError, match="'digits' experiment, not a text task"):
        get_task("digits")


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        get_task("rtee")
    message = str(err.value)
    assert "unknown task 'rtee'" in message and "mrpc" in message and "rt_polarity" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(TEXT_TASKS))
def test_every_task_loads_with_its_headline(name):
    task = get_task(name)
    assert task.name == name and task.kind == "text"
    assert task.headline == HEADLINES[name]
    assert task.headline in task.metrics


def test_stsb_is_a_one_output_regression():
    task = get_task("stsb")
    assert task.is_regression and task.num_labels == 1 and task.label_names is None
    assert task.metrics == ("pearson", "spearman")


def test_metric_sets_follow_the_papers():
    assert get_task("mrpc").metrics == ("accuracy", "f1", "acc_and_f1")
    assert set(get_task("qqp").metrics) == {"accuracy", "f1", "acc_and_f1"}
    assert set(get_task("cola").metrics) == {"mcc", "accuracy"}


def test_label_order_matches_the_hub_ids():
    assert get_task("rte").label_names == ("entailment", "not_entailment")
    assert get_task("mnli").label_names == ("entailment", "neutral", "contradiction")
    assert get_task("wnli").label_names == ("not_entailment", "entailment")
    assert get_task("mnli").hub_splits["dev"] == "validation_matched"


@pytest.mark.parametrize(
    ("name", "metric", "below", "interval"),
    [
        ("rte", "accuracy", 55.0, "(54.2, 58.1]"),
        ("mrpc", "f1", 83.0, "(81.9, 84.3]"),
        ("cola", "mcc", 10.0, "(0, 53.2]"),
        ("stsb", "spearman", 50.0, "(37.4, 87.7]"),
    ],
)
def test_lee2020_thresholds(name, metric, below, interval):
    rule = get_task(name).failure["lee2020"]
    assert rule == {"metric": metric, "below": below, "derived": True, "interval": interval}


@pytest.mark.parametrize(
    ("name", "metric", "at_most"),
    [
        ("rte", "accuracy", 50.0),
        ("mrpc", "acc_and_f1", 75.0),
        ("cola", "mcc", 10.0),
        ("sst2", "accuracy", 0.0),
    ],
)
def test_dodge2020_thresholds(name, metric, at_most):
    assert get_task(name).failure["dodge2020"] == {"metric": metric, "at_most": at_most, "selection": "best"}


def test_tasks_without_published_thresholds_have_none():
    for name in ("mnli", "qnli", "qqp", "wnli", "rt_polarity"):
        assert get_task(name).failure == {}
    assert "dodge2020" not in get_task("stsb").failure


def test_from_config_accepts_a_composed_hydra_node():
    node = OmegaConf.load(paths.CONF_DIR / "task" / "mrpc.yaml")
    assert TaskSpec.from_config(node) == get_task("mrpc")


def _raw(**changes):
    raw = OmegaConf.to_container(OmegaConf.load(paths.CONF_DIR / "task" / "rte.yaml"))
    return {**raw, **changes}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"headline": "f1"}, "headline 'f1' must be one of"),
        ({"num_labels": 3}, "num_labels is 3 but should be 2"),
        ({"metrics": ["accuracy", "bleu"]}, "unknown metrics"),
        ({"text_keys": ["a", "b", "c"]}, "1 or 2 columns"),
        ({"colour": "red"}, "unknown keys"),
    ],
)
def test_inconsistent_task_configs_are_rejected(changes, problem):
    with pytest.raises(UserError, match=problem):
        TaskSpec.from_config(_raw(**changes))


def test_specs_are_hashable_and_compare_by_value():
    assert {get_task("rte"): 1}[get_task("rte")] == 1
    assert get_task("rte") != get_task("qnli")
