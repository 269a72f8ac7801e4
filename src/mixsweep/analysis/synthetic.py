"""Synthetic run records shaped like real ones, for tests, the notebook demo and the benchmark.

Scores are resampled from the paper's per-run values where the paper shows the cell (so a
synthetic store looks like the paper), else drawn from a mixture of a chance-level cluster and
a normal around a plausible mean. Nothing here is used to produce reported numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mixsweep.analysis.paper import paper_curves, paper_points
from mixsweep.records import RunRecord, best_point
from mixsweep.store import runs as store

# task -> (headline, chance score of the headline, metrics recorded, majority-class scores)
TASKS: dict[str, tuple[str, float, tuple[str, ...], dict[str, float | None]]] = {
    "rte": ("accuracy", 52.7, ("accuracy",), {"accuracy": 52.7}),
    "mrpc": ("f1", 81.2, ("accuracy", "f1", "acc_and_f1"), {"accuracy": 68.4, "f1": 81.2, "acc_and_f1": 74.8}),
    "cola": ("mcc", 0.0, ("accuracy", "mcc"), {"accuracy": 69.1, "mcc": 0.0}),
    "stsb": ("spearman", float("nan"), ("pearson", "spearman"), {"pearson": None, "spearman": None}),
    "rt_polarity": ("accuracy", 50.0, ("accuracy",), {"accuracy": 50.0}),
}
_GOOD_MEAN = {"rte": 68.0, "mrpc": 89.0, "cola": 59.0, "stsb": 89.5, "rt_polarity": 75.0}


def regularizer_of(label: str) -> dict:
    """A regularizer config (the shared shape) that :func:`mixsweep.records.cell_label` maps back to
    ``label``, for the plain labels the synthetic data uses. Building fake records is the one place
    that reads a label; analysis reads the config."""
    reg: dict = {"name": "synthetic"}
    for part in label.split("|")[0].split("+"):
        name, _, args = part.partition("(")
        values = args.rstrip(")").split(",")
        if name == "dropout":
            reg["dropout"] = {"p": float(values[0]), "head": False}
        elif name == "mixout":
            reg["mixout"] = {"p": float(values[1])}
        elif name == "wdecay":
            target = "pretrained" if values[0] == "w_pre" else "zero"
            reg["wdecay"] = {"lam": float(values[1]), "target": target}
    return reg


def text_task_record(task: str, label: str, seed: int, sweep: str, rng: np.random.Generator,
                     n_evals: int = 6) -> RunRecord:
    headline, chance, metrics, majority = TASKS[task]
    pool = paper_points(task, label)
    if pool:
        score = float(rng.choice(pool))
    elif rng.random() < 0.25:
        score = chance
    else:
        score = float(rng.normal(_GOOD_MEAN[task], 2.0))
    final = {m: (score if m == headline else float(np.clip(score + rng.normal(0, 1.5), -100, 100)))
             for m in metrics}
    curve = [{"step": 10 * (i + 1), "epoch": (i + 1) / 2,
              "metrics": {m: v - rng.uniform(0, 3) * (n_evals - 1 - i) / n_evals for m, v in final.items()}}
             for i in range(n_evals)]
    best = best_point(curve, headline)
    return RunRecord(
        run_id=f"{task}-{label}-s{seed}", sweep=sweep, task=task, cell=label, label=label, seed=seed,
        status="ok", headline=headline, final=final, best=dict(best["metrics"]) if best else {},
        best_step=best["step"] if best else None, eval_curve=curve, majority=dict(majority),
        config={"regularizer": regularizer_of(label)},
    )


def digits_record(family: str, p: float, seed: int, sweep: str, rng: np.random.Generator) -> RunRecord:
    """A digits (Sec. 4) run: target/source accuracy in [0, 1] and ||w_ft - w_pre||^2 near Fig. 2."""
    curves = paper_curves()
    row = curves[(curves.family == family) & np.isclose(curves.p, p)].iloc[0]
    final = {"target_acc": float(row.target_acc + rng.normal(0, 0.002)),
             "source_acc": float(row.source_acc + rng.normal(0, 0.01)),
             "l2_sq": float(row.l2_sq + rng.normal(0, 0.03))}
    label = "none" if p == 0 else (f"dropout({p:g})" if family == "dropout" else f"mixout(w_pre,{p:g})")
    return RunRecord(
        run_id=f"{label}-s{seed}", sweep=sweep, task="digits", cell=label, label=label, seed=seed,
        status="ok", headline="target_acc", final=final, best=dict(final),
        config={"regularizer": regularizer_of(label)},
    )


def write_records(records: list[RunRecord], results: str | os.PathLike) -> list[Path]:
    """Write records into the store and list them in their studies' views."""
    paths, views = [], {}
    for r in records:
        directory = store.run_dir(results, r.run_id)
        store.write_record(directory, r)
        views.setdefault(r.sweep, []).append({"run_id": r.run_id, "task": r.task, "cell": r.cell})
        paths.append(directory / store.RESULT)
    for sweep, entries in views.items():
        store.add_to_view(results, sweep, entries)
    return paths


def demo_store(results: str | os.PathLike, sweep: str = "demo", seeds: int = 6, seed: int = 0,
               digits: bool = True) -> list[Path]:
    """A small store: Fig. 3 cells on RTE and MRPC, a short RTE p-sweep, and (optionally) digits."""
    from mixsweep.analysis.naming import PAPER_ORDER

    rng = np.random.default_rng(seed)
    records = [text_task_record(t, lab, s, sweep, rng) for t in ("rte", "mrpc") for lab in PAPER_ORDER
               for s in range(seeds)]
    sweep_labels = ["none", "dropout(0.1)", "dropout(0.5)", "mixout(w_pre,0.5)", "mixout(w_pre,0.8)"]
    records += [text_task_record("rte", lab, s, sweep, rng) for lab in sweep_labels for s in range(seeds)]
    if digits:
        # p = 0 is one shared cell ("none") for both families.
        grid = [("dropout", 0.0)] + [(f, p) for f in ("dropout", "mixout") for p in (0.4, 0.8)]
        records += [digits_record(f, p, s, sweep, rng) for f, p in grid for s in range(3)]
    return write_records(records, results)
