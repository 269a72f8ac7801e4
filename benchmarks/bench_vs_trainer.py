"""mixsweep's run vs transformers.Trainer (what run_glue uses), side by side in one process.

Same model (offline MiniLM-L6), same tokenized data (rt_polarity subset), same recipe: AdamW,
lr 5e-5, batch 16, linear warmup 10% then decay, dropout 0.1, evaluation once at the end. Each
side loads the pretrained weights from disk on every repetition; repetitions alternate between
the two sides and the medians are compared. Target: ≤ 1.0× Trainer's wall time at an equal score.

    python benchmarks/bench_vs_trainer.py [--reps 2] [--train-size 512] [--epochs 2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def overrides(args: argparse.Namespace, cache: str) -> list[str]:
    return [
        "task=rt_polarity", "model=minilm_l6", "regularizer=dropout", "regularizer.dropout.p=0.1", "regularizer.dropout.head=true",
        "optimizer=adamw", "optimizer.lr=5e-5", f"train.epochs={args.epochs}", "train.batch_size=16",
        "train.eval_batch_size=64", "train.eval_every=1000000", f"data.train_size={args.train_size}",
        f"data.dev_size={args.dev_size}", f"data.max_length={args.max_length}", f"paths.cache={cache}",
        "deterministic=false", "seed=0",
    ]


def ours(cfg) -> tuple[float, float]:
    from mixsweep.models import pretrained as models
    from mixsweep.run.train import run

    models._pristine.cache_clear()  # load from disk every time, as Trainer does
    t0 = time.perf_counter()
    out = run(cfg)
    return time.perf_counter() - t0, out["final"]["accuracy"]


def trainer(cfg, tmp: str) -> tuple[float, float]:
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from mixsweep.data import load_splits, tokenize_splits
    from mixsweep.data.metrics import compute_metrics
    from mixsweep.data.tasks import TaskSpec
    from mixsweep.models.pretrained import load_tokenizer, minilm_l6_path

    task = TaskSpec.from_config(cfg.task)
    tok = load_tokenizer("minilm_l6")
    t0 = time.perf_counter()
    splits = load_splits(task, cfg.data)
    data = tokenize_splits(splits, tok, max_length=int(cfg.data.max_length), cache_dir=cfg.data.cache_dir,
                           cache_key={"task": task.name, "tokenizer": "minilm_l6"})
    model = AutoModelForSequenceClassification.from_pretrained(minilm_l6_path(), num_labels=2)
    total_steps = int(cfg.train.epochs) * math.ceil(len(data["train"]) / 16)
    targs = TrainingArguments(
        output_dir=tmp, per_device_train_batch_size=16, per_device_eval_batch_size=64,
        num_train_epochs=int(cfg.train.epochs), learning_rate=5e-5, warmup_steps=int(0.1 * total_steps),
        weight_decay=0.0,
        lr_scheduler_type="linear", adam_epsilon=1e-6, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to=[], seed=0, use_cpu=True, dataloader_num_workers=0,
        disable_tqdm=True,
    )
    tr = Trainer(model=model, args=targs, train_dataset=data["train"],
                 data_collator=DataCollatorWithPadding(tok))
    tr.train()
    pred = tr.predict(data["dev"]).predictions
    acc = compute_metrics(task, np.asarray(pred), np.asarray(splits["dev"]["label"]))["accuracy"]
    return time.perf_counter() - t0, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=512)
    ap.add_argument("--dev-size", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()

    from mixsweep.sweeping.compose import compose_run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_run(overrides(args, f"{tmp}/cache"))
        ours(cfg)  # warm the tokenization cache and imports for both sides
        times: dict[str, list[float]] = {"mixsweep": [], "Trainer": []}
        scores: dict[str, list[float]] = {"mixsweep": [], "Trainer": []}
        for rep in range(args.reps):
            order = [("mixsweep", lambda: ours(cfg)), ("Trainer", lambda: trainer(cfg, tmp))]
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                t, s = fn()
                times[name].append(t)
                scores[name].append(s)
                print(f"  rep {rep} {name:<9} {t:7.1f} s  accuracy {s:.2f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian wall time: mixsweep {med['mixsweep']:.1f} s, Trainer {med['Trainer']:.1f} s")
    print(f"ratio mixsweep / Trainer = {med['mixsweep'] / med['Trainer']:.3f}   (target <= 1.0)")
    print(f"dev accuracy: mixsweep {statistics.mean(scores['mixsweep']):.2f}, "
          f"Trainer {statistics.mean(scores['Trainer']):.2f}")


if __name__ == "__main__":
    main()
