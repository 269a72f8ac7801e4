"""Cost of the instability measures (issue #22) for one 20-restart cell, as a ratio to loading its records.

Writes 20 synthetic runs through the store's own writer (``outputs.npz`` with 3 protocol points, and
``representations.npz`` with one fp16 layer of N × D, default 1,000 × 1,024: a shared signal plus
per-run noise), then times (a) loading the cell's records, outputs and representations through the
store, and (b) every measure with its jackknife interval (:func:`mixsweep.instability.cell_measures`),
split into the prediction measures, the per-run decompositions and each representation measure, with
the flop count of Procrustes, the floor (one k × k nuclear norm per pair). Also writes one run of the
default ``record`` settings for BERT-large (hidden 1,024; head + 4 layers) on an RTE-size (277) and
an MNLI-size (9,815; representations capped at 1,000 examples) dev set and prints the bytes on disk.

    .venv/bin/python benchmarks/bench_instability.py [--examples 1000] [--dim 1024] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from mixsweep.analysis.synthetic import text_task_record  # noqa: E402
from mixsweep.instability import cell_measures  # noqa: E402
from mixsweep.instability.cell import pair_matrix, parallel_map  # noqa: E402
from mixsweep.instability.representation import PAIR_FUNCTIONS, prepare  # noqa: E402
from mixsweep.store import runs as store  # noqa: E402
from mixsweep.store.outputs import RunOutputs, representation_positions  # noqa: E402


def synthetic_run(rng, n: int, d: int, layers: list[str], n_rep: int, base: np.ndarray | None) -> RunOutputs:
    logits = rng.standard_normal((n, 2)).astype(np.float32)
    out = RunOutputs()
    out.outputs = {"labels": rng.integers(0, 2, n), "test_half": np.arange(n // 2, n, dtype=np.int32),
                   "val_half": np.arange(n // 2, dtype=np.int32)}
    for step in (10, 20, 30):
        out.outputs[f"pred_{step}"] = logits.argmax(1).astype(np.int16)
        e = np.exp(logits - logits.max(1, keepdims=True))
        out.outputs[f"prob_{step}"] = (e / e.sum(1, keepdims=True)).astype(np.float16)
    out.outputs_meta = {"points": {"final": 30, "best": 20, "zhang2021": 10}, "dev_hash": "x" * 64,
                        "regression": False, "num_classes": 2, "n_examples": n}
    for layer in layers:
        signal = base if base is not None else 0
        out.representations[f"rep_{layer}"] = (signal + 0.5 * rng.standard_normal((n_rep, d))).astype(np.float16)
    out.representations["positions"] = representation_positions(n, n_rep).astype(np.int32)
    out.representations_meta = {"layers": layers, "step": 30, "dev_hash": "x" * 64, "n_examples": n,
                                "dtype": "float16"}
    return out


def bytes_per_run(n: int, d: int = 1024, cap: int | None = 1000) -> dict[str, int]:
    rng = np.random.default_rng(0)
    layers = ["layer_6", "layer_12", "layer_18", "layer_24", "head"]
    n_rep = len(representation_positions(n, cap))
    with tempfile.TemporaryDirectory() as tmp:
        store.write_outputs(store.run_dir(tmp, "r0"), synthetic_run(rng, n, d, layers, n_rep, None))
        return store.output_sizes(tmp, "r0")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d, m = args.examples, args.dim, args.runs
    base = rng.standard_normal((n, d))
    with tempfile.TemporaryDirectory() as tmp:
        records = []
        for i in range(m):
            rec = text_task_record("rte", "dropout(0.1)", i, "bench", rng)
            records.append(rec)
            store.write_record(store.run_dir(tmp, rec.run_id), rec)
            store.write_outputs(store.run_dir(tmp, rec.run_id), synthetic_run(rng, n, d, ["layer_24"], n, base))
        store.add_to_view(tmp, "bench", [{"run_id": r.run_id, "task": r.task, "cell": r.cell} for r in records])

        t0 = time.perf_counter()
        loaded = list(store.iter_records(tmp, "bench"))
        t_records = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs = [store.read_outputs(tmp, r.run_id) for r in loaded]
        reps = [store.read_representations(tmp, r.run_id) for r in loaded]
        t_arrays = time.perf_counter() - t0

    labels = np.stack([o[0]["pred_30"] for o in outs]).astype(int)
    probs = np.stack([o[0]["prob_30"] for o in outs]).astype(np.float64)
    layer = [r[0]["rep_layer_24"] for r in reps]
    scores = np.array([r.final[r.headline] for r in loaded])

    t0 = time.perf_counter()
    cell_measures(scores, labels, probs, None)
    t_pred = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepared = parallel_map(prepare, layer)  # as cell_measures: once per run, in threads
    t_prepare = time.perf_counter() - t0
    per = {}
    for name, fn in PAIR_FUNCTIONS.items():
        t0 = time.perf_counter()
        pair_matrix(prepared, fn)
        per[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cell_measures(scores, labels, probs, {"layer_24": layer})
    t_all = time.perf_counter() - t0

    t_load = t_records + t_arrays
    print(f"cell: {m} restarts × {n} examples × {d} dims (one layer), {m * (m - 1) // 2} pairs, jackknife intervals")
    print(f"load records {t_records:.3f} s + outputs/representations {t_arrays:.3f} s = {t_load:.3f} s")
    print(f"prediction measures (SD, pwd, κ, JSD) {t_pred:.2f} s  ({t_pred / t_records:.0f}× loading the records)")
    print(f"representation: per-run prepare {t_prepare:.1f} s; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in per.items()))
    print(f"all measures {t_all:.1f} s = {t_all / t_records:.0f}× loading the records, "
          f"{t_all / t_load:.0f}× loading records + arrays")
    # Procrustes is the floor: per pair the k × k product AᵀB (2nk²), its Gram (k³, syrk) and that Gram's
    # eigenvalues (tridiagonalisation, 4/3 k³, half of it matrix-vector), k = rank of the centred X
    k = min(n - 1, d)
    gflop = m * (m - 1) // 2 * (2 * n * k * k + k**3 + 4 / 3 * k**3) / 1e9
    print(f"procrustes: {m * (m - 1) // 2} pairs × (2nk² + k³ + 4/3 k³), k = {k}: {gflop:.0f} GFLOP, "
          f"{gflop / per['procrustes']:.0f} GFLOP/s achieved")
    for name, size in (("RTE (277 dev)", 277), ("MNLI-size (9,815 dev)", 9815)):
        b = bytes_per_run(size)
        b_all = bytes_per_run(size, cap=None)
        print(f"bytes per run, BERT-large defaults, {name}: outputs {b['outputs']:,} B, representations "
              f"{b['representations']:,} B (uncapped: {b_all['representations']:,} B)")


if __name__ == "__main__":
    main()
