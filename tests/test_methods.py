"""The method interface end to end: a method defined only here (no runner, label or analysis edit)
is built from the config, gets every hook in the documented order, can do a second forward pass
from ctx.batch / ctx.outputs, shapes parameter groups with lr_scale, and logs its penalty apart."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from conftest import tiny_overrides
from mixsweep.optim import build_optimizer, linear_warmup_decay
from mixsweep.records import cell_label
from mixsweep.regularizers import Method, RegularizerError, build_methods, label_of, register
from mixsweep.sweeping.compose import compose_run

PROBE: dict[str, Any] = {}


@register
class Probe(Method):
    """Records what the runner shows it; ``head_scale`` puts the head in its own lr_scale group and
    ``add`` adds a constant to the loss."""

    name = "_probe"
    order = 99

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("head_scale", "add")
        self.head_scale = self.number("head_scale", default=1.0, lo=0.0, open_lo=True)
        self.add = self.number("add", default=0.0)

    def prepare(self, ctx):
        PROBE["dropout_after_prepare"] = {n: m.p for n, m in ctx.model.named_modules()
                                          if isinstance(m, torch.nn.Dropout)}
        PROBE["reference_at_prepare"] = len(ctx.reference)
        PROBE["hooks"] = []

    def param_groups(self, groups, ctx):
        PROBE["reference_at_param_groups"] = len(ctx.reference)
        head = {id(p) for name in ctx.head for p in ctx.model.get_submodule(name).parameters()}
        params = groups[0]["params"]
        return [{"params": [p for p in params if id(p) not in head]},
                {"params": [p for p in params if id(p) in head], "lr_scale": self.head_scale}]

    def transform_loss(self, loss, step, ctx):
        PROBE["hooks"].append(("transform_loss", step))
        again = ctx.model(**{k: v for k, v in ctx.batch.items() if k != "labels"}).logits  # a 2nd pass
        PROBE.setdefault("second_pass_shapes", []).append((tuple(again.shape), tuple(ctx.outputs.logits.shape)))
        PROBE.setdefault("loss_is_task_loss", []).append(loss is ctx.outputs.loss)
        return loss + self.add

    def after_backward(self, step, ctx):
        PROBE["hooks"].append(("after_backward", step))

    def before_step(self, step, lr, ctx):
        PROBE["hooks"].append(("before_step", step))
        PROBE.setdefault("group_lrs", []).append([g["lr"] for g in ctx.optimizer.param_groups])

    def after_step(self, step, lr, ctx):
        PROBE["hooks"].append(("after_step", step))

    def record(self):
        return {"steps_seen": len(PROBE["hooks"]) // 4}


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    from mixsweep.run.train import run

    PROBE.clear()
    cfg = compose_run([*tiny_overrides(tmp_path_factory.mktemp("probe")), "regularizer=mixout",
                       "regularizer.mixout.p=0.5", "+regularizer._probe={head_scale: 2.0, add: 0.5}",
                       "train.max_steps=2", "train.warmup_ratio=0.0"])
    return run(cfg), dict(PROBE)


def test_hooks_run_in_the_documented_order(probed):
    _, seen = probed
    per_step = ["transform_loss", "after_backward", "before_step", "after_step"]
    assert seen["hooks"] == [(h, s) for s in (0, 1) for h in per_step]
    assert seen["reference_at_prepare"] == 0 and seen["reference_at_param_groups"] > 0


def test_transform_loss_sees_the_batch_and_outputs_for_a_second_forward_pass(probed):
    _, seen = probed
    assert seen["loss_is_task_loss"] == [True, True]
    assert seen["second_pass_shapes"] == [((8, 2), (8, 2))] * 2


def test_lr_scale_groups_keep_their_ratio_under_the_schedule(probed):
    """lr 1e-3, no warmup, 2 steps: the linear decay gives 1e-3 then 5e-4; the head group is 2×."""
    _, seen = probed
    assert seen["group_lrs"] == [pytest.approx([1e-3, 2e-3]), pytest.approx([5e-4, 1e-3])]


def test_a_penalty_is_logged_apart_from_the_task_loss_and_the_method_is_recorded(probed):
    out, _ = probed
    for entry in out["train_loss"]:
        assert entry["penalty"] == {"_probe": pytest.approx(0.5)}
        assert entry["loss"] == pytest.approx(entry["task_loss"] + 0.5)
    assert out["extra"]["methods"]["_probe"] == {"steps_seen": 2}
    assert out["extra"]["methods"]["mixout"]["p"] == 0.5


def test_a_method_without_a_label_leaves_the_paper_label():
    assert cell_label({"mixout": {"p": 0.7}, "_probe": {}}) == "mixout(w_pre,0.7)"
    assert label_of(build_methods({"_probe": {}})) == "none"


def test_unknown_methods_and_scalar_blocks_are_one_line_errors():
    with pytest.raises(RegularizerError, match="unknown regularizer method 'mixup'"):
        build_methods({"mixup": {"p": 0.1}})
    with pytest.raises(RegularizerError, match=r"regularizer\.dropout=0\.1 must be a mapping.*regularizer\.dropout\.p"):
        build_methods({"dropout": 0.1})


def test_build_optimizer_scales_group_lrs():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    for name in ("bertadam", "adamw"):
        opt = build_optimizer([{"params": [a]}, {"params": [b], "lr_scale": 0.25}],
                              {"name": name, "lr": 2e-5, "betas": [0.9, 0.999], "eps": 1e-6})
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([2e-5, 5e-6])
        schedule = linear_warmup_decay(opt, 4, 0.0)
        opt.step()
        schedule.step()  # factor (4 - 1) / 4
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([1.5e-5, 3.75e-6])


def test_zero_probability_cells_and_defaults_written_out_are_one_run():
    from mixsweep.store.runid import run_id

    a = compose_run(["regularizer=mixout_wdecay", "regularizer.mixout.p=0.7"])
    b = compose_run(["regularizer=mixout", "regularizer.mixout.p=0.7", "++regularizer.wdecay.lam=0.01"])
    assert run_id(a) == run_id(b)
    assert run_id(compose_run(["regularizer=none"])) == run_id(compose_run(["regularizer=dropout",
                                                                           "regularizer.dropout.p=0"]))
