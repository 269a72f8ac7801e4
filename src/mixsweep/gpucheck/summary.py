"""``summary.md``: the JSON summary as a page a person reads (docs/gpu-and-slurm.md: "Check the box first")."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mixsweep.analysis.tables import markdown_table


def _f(x: Any, fmt: str = ".3g") -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 1000 else format(x, fmt)
    return str(x)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """The lines of a Markdown table of ``rows`` (values as :func:`_f` prints them), then a blank one."""
    cells = pd.DataFrame([[_f(c) for c in r] for r in rows], columns=header, dtype=object)
    return [*markdown_table(cells).splitlines(), ""]


def _status(entry: dict | None) -> list[str]:
    if entry is None:
        return ["not run (not reached yet, or not in --sections)", ""]
    if entry["status"] == "skipped":
        return [f"**skipped**: {entry.get('reason')}", ""]
    if entry["status"] == "error":
        return [f"**error**: `{entry.get('error')}` (traceback in summary.json); what it measured before:", ""]
    return []


def _shown(entry: dict | None) -> bool:
    """Whether a section has results to show (an errored section shows what it measured before)."""
    return bool(entry) and entry["status"] != "skipped"


def render_markdown(s: dict[str, Any]) -> str:
    sec = s["sections"]
    verdict = {True: "PASSED", False: "FAILED or incomplete", None: "running"}[s.get("passed")]
    lines = [f"# gpu-check: {s['device']}{' (quick)' if s.get('quick') else ''}", "",
             f"Started {s['started']}, finished {s.get('finished') or '–'}, {s.get('wall_s', 0):.0f}s of a "
             f"{s['budget_s']:.0f}s budget. Overall: **{verdict}** (every section ran, every correctness check passed).",
             ""]
    lines += _environment(sec.get("environment"))
    lines += _correctness(sec.get("correctness"))
    lines += _cost(sec.get("cost"))
    lines += _throughput(sec.get("throughput"))
    return "\n".join(lines)


def _environment(e: dict | None) -> list[str]:
    lines = ["## 1. Environment", "", *_status(e)]
    if _shown(e) and "torch" in e:
        keys = ["device", "gpu_name", "gpu_memory_gib", "gpu_capability", "bf16_supported", "torch", "cuda_build",
                "cudnn", "transformers", "float32_matmul_precision", "cublas_workspace_config", "cpu_threads"]
        lines += _table(["", ""], [[k, e.get(k)] for k in keys])
        git = e.get("git") or {}
        lines += [f"git commit {git.get('commit')} (dirty: {_f(git.get('dirty'))})", ""]
    return lines


def _correctness(c: dict | None) -> list[str]:
    lines = ["## 2. Correctness on the device", "", *_status(c)]
    if not _shown(c) or "operator" not in c:
        return lines
    lines += ["Same mask on both sides; rel = max |device − cpu| / max |cpu| over output and gradients.", ""]
    if isinstance(c["operator"], dict):
        lines += [f"Operator checks: error `{c['operator']['error']}`", ""]
    else:
        lines += _table(["check", "max abs diff", "rel", "tolerance", "ok"],
                        [[o["name"], o["max_abs_diff"], o["rel"], o["tol"], o["passed"]] for o in c["operator"]])
    t = c.get("target") or {"error": "not run"}
    if "error" in t:
        lines += [f"Target check: error `{t['error']}`", ""]
    else:
        lines += [
            f"mixout target (after `prepare_model(mixout)`, {t['mixlinear_layers']} MixLinear layers): on the "
            f"device {_f(t['targets_on_device'])}; in the optimizer {t['targets_in_optimizer']}; requires grad "
            f"{t['targets_require_grad']}; in state_dict {t['targets_in_state_dict']}; unchanged after "
            f"{t['steps']} steps {_f(t['targets_unchanged'])} while {t['weights_changed']} weights moved: "
            f"**{'ok' if t['passed'] else 'FAIL'}**.", ""]
    rows = [[p, "error", d["error"], "", "", "", ""] if "error" in d else
            [p, d["steps"][0], d["identical"], d["max_abs_loss_diff"], d["first_differing_step"],
             d["final_loss"][0], d["final_loss"][1]] for p, d in (c.get("determinism") or {}).items()]
    lines += ["Finetuning run through the runner, `deterministic=true`, done twice (same seeds):", ""]
    lines += _table(["precision", "steps", "identical losses", "max abs Δ loss", "first differing step",
                     "final loss 1", "final loss 2"], rows)
    if c.get("determinism_note"):
        lines += [c["determinism_note"] + ".", ""]
    return lines


def _cost(c: dict | None) -> list[str]:
    lines = ["## 3. Cost per finetuning step", "", *_status(c)]
    if not _shown(c) or not c.get("models"):
        return lines
    lines += ["Interleaved in one process; step = forward + backward + optimizer step; × none = step time "
              "÷ the no-regularization step. Resident: parameters, buffers, w_pre, optimizer state. Step peak "
              "(CUDA only): allocator peak during one step above what was allocated before it.", ""]
    for m in c["models"]:
        if "error" in m:
            lines += [f"**{m['model']}**: error `{m['error']}`", ""]
            continue
        for precision, e in m["precisions"].items():
            lines += [f"**{m['model']}** ({m['parameters'] / 1e6:.1f}M parameters), {precision}, "
                      f"batch {m['batch']} × {m['seq']} tokens, median of {e['rounds']} rounds:", ""]
            lines += _table(
                ["regularizer", "label", "steps/s", "ms/step", "× none", "resident MiB", "step peak MiB", "peak MiB"],
                [[v["regularizer"], v["label"], v["steps_per_s"], v["step_s"] * 1e3, v["ratio"], v["resident_mib"],
                  v["step_peak_mib"], v["peak_mib"]] for v in e["variants"]])
            if "mixout_over_dropout" in e:
                lines += [f"mixout / dropout step time: **{e['mixout_over_dropout']:.3f}** here; the paper's "
                          f"App. E: {e['paper_mixout_over_dropout']:.3f} (843 s vs 636 s, BERT-large).", ""]
    if c.get("skipped_models"):
        lines += [f"Skipped for the budget: {', '.join(c['skipped_models'])}.", ""]
    return lines


def _throughput(t: dict | None) -> list[str]:
    lines = ["## 4. Throughput and Table 1's wall time", "", *_status(t)]
    if not _shown(t) or "run" not in t:
        return lines
    r = t["run"]
    lines += [f"k concurrent runs of {r['model']} on {r['task']} ({r['train_size']} train / {r['dev_size']} dev "
              f"examples, {r['epochs']} epoch(s), batch {r['batch']}, {r['regularizer']}) on one device, "
              "released together after a warm-up:", ""]
    lines += _table(["k", "runs", "wall s", "runs/hour", "gain vs k=1", "mean run s"],
                    [[x["k"], x["runs"], x["wall_s"], x["runs_per_hour"], x["gain"], x["run_total_s_mean"]]
                     for x in t.get("k", [])])
    if t.get("skipped_k"):
        lines += [f"Skipped for the budget: k = {', '.join(map(str, t['skipped_k']))}.", ""]
    est = t.get("table1_estimate") or {}
    if "error" in est:
        return [*lines, f"Table 1 estimate: not available ({est['error']}).", ""]
    if not est:
        return lines
    warn = "" if est["is_bert_large"] else (
        f" **This is {est['model']}, not BERT-large**: pass `--bert-large DIR` for the paper's model.")
    lines += [
        "Table 1 = 880 runs (4 tasks × 11 rows × 20 seeds, 3 epochs). Each run is priced as "
        f"⌈n_train / {est['batch']}⌉ · 3 steps × the measured step time of its row's regularizer at "
        f"{est['batch']} × {est['seq']} tokens (the paper's batch is 32; full-length batches make it an upper "
        "bound: real batches are padded only to their longest sentence) + 3 dev evaluations × the measured "
        "eval time per example + "
        f"{est['overhead_s_per_run']:.1f}s per-run overhead (the k=1 small runs' time outside training and "
        "evaluation + building this model). N GPUs = the makespan of the 880 runs on N single-GPU workers "
        f"(longest first). 'best k' divides by the gain of k={est['best_k']} small runs "
        f"(×{est['best_k_gain']:.2f}), an optimistic bound for a model this size.{warn}", ""]
    rows = []
    for precision, e in est["precisions"].items():
        for g, v in e["serial"]["gpus"].items():
            rows.append([est["model"].rsplit("/", 1)[-1], precision, g, v["wall_h"],
                         e["with_best_k"]["gpus"][g]["wall_h"]])
    lines += _table(["model", "precision", "GPUs", "hours (one run per GPU)", "hours (best k per GPU)"], rows)
    return lines
