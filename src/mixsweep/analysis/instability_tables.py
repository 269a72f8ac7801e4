"""Instability beyond SD: each cell's prediction and representation measures (Du & Nguyen 2023).

Reads each run's stored per-example outputs and representations through :mod:`mixsweep.store.runs`
and computes :func:`mixsweep.instability.cell_measures` per (task, cell):

- prediction measures at the selection protocol's point (``final``/``best``: the whole dev set;
  ``zhang2021``: its test half), SD over the same runs;
- representation measures per recorded layer at the final checkpoint (whatever the protocol);
- the ensemble of the restarts (majority vote / mean score) scored like a run, beside the runs' mean;
- whether the measures agree (:mod:`mixsweep.instability.consistency`): per task, Kendall's τ between
  their rankings of the cells (:func:`measure_agreement`); the correlations between measures over the
  authors' bootstrap draws of restarts (:func:`bootstrap_agreement`); and each measure on the successful
  and on the failed runs of a cell (:func:`outcome_table`, the report's default failure definition).

Every value comes with a 95% jackknife interval over restarts (ours, :mod:`mixsweep.instability.cell`).

Only runs whose outputs share one dev-set hash are compared (the largest such group of a cell; the
rest are counted in the notes). Runs recorded without outputs (before #22, or with
``record.outputs=false``) are counted and left out; a cell with none shows "–". Every cell of the table
gets its row (named as the other tables name it, e.g. ``devlin@bertadam``), one whose runs all failed or
diverged too (n = 0, all "–").
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixsweep.config.stored import stored
from mixsweep.instability import MEASURES, CellMeasures, cell_measures, ensemble_predictions
from mixsweep.instability.cell import BOOTSTRAP, Estimate
from mixsweep.instability.consistency import (
    bootstrap_correlations,
    kendall_tau,
    mean_correlations,
    outcome_split,
)
from mixsweep.records import RunRecord
from mixsweep.store import runs as store
from mixsweep.store.outputs import point_outputs

REPRESENTATION = [m for m, (level, _) in MEASURES.items() if level == "representation"]
SYMBOLS = {"sd": "SD", "pwd": "I_pwd", "kappa": "I_κ (textbook)", "kappa_authors": "I_κ (authors)", "jsd": "I_JSD",
           "svcca": "I_SVCCA", "pwcca": "I_PWCCA", "cka": "I_CKA", "procrustes": "I_OP"}

# Measured (tests/test_instability_consistency.py checks them): distances between two *independent*
# standard Gaussian matrices of 300 examples × 1,024 dimensions, where no similarity is there to find
DEGENERATE_300x1024 = {"pwcca": 0.0, "svcca": 0.015, "procrustes": 0.073, "cka": 1.00}
DEGENERACY_NOTE = (
    "Some representations have no more examples than dimensions (+1). There CCA is degenerate (every canonical "
    "correlation is 1: PWCCA is 0 whatever the runs), and SVCCA and Procrustes nearly so: two independent random "
    "300 × 1,024 matrices read I_SVCCA {svcca:.3f} and I_OP {procrustes:.3f}, values that elsewhere would mean "
    "near-identical runs. Only CKA stays informative there (it reads {cka:.2f} on the same data). Raise "
    "record.max_examples on larger dev sets.").format(**DEGENERATE_300x1024)


@dataclass
class InstabilityResult:
    long: pd.DataFrame  # task, regularizer(label), measure, layer, value, low, high, n_runs, n_examples
    wide: pd.DataFrame  # one row per cell (the report's table)
    notes: list[str] = field(default_factory=list)
    layers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    bytes_per_run: dict[str, float] = field(default_factory=dict)
    cells: dict[tuple[str, str], CellMeasures] = field(default_factory=dict)  # (task, label) → its measures
    deepest: dict[tuple[str, str], str | None] = field(default_factory=dict)  # the layer the table shows
    failed: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # per compared run; NaN: n/a


def _layer_order(name: str) -> tuple[int, int]:
    return (1, 0) if name == "head" else (0, int(name.split("_")[1]))


def _fmt(e: Estimate | None) -> str:
    if e is None or not np.isfinite(e.value):
        return "–"
    ci = f" [{e.low:.3f}, {e.high:.3f}]" if np.isfinite(e.low) else ""
    return f"{e.value:.3f}{ci}"


def instability(runs: pd.DataFrame, records: list[RunRecord], results: str | os.PathLike | None,
                selection: str = "final", measures: Iterable[str] | None = None) -> InstabilityResult:
    """Every measure (or those named in ``measures``) for every cell of ``runs`` (the tidy table) from
    the stored outputs; representations are read only when a representation measure is asked for."""
    from mixsweep.analysis.failures import DEFAULT, failure_mask
    from mixsweep.analysis.naming import display_name, sort_labels, sort_tasks
    from mixsweep.data.metrics import compute_metrics
    from mixsweep.data.tasks import TaskSpec

    wanted = list(MEASURES) if measures is None else [m for m in MEASURES if m in set(measures)]
    by_id = {r.run_id: r for r in records}
    long_rows, wide_rows, notes = [], [], []
    layers_of: dict[tuple[str, str], list[str]] = {}
    cells: dict[tuple[str, str], CellMeasures] = {}
    deepest_of: dict[tuple[str, str], str | None] = {}
    failed_of: dict[tuple[str, str], np.ndarray] = {}
    missing_total, mixed_total, degenerate = 0, 0, False
    sizes: dict[str, list[int]] = {"outputs": [], "representations": []}
    ok = runs[runs["status"].eq("ok")] if len(runs) else runs
    failed_flag = failure_mask(ok, DEFAULT, selection) if len(ok) else pd.Series(dtype="boolean")
    failed_by_id = dict(zip(ok["run_id"].astype(str), failed_flag, strict=True)) if len(ok) else {}
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
                row.update({SYMBOLS[m]: "–" for m in wanted})
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
            reps = _representations(results, rids, common) if set(wanted) & set(REPRESENTATION) else {}
            if any(len(v[0]) - 1 <= v[0].shape[1] for v in reps.values()):
                degenerate = True
            cache = PairCache(results, rids, [m for m in wanted if m in REPRESENTATION], list(reps))
            cm = cell_measures(scores.loc[rids].to_numpy(), labels, probs, reps, num_classes=k, measures=wanted,
                               known_pairs=cache.known)
            cache.save(cm)
            layers = sorted({layer for d in cm.layers.values() for layer in d}, key=_layer_order)
            layers_of[(task, label)] = layers
            deepest = next((lay for lay in reversed(layers) if lay != "head"), layers[-1] if layers else None)
            cells[(task, label)] = cm
            deepest_of[(task, label)] = deepest
            failed_of[(task, label)] = np.array([_flag(failed_by_id.get(rid)) for rid in rids])
            for name, est in cm.values.items():
                row[SYMBOLS[name]] = _fmt(est)
                long_rows.append(_long(task, label, name, "", est, cm))
            for name in (m for m in REPRESENTATION if m in wanted):
                per_layer = cm.layers.get(name, {})
                row[SYMBOLS[name]] = _fmt(per_layer.get(deepest)) if deepest else "–"
                for layer in layers:
                    if layer in per_layer:
                        long_rows.append(_long(task, label, name, layer, per_layer[layer], cm))
            for name in wanted:
                row.setdefault(SYMBOLS[name], "–")
            rec = by_id.get(rids[0])
            if rec is not None and stored(rec.config).task:
                spec = TaskSpec.from_config(stored(rec.config).task)
                ens = ensemble_predictions(preds if regression else labels, regression, k, probs=probs)
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
        notes.append(DEGENERACY_NOTE)
    bytes_per_run = {k: float(np.mean(v)) for k, v in sizes.items() if v}
    long = pd.DataFrame(long_rows, columns=["task", "regularizer", "measure", "layer", "value", "low", "high",
                                            "n_runs", "n_examples"])
    columns = ["task", "regularizer", "n", "with outputs", *(SYMBOLS[m] for m in wanted), "ensemble", "mean",
               "layer"]
    wide = pd.DataFrame(wide_rows).reindex(columns=columns).fillna("–") if wide_rows else pd.DataFrame()
    return InstabilityResult(long, wide, notes, layers_of, bytes_per_run, cells, deepest_of, failed_of)


class PairCache:
    """The representation measures' pairwise matrices of one cell's run set, kept on disk so that
    ``table --measure X`` after ``report`` (or another ``table``) decomposes nothing again:
    ``<results>/.cache/instability/<key>.npy``, one file per measure and layer. The key hashes the
    measure, the layer, :data:`CACHE_VERSION`, and each run's id with its ``representations.npz`` size
    and modification time, in the cell's order: a rerun that rewrites a run's file, or a run set that
    changes, misses the cache. Best effort: a store that cannot be written (read-only) is simply not
    cached, and an unreadable entry is recomputed."""

    def __init__(self, results: str | os.PathLike | None, rids: list[str], measures: list[str], layers: list[str]):
        self.dir = Path(results) / CACHE_DIR if results is not None else None
        self.keys: dict[tuple[str, str], str] = {}
        self.known: dict[str, dict[str, np.ndarray]] = {}
        stamp = _stamp(results, rids) if self.dir is not None and measures and layers else None
        if stamp is None:
            return
        for name in measures:
            for layer in layers:
                key = hashlib.sha256(json.dumps([CACHE_VERSION, name, layer, stamp]).encode()).hexdigest()[:32]
                self.keys[(name, layer)] = key
                d = _load_matrix(self.dir / f"{key}.npy", len(rids))
                if d is not None:
                    self.known.setdefault(name, {})[layer] = d

    def save(self, cm: CellMeasures) -> None:
        from mixsweep.store.atomic import atomic_write_with

        for (name, layer), key in self.keys.items():
            d = cm.layer_pairs.get(name, {}).get(layer)
            if d is None or layer in self.known.get(name, {}):
                continue
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                atomic_write_with(self.dir / f"{key}.npy", lambda p, d=d: _save_matrix(p, d))
            except OSError:  # a read-only store: compute again next time
                return


CACHE_DIR = Path(".cache") / "instability"
CACHE_VERSION = 1  # raise when a distance's definition or arithmetic changes: old entries are then missed


def _stamp(results, rids: list[str]) -> list | None:
    """[run id, size, mtime_ns] of each run's representations file, or None if one cannot be read."""
    out = []
    for rid in rids:
        try:
            st = (store.run_dir(results, rid) / store.REPRESENTATIONS).stat()
        except OSError:
            return None
        out.append([rid, st.st_size, st.st_mtime_ns])
    return out


def _save_matrix(path: Path, d: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a handle: np.save would append ".npy" to the temporary file's name
        np.save(fh, d, allow_pickle=False)


def _load_matrix(path: Path, m: int) -> np.ndarray | None:
    """A cached m × m matrix, or None (absent, unreadable, or of another shape)."""
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return d if d.shape == (m, m) and np.isfinite(d).all() else None


def _flag(x) -> float:
    """A nullable boolean failure flag as 1.0 / 0.0, NaN for not applicable (or not found)."""
    return float("nan") if x is None or pd.isna(x) else float(bool(x))


def _point_values(cm: CellMeasures, layer: str | None) -> dict[str, float]:
    """The cell's value of each measure as the table shows it (representation measures at ``layer``)."""
    out = {name: est.value for name, est in cm.values.items()}
    for name, per_layer in cm.layers.items():
        if layer in per_layer:
            out[name] = per_layer[layer].value
    return out


def measure_agreement(result: InstabilityResult) -> pd.DataFrame:
    """Per task, Kendall's τ-b between every two measures' rankings of its cells (the values of the main
    table: representation measures at each cell's deepest stored layer, rounded to 10 decimals). Long:
    task, a, b, tau, n."""
    frames = []
    for task in dict.fromkeys(t for t, _ in result.cells):
        values = pd.DataFrame([_point_values(cm, result.deepest[key]) for key, cm in result.cells.items()
                               if key[0] == task])
        values = values.reindex(columns=[m for m in MEASURES if m in values.columns])
        # equal values reached by different arithmetic (I_pwd and n/(n − 1)·(1 − P̄)) differ in the last
        # bits; rounded to 10 decimals they tie, as they should, instead of ranking by rounding noise
        tau = kendall_tau(values.round(10))
        tau.insert(0, "task", task)
        frames.append(tau)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", "a", "b", "tau", "n"])


def bootstrap_agreement(result: InstabilityResult, n_boot: int = BOOTSTRAP, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Per task, the Pearson correlations between measures over the authors' bootstrap draws of each
    cell's restarts (:func:`~mixsweep.instability.consistency.bootstrap_correlations`), averaged over
    the task's cells (those with at least 3 runs)."""
    per_task: dict[str, dict[str, pd.DataFrame]] = {}
    for (task, label), cm in result.cells.items():
        if cm.n_runs >= 3:
            per_task.setdefault(task, {})[label] = bootstrap_correlations(cm, result.deepest[(task, label)],
                                                                          n_boot, seed)
    return {task: mean_correlations(m) for task, m in per_task.items()}


def outcome_table(result: InstabilityResult) -> pd.DataFrame:
    """Each cell's measures on its successful and on its failed runs (the report's default failure
    definition): one row per cell and group with at least one run, values formatted, – where a group has
    fewer than 2 runs."""
    from mixsweep.analysis.naming import display_name

    rows = []
    for (task, label), cm in result.cells.items():
        split = outcome_split(cm, result.failed[(task, label)], result.deepest[(task, label)])
        for group, values in split.items():
            if not values["n"]:
                continue
            row = {"task": task, "regularizer": display_name(label), "runs": group, "n": int(values["n"])}
            for name in MEASURES:
                v = values.get(name)
                row[SYMBOLS[name]] = f"{v:.3f}" if v is not None and np.isfinite(v) else "–"
            rows.append(row)
    return pd.DataFrame(rows)


def symbol_matrix(pairs: pd.DataFrame, value: str = "tau") -> pd.DataFrame:
    """A long table of measure pairs (a, b, value) as a lower-triangular matrix of the measures' symbols."""
    names = list(dict.fromkeys([*pairs["a"], *pairs["b"]]))
    out = pd.DataFrame("", index=[SYMBOLS[n] for n in names], columns=[SYMBOLS[n] for n in names])
    for _, r in pairs.iterrows():
        if np.isfinite(r[value]):
            out.loc[SYMBOLS[r["b"]], SYMBOLS[r["a"]]] = f"{r[value]:.2f}"
    return out.iloc[1:, :-1]  # the first row and the last column of a lower triangle are empty


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
