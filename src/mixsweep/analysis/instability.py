"""Instability beyond SD: each cell's prediction and representation measures (Du & Nguyen 2023).

Reads each run's stored per-example outputs and representations through :mod:`mixsweep.store`
and computes :func:`mixsweep.instability.cell_measures` per (task, cell):

- prediction measures at the selection protocol's point (``final``/``best``: the whole dev set;
  ``zhang2021``: its test half), SD over the same runs;
- representation measures per recorded layer at the final checkpoint (whatever the protocol);
- the ensemble of the restarts (majority vote / mean score) scored like a run, beside the runs' mean.

Only runs whose outputs share one dev-set hash are compared (the largest such group of a cell; the
rest are counted in the notes). Runs recorded without outputs (before #22, or with
``record.outputs=false``) are counted and left out; a cell with none shows "–". Every cell of the table
gets its row (named as the other tables name it, e.g. ``devlin@bertadam``), one whose runs all failed or
diverged too (n = 0, all "–").
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixsweep import store
from mixsweep.instability import MEASURES, cell_measures, ensemble_predictions
from mixsweep.instability.cell import Estimate
from mixsweep.records import RunRecord
from mixsweep.run_outputs import point_outputs

PREDICTION = [m for m, (level, _) in MEASURES.items() if level != "representation"]
REPRESENTATION = [m for m, (level, _) in MEASURES.items() if level == "representation"]
SYMBOLS = {"sd": "SD", "pwd": "I_pwd", "kappa": "I_κ", "jsd": "I_JSD", "svcca": "I_SVCCA", "pwcca": "I_PWCCA",
           "cka": "I_CKA", "procrustes": "I_OP"}


@dataclass
class InstabilityResult:
    long: pd.DataFrame  # task, regularizer(label), measure, layer, value, low, high, n_runs, n_examples
    wide: pd.DataFrame  # one row per cell (the report's table)
    notes: list[str] = field(default_factory=list)
    layers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    bytes_per_run: dict[str, float] = field(default_factory=dict)


def _layer_order(name: str) -> tuple[int, int]:
    return (1, 0) if name == "head" else (0, int(name.split("_")[1]))


def _fmt(e: Estimate | None) -> str:
    if e is None or not np.isfinite(e.value):
        return "–"
    ci = f" [{e.low:.3f}, {e.high:.3f}]" if np.isfinite(e.low) else ""
    return f"{e.value:.3f}{ci}"


def instability(runs: pd.DataFrame, records: list[RunRecord], results: str | os.PathLike | None,
                selection: str = "final", n_boot: int = 1000, seed: int = 0) -> InstabilityResult:
    """Every measure for every cell of ``runs`` (the tidy table) from the stored outputs."""
    from mixsweep.analysis.naming import display_name, sort_labels, sort_tasks
    from mixsweep.metrics import compute_metrics
    from mixsweep.tasks import TaskSpec

    by_id = {r.run_id: r for r in records}
    long_rows, wide_rows, notes = [], [], []
    layers_of: dict[tuple[str, str], list[str]] = {}
    missing_total, mixed_total, degenerate = 0, 0, False
    sizes: dict[str, list[int]] = {"outputs": [], "representations": []}
    ok = runs[runs["status"].eq("ok")] if len(runs) else runs
    # every cell of the table gets a row, even one without a finished run (all failed or diverged: n = 0, –)
    for task in sort_tasks(set(runs["task"])) if len(runs) else []:
        for label in sort_labels(set(runs.loc[runs["task"] == task, "label"])):
            cell = ok[(ok["task"] == task) & (ok["label"] == label)]
            loaded = []
            for rid in cell["run_id"].astype(str):
                got = store.read_outputs(results, rid) if results is not None else None
                point = point_outputs(*got, selection) if got else None
                if point is None:
                    continue
                loaded.append((rid, point))
                if results is not None:
                    s = store.output_sizes(results, rid)
                    sizes["outputs"].append(s["outputs"])
                    sizes["representations"].append(s["representations"])
            missing = len(cell) - len(loaded)
            missing_total += missing
            if loaded:
                group = Counter(_dev_set(p) for _, p in loaded).most_common(1)[0][0]
                mixed_total += sum(_dev_set(p) != group for _, p in loaded)
                loaded = [(rid, p) for rid, p in loaded if _dev_set(p) == group]
                common = group[0]  # the dev hash
            row = {"task": task, "regularizer": display_name(label), "n": len(cell), "with outputs": len(loaded)}
            scores = cell.set_index("run_id")[f"{selection}_score"].astype(float)
            if not loaded:
                row.update({SYMBOLS[m]: "–" for m in MEASURES})
                row.update({"ensemble": "–", "mean": "–"})
                wide_rows.append(row)
                continue
            rids = [rid for rid, _ in loaded]
            pts = [p for _, p in loaded]
            subset = pts[0].subset
            regression = pts[0].regression
            preds = np.stack([p.pred[subset] for p in pts])
            labels = None if regression else preds.astype(int)
            probs = None if regression else np.stack([p.prob[subset].astype(np.float64) for p in pts])
            k = probs.shape[-1] if probs is not None else None
            reps = _representations(results, rids, common)
            if any(len(v[0]) - 1 <= v[0].shape[1] for v in reps.values()):
                degenerate = True
            measures = cell_measures(scores.loc[rids].to_numpy(), labels, probs, reps, num_classes=k,
                                     n_boot=n_boot, seed=seed)
            layers = sorted({layer for d in measures.layers.values() for layer in d}, key=_layer_order)
            layers_of[(task, label)] = layers
            deepest = next((lay for lay in reversed(layers) if lay != "head"), layers[-1] if layers else None)
            for name, est in measures.values.items():
                row[SYMBOLS[name]] = _fmt(est)
                long_rows.append(_long(task, label, name, "", est, measures))
            for name in REPRESENTATION:
                per_layer = measures.layers.get(name, {})
                row[SYMBOLS[name]] = _fmt(per_layer.get(deepest)) if deepest else "–"
                for layer in layers:
                    if layer in per_layer:
                        long_rows.append(_long(task, label, name, layer, per_layer[layer], measures))
            for name in MEASURES:
                row.setdefault(SYMBOLS[name], "–")
            rec = by_id.get(rids[0])
            if rec is not None and rec.config.get("task"):
                spec = TaskSpec.from_config(rec.config["task"])
                ens = ensemble_predictions(preds if regression else labels, regression, k)
                score = compute_metrics(spec, ens, pts[0].labels[subset]).get(spec.headline, np.nan)
                row["ensemble"] = f"{score:.1f}"
            else:
                row["ensemble"] = "–"
            row["mean"] = f"{np.nanmean(scores.loc[rids].to_numpy()):.1f}"
            row["layer"] = deepest or "–"
            wide_rows.append(row)
    if missing_total:
        notes.append(f"{missing_total} run(s) hold no per-example outputs at the {selection} point (recorded before "
                     "outputs were kept, with record.outputs=false, not reaching the point, or a damaged file, "
                     "warned about): left out of these measures; a cell with none shows –.")
    if mixed_total:
        notes.append(f"{mixed_total} run(s) were scored on a different dev set (content hash) than the rest of "
                     "their cell: left out.")
    if degenerate:
        notes.append("Some representations have no more examples than dimensions (+1): there CCA is degenerate "
                     "(every canonical correlation is 1), so PWCCA is 0 whatever the runs; SVCCA's 99% reduction "
                     "and CKA/Procrustes stay informative. Raise record.max_examples on larger dev sets.")
    bytes_per_run = {k: float(np.mean(v)) for k, v in sizes.items() if v}
    long = pd.DataFrame(long_rows, columns=["task", "regularizer", "measure", "layer", "value", "low", "high",
                                            "n_runs", "n_examples"])
    columns = ["task", "regularizer", "n", "with outputs", *(SYMBOLS[m] for m in MEASURES), "ensemble", "mean",
               "layer"]
    wide = pd.DataFrame(wide_rows).reindex(columns=columns).fillna("–") if wide_rows else pd.DataFrame()
    return InstabilityResult(long, wide, notes, layers_of, bytes_per_run)


def _dev_set(p) -> tuple:
    """What runs compared on the same examples share: the dev hash, and (for a file made by hand,
    which could pair a hash with other arrays) the shapes of the outputs and the scored positions."""
    return (p.dev_hash, p.pred.shape, None if p.prob is None else p.prob.shape, p.subset.tobytes())


def _long(task, label, name, layer, est, measures):
    return {"task": task, "regularizer": label, "measure": name, "layer": layer, "value": est.value,
            "low": est.low, "high": est.high, "n_runs": measures.n_runs, "n_examples": measures.n_examples}


def _representations(results, rids: list[str], dev_hash: str) -> dict[str, list[np.ndarray]]:
    """layer → the runs' fp16 matrices, for layers that every one of the runs stored on this dev set."""
    got = [store.read_representations(results, rid) for rid in rids] if results is not None else []
    if len(got) < 2 or any(g is None for g in got):
        return {}
    if any(meta.get("dev_hash") != dev_hash for _, meta in got):
        return {}
    if any(not np.array_equal(arrays["positions"], got[0][0]["positions"]) for arrays, _ in got):
        return {}
    common = set.intersection(*[set(meta["layers"]) for _, meta in got])
    # a layer is compared only where every run stored it at one width (each file is checked on reading)
    common = {layer for layer in common if len({arrays[f"rep_{layer}"].shape for arrays, _ in got}) == 1}
    return {layer: [arrays[f"rep_{layer}"] for arrays, _ in got] for layer in sorted(common, key=_layer_order)}


def run_fields(runs: pd.DataFrame, results: str | os.PathLike | None,
               warnings: list[str] | None = None) -> pd.DataFrame:
    """The tidy table's per-run fields: ``has_outputs``, ``has_representations``, ``dev_hash``, and
    ``pwd_<protocol>``: the run's mean disagreement with each other restart of its cell (same dev hash)
    at that protocol's point — the per-run share of the cell's pairwise disagreement. NaN without outputs.
    Every run's files are checked here (the representations by their headers only); a damaged one
    counts as absent and is described in ``warnings``."""
    runs = runs.copy()
    for col in ("has_outputs", "has_representations"):
        runs[col] = False
    runs["dev_hash"] = None
    protocols = ("final", "best", "zhang2021")
    for p in protocols:
        runs[f"pwd_{p}"] = np.nan
    if results is None or runs.empty or "run_id" not in runs:
        return runs
    loaded = {}
    for i, rid in runs["run_id"].astype(str).items():
        got = store.read_outputs(results, rid, warnings)
        runs.at[i, "has_outputs"] = got is not None
        runs.at[i, "has_representations"] = store.read_representations(results, rid, warnings, data=False) is not None
        if got is not None:
            loaded[i] = got
            runs.at[i, "dev_hash"] = got[1].get("dev_hash")
    for (_task, _label, _h), idx in runs.loc[list(loaded)].groupby(["task", "label", "dev_hash"]).groups.items():
        if len(idx) < 2:
            continue
        for p in protocols:
            pts = {i: point_outputs(*loaded[i], p) for i in idx}
            pts = {i: x for i, x in pts.items() if x is not None and not x.regression}
            if len(pts) < 2:
                continue
            ids = list(pts)
            y = np.stack([pts[i].pred[pts[i].subset] for i in ids])
            for a, i in enumerate(ids):
                others = np.delete(np.arange(len(ids)), a)
                runs.at[i, f"pwd_{p}"] = float((y[others] != y[a]).mean())
    return runs


def fig_instability(result: InstabilityResult):
    """The paper's layer figure: per task (rows) and representation measure (columns), each cell's mean
    pairwise distance against layer depth (the classifier's input, ``head``, last), one line per cell."""
    from mixsweep.analysis.figures import _plt

    data = result.long[result.long["layer"].ne("")]
    if data.empty:
        return None
    plt, sns = _plt()
    tasks = list(dict.fromkeys(data["task"]))
    measures = [m for m in REPRESENTATION if m in set(data["measure"])]
    fig, axes = plt.subplots(len(tasks), len(measures), figsize=(3.6 * len(measures), 3.0 * len(tasks)),
                             squeeze=False)
    markers = ["o", "v", "^", ".", "*", "s", "D", "P", "X", "<", ">"]
    for r, task in enumerate(tasks):
        for c, m in enumerate(measures):
            ax = axes[r][c]
            sub = data[(data["task"] == task) & (data["measure"] == m)]
            for j, (label, cell) in enumerate(sub.groupby("regularizer", sort=False)):
                cell = cell.sort_values("layer", key=lambda s: s.map(_layer_order))
                xs = np.arange(1, len(cell) + 1)
                ax.plot(xs, cell["value"], marker=markers[j % len(markers)], label=label)
                ax.fill_between(xs, cell["low"], cell["high"], alpha=0.15)
                ax.set_xticks(xs, [lay.replace("layer_", "") for lay in cell["layer"]])
            ax.set_title(f"{task}: {SYMBOLS[m]}", fontsize=10)
            ax.set_xlabel("layer depth")
            ax.set_ylim(bottom=0)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def sizes_note(bytes_per_run: dict[str, float]) -> str:
    if not bytes_per_run:
        return ""
    return ("Stored per run (mean): " + ", ".join(f"{k} {v / 1024:.1f} kB" for k, v in bytes_per_run.items()) + ".")


def results_root(origin: str | os.PathLike) -> Path | None:
    """The results folder of a study's table (its origin is ``<results>/<sweep>``)."""
    p = Path(origin)
    return p.parent if (p.parent / store.RUNS).is_dir() else None
