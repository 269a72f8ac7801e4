"""R3F's noisy pass runs in the runner's forward context (#32 item 8): with ``bf16=true`` both passes of
a step are bf16, so the KL never compares a bf16 pass with an fp32 one. SMART's perturbed passes too.

No GPU here: the runner's CUDA autocast is replaced by a CPU bf16 autocast (what CUDA's would do to
these layers), and a hook on the classifier records the dtype of every training forward's logits."""

from __future__ import annotations

import torch

from conftest import tiny_overrides
from mixsweep.run import prepare
from mixsweep.sweeping.compose import compose_run
from mixsweep.sweeping.execute import execute


def _training_logit_dtypes(tmp_path, monkeypatch, regularizer: str) -> list[torch.dtype]:
    """The dtype of the classifier's output in every training forward of a tiny bf16 run."""
    real_autocast, finetune = torch.autocast, prepare.finetune
    dtypes: list[torch.dtype] = []

    def cpu_bf16(device_type, *args, **kwargs):
        if device_type == "cuda":  # the runner's bf16 autocast, made to act on CPU
            return real_autocast("cpu", dtype=torch.bfloat16, enabled=True)
        return real_autocast(device_type, *args, **kwargs)

    def hooked(*a, **k):
        s = finetune(*a, **k)
        s.model.classifier.register_forward_hook(
            lambda mod, _inp, out: dtypes.append(out.dtype) if mod.training else None)
        return s

    monkeypatch.setattr(torch, "autocast", cpu_bf16)
    monkeypatch.setattr(prepare, "finetune", hooked)
    cfg = compose_run([*tiny_overrides(tmp_path), f"regularizer={regularizer}", "bf16=true",
                       "record.representations=null"])
    execute(cfg)
    return dtypes


def test_both_r3f_passes_share_the_runners_bf16_autocast(tmp_path, monkeypatch):
    dtypes = _training_logit_dtypes(tmp_path, monkeypatch, "r3f")
    assert len(dtypes) >= 4 and len(dtypes) % 2 == 0  # two passes a step: the step's, then R3F's noisy one
    assert dtypes[0::2] == [torch.bfloat16] * (len(dtypes) // 2)  # the runner's forward: bf16
    assert dtypes[1::2] == [torch.bfloat16] * (len(dtypes) // 2)  # and R3F's noisy pass: bf16 too


def test_every_smart_pass_shares_the_runners_bf16_autocast(tmp_path, monkeypatch):
    """SMART's perturbed passes (K ascent passes and the final one, mt-dnn's SmartPerturbation.forward) run in
    the runner's forward context too: with K = 1, three classifier outputs a step, all bf16."""
    dtypes = _training_logit_dtypes(tmp_path, monkeypatch, "smart")
    assert len(dtypes) >= 6 and len(dtypes) % 3 == 0  # the step's pass, the ascent pass, the final perturbed pass
    assert dtypes == [torch.bfloat16] * len(dtypes)
