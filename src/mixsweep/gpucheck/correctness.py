"""Section 2: the device computes what the CPU computes.

- The mixout operator and ``MixLinear`` (forward and every gradient) on the device, in fp32 and
  under bf16, against the CPU in fp32 for the *same* mask. The mask is drawn once on the CPU and
  handed to both by replacing the regularizers' mask draw (``keep_mask``) for the duration of the
  call, so the public ``mixout()`` and ``MixLinear.forward`` run unchanged. A difference is
  reported as max |device − cpu| and as that divided by max |cpu| (``rel``); the check passes when
  ``rel`` ≤ its tolerance (fp32: elementwise 1e-6, matmul 1e-5; bf16, 8 significant bits: 2e-2).
- The mixout target after ``prepare_model`` sits on the device, is a buffer outside the optimizer
  and the ``state_dict``, and does not move while the weights train.
- A short finetuning run through the ordinary runner with ``deterministic=true``, done twice:
  identical losses, or how far apart they are.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

import torch
from torch import Tensor, nn

from mixsweep.config.settings import Model, Run
from mixsweep.gpucheck.env import autocast
from mixsweep.gpucheck.prepare import load_model, prepare_model, run_settings, train_step
from mixsweep.regularizers import MixLinear, mixout
from mixsweep.regularizers.mixout import keep_mask

TOLERANCE = {("operator", "fp32"): 1e-6, ("mixlinear", "fp32"): 1e-5,
             ("operator", "bf16"): 2e-2, ("mixlinear", "bf16"): 2e-2}
P = 0.7


@contextmanager
def fixed_mask(keep: Tensor) -> Iterator[None]:
    """Make every mixout mask draw in ``mixsweep.regularizers`` return ``keep`` (on the weight's device)."""
    modules = [m for n, m in list(sys.modules.items())
               if n.startswith("mixsweep.regularizers") and hasattr(m, "keep_mask")]
    if not modules:
        raise RuntimeError("no keep_mask in mixsweep.regularizers: update gpucheck.correctness.fixed_mask")

    def draw(weight: Tensor, p: float, granularity: str = "neuron", generator: Any = None) -> Tensor:
        return keep.to(weight.device)

    with ExitStack() as stack:
        for module in modules:
            stack.enter_context(mock.patch.object(module, "keep_mask", draw))
        yield


def compare(name: str, kind: str, dtype: str, device_out: dict[str, Tensor], cpu_out: dict[str, Tensor]) -> dict:
    """max |device − cpu| over every tensor of the pair, absolute and relative to max |cpu|."""
    abs_diff, ref = 0.0, 0.0
    for key, ref_t in cpu_out.items():
        got = device_out[key].detach().float().cpu()
        abs_diff = max(abs_diff, (got - ref_t.detach().float()).abs().max().item())
        ref = max(ref, ref_t.detach().float().abs().max().item())
    rel = abs_diff / ref if ref > 0 else abs_diff
    tol = TOLERANCE[(kind, dtype)]
    return {"name": name, "dtype": dtype, "tensors": sorted(cpu_out), "max_abs_diff": abs_diff,
            "max_abs_ref": ref, "rel": rel, "tol": tol, "passed": bool(rel <= tol)}


def _operator(device: torch.device, dtype: torch.dtype, w: Tensor, u: Tensor, g: Tensor) -> dict[str, Tensor]:
    weight = w.detach().clone().to(device, dtype).requires_grad_()
    out = mixout(weight, u.to(device, dtype), P)
    out.backward(g.to(device, dtype))
    return {"out": out, "grad_weight": weight.grad}


def _mixlinear(device: torch.device, bf16: bool, layer: MixLinear, x: Tensor, g: Tensor) -> dict[str, Tensor]:
    layer = copy.deepcopy(layer).to(device).train()
    if layer.target.device.type != device.type:
        raise RuntimeError(f"MixLinear.target stayed on {layer.target.device} after .to({device})")
    xin = x.detach().clone().to(device).requires_grad_()
    with autocast(device, bf16):
        y = layer(xin)
    y.backward(g.to(device, y.dtype))
    return {"out": y, "grad_x": xin.grad, "grad_weight": layer.weight.grad, "grad_bias": layer.bias.grad}


def operator_checks(device: torch.device, bf16: bool) -> list[dict]:
    """mixout() and MixLinear on ``device`` (fp32, and bf16 if ``bf16``) vs the CPU in fp32."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(48, 64, generator=gen)
    u = w + 0.1 * torch.randn(48, 64, generator=gen)   # a target near w, like w_pre during finetuning
    g = torch.randn(48, 64, generator=gen)
    keep = keep_mask(w, P, "neuron", generator=gen)
    linear = nn.Linear(64, 48)
    with torch.no_grad():
        linear.weight.copy_(w)
        linear.bias.copy_(torch.randn(48, generator=gen))
    layer = MixLinear.from_linear(linear, P, target=u)
    x = torch.randn(4, 10, 64, generator=gen)
    gy = torch.randn(4, 10, 48, generator=gen)

    cpu = torch.device("cpu")
    with fixed_mask(keep):
        ref_op = _operator(cpu, torch.float32, w, u, g)
        ref_lin = _mixlinear(cpu, False, layer, x, gy)
        checks = [compare("mixout() fp32", "operator", "fp32", _operator(device, torch.float32, w, u, g), ref_op),
                  compare("MixLinear fp32", "mixlinear", "fp32", _mixlinear(device, False, layer, x, gy), ref_lin)]
        if bf16:
            checks += [
                compare("mixout() bf16", "operator", "bf16", _operator(device, torch.bfloat16, w, u, g), ref_op),
                compare("MixLinear bf16 autocast", "mixlinear", "bf16", _mixlinear(device, True, layer, x, gy),
                        ref_lin),
            ]
    return checks


def target_check(model: Model | Mapping[str, Any], device: torch.device, steps: int, batch: int, seq: int) -> dict:
    """After prepare_model(mixout) of ``model`` (its settings, or a ``model`` block): where the targets
    live, whether anything can update them."""
    prep = prepare_model(load_model(model), "mixout", device)
    layers = [m for m in prep.model.modules() if isinstance(m, MixLinear)]
    target_ids = {id(m.target) for m in layers}
    optimized = {id(p) for group in prep.optimizer.param_groups for p in group["params"]}
    before_t = [m.target.clone() for m in layers]
    before_w = [m.weight.detach().clone() for m in layers]
    data = random_batch(prep.model, batch, seq, device, seed=1)
    for _ in range(steps):
        train_step(prep, data, autocast(device, False))
    result = {
        "mixlinear_layers": len(layers),
        "targets_on_device": all(m.target.device.type == device.type for m in layers),
        "weights_on_device": all(m.weight.device.type == device.type for m in layers),
        "targets_in_optimizer": len(target_ids & optimized),
        "targets_require_grad": sum(bool(m.target.requires_grad) for m in layers),
        "targets_in_state_dict": sum(k.endswith(".target") for k in prep.model.state_dict()),
        "steps": steps,
        "targets_unchanged": all(torch.equal(m.target, t) for m, t in zip(layers, before_t, strict=True)),
        "weights_changed": sum(not torch.equal(m.weight.detach(), w) for m, w in zip(layers, before_w, strict=True)),
    }
    result["passed"] = bool(
        result["mixlinear_layers"] > 0 and result["targets_on_device"] and result["weights_on_device"]
        and result["targets_in_optimizer"] == 0 and result["targets_require_grad"] == 0
        and result["targets_in_state_dict"] == 0 and result["targets_unchanged"] and result["weights_changed"] > 0
    )
    return result


def random_batch(model: nn.Module, batch: int, seq: int, device: torch.device, seed: int = 0) -> dict[str, Tensor]:
    """Full-length random token ids (every sequence ``seq`` tokens) and binary labels."""
    gen = torch.Generator().manual_seed(seed)
    vocab = int(getattr(model.config, "vocab_size", 30522))
    hi = min(vocab, 30000)
    return {
        "input_ids": torch.randint(min(1000, hi - 1), hi, (batch, seq), generator=gen).to(device),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long).to(device),
        "labels": torch.randint(0, 2, (batch,), generator=gen).to(device),
    }


def determinism_check(overrides: list[str], runner: Callable[[Run], dict] | None = None) -> dict:
    """The same run (``overrides`` parsed once into its settings) twice through the runner: are the
    training losses identical?"""
    from mixsweep.run.train import run as train_run

    runner = runner or train_run
    run = run_settings(overrides)
    # each gets its own copy: the task and regularizer blocks inside the frozen settings are plain dicts
    outs = [runner(copy.deepcopy(run)) for _ in range(2)]
    losses = [[e["loss"] for e in o["train_loss"]] for o in outs]
    n = min(len(losses[0]), len(losses[1]))
    diffs = [abs(a - b) for a, b in zip(losses[0][:n], losses[1][:n], strict=True)]
    first_diff = next((i + 1 for i, d in enumerate(diffs) if d != 0), None)
    return {
        "overrides": overrides,
        "status": [o["status"] for o in outs],
        "steps": [len(x) for x in losses],
        "identical": losses[0] == losses[1],
        "max_abs_loss_diff": max(diffs, default=0.0),
        "first_differing_step": first_diff,
        "final_loss": [x[-1] if x else None for x in losses],
        "final_metrics": [o["final"] for o in outs],
        "train_s": [o["times"]["train_s"] for o in outs],
        "device": outs[0].get("env_device"),
    }
