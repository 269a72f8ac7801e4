"""``scripts/gpu-check``: run the four sections within a time budget and write the summaries.

Every section runs in its own try/except: an error is recorded in ``summary.json`` (type, message,
traceback tail) and the next section runs. Both summaries are rewritten after every section, so a
session cut short still leaves what was measured. Exit status: 0 if every section ran and every
correctness check passed, 1 otherwise, 2 for bad arguments (nothing written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixsweep.errors import UserError

if TYPE_CHECKING:
    import torch

    from mixsweep.config.settings import Model

SECTIONS = ("environment", "correctness", "cost", "throughput")
REGULARIZERS = ("none", "dropout", "devlin", "wdecay", "mixout", "mixout_wdecay")


class BudgetExceeded(BaseException):
    """The overall time budget (plus grace) ran out inside a section."""


@dataclass(frozen=True)
class CorrectnessPlan:
    model: Model                # the small model's settings (conf/model/<small>.yaml)
    target_steps: int
    target_batch: int
    target_seq: int
    run: tuple[str, ...]        # overrides of the run done twice (determinism)


@dataclass(frozen=True)
class CostPlan:
    models: tuple[Model, ...]   # largest first
    regularizers: tuple[str, ...]  # conf/regularizer names, "none" first
    batch: int
    seq: int
    warmup: int
    rounds: int


@dataclass(frozen=True)
class ThroughputPlan:
    ks: tuple[int, ...]
    runs_per_worker: int
    run: tuple[str, ...]        # overrides of the small run each worker does


@dataclass(frozen=True)
class Plan:
    """The arguments checked, and every size the sections use."""

    device: torch.device
    quick: bool
    sections: tuple[str, ...]
    budget_s: float
    out: Path
    correctness: CorrectnessPlan
    cost: CostPlan
    throughput: ThroughputPlan


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu-check",
        description="Check correctness, cost and throughput of mixsweep on one device; write "
                    "OUT/summary.json and OUT/summary.md.",
    )
    p.add_argument("--out", required=True, help="folder for summary.json and summary.md (created)")
    p.add_argument("--device", default="auto", help="auto (CUDA if visible), cpu, cuda or cuda:N")
    p.add_argument("--quick", action="store_true",
                   help="the same code path at toy sizes (tiny model, few steps): under a minute on a CPU")
    p.add_argument("--budget", type=float, default=None,
                   help="overall seconds (default 480, --quick 180); later sections and rounds are cut to fit")
    p.add_argument("--bert-base", default=None, metavar="DIR", help="local BERT-base directory (config.json + weights)")
    p.add_argument("--bert-large", default=None, metavar="DIR", help="local BERT-large directory")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument("--regularizers", default=",".join(REGULARIZERS),
                   help="conf/regularizer names for the cost section ('none' is always measured, first)")
    p.add_argument("--ks", default=None, help="concurrent runs to measure (default 1,2,4; --quick 1,2)")
    p.add_argument("--batch", type=int, default=None, help="cost batch size (default 32; --quick 4)")
    p.add_argument("--seq", type=int, default=None, help="cost sequence length (default 128; --quick 16)")
    p.add_argument("--rounds", type=int, default=None, help="timed cost rounds (default 10; --quick 3)")
    return p


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _model_dir(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    d = Path(path).expanduser()
    if not (d / "config.json").is_file():
        raise UserError(f"{flag} {path}: no config.json there: pass a local directory holding a Hugging Face "
                        "model (config.json + weights), e.g. one saved with save_pretrained")
    return str(d.resolve())


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments and fix every size the sections use."""
    import torch

    from mixsweep.config.paths import CONF_DIR
    from mixsweep.config.settings import Model
    from mixsweep.gpucheck.prepare import run_settings
    from mixsweep.run.prepare import resolve_device

    sections = _csv(args.sections)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        raise UserError(f"unknown section(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(SECTIONS)}")
    regs = _csv(args.regularizers)
    known = sorted(p.stem for p in (CONF_DIR / "regularizer").glob("*.yaml"))
    bad = [r for r in regs if r not in known]
    if bad:
        raise UserError(f"unknown regularizer(s) {', '.join(bad)}: choose from {', '.join(known)} (conf/regularizer/)")
    regs = ["none", *[r for r in regs if r != "none"]]
    try:
        ks = [int(k) for k in _csv(args.ks or ("1,2" if args.quick else "1,2,4"))]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise UserError(f"--ks {args.ks!r}: give positive integers, e.g. --ks 1,2,4")
    for flag in ("budget", "batch", "seq", "rounds"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UserError(f"--{flag} {value}: must be > 0")
    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    q = args.quick
    small = "tiny" if q else "minilm_l6"
    # largest first: the Table 1 estimate uses the largest model measured, so it must not be the one
    # the budget cuts
    models = [Model(name_or_path=d)
              for d in (_model_dir(args.bert_large, "--bert-large"), _model_dir(args.bert_base, "--bert-base")) if d]
    run_model = [f"model={small}"]
    small_model = run_settings(run_model).model  # conf/model/<small>.yaml, parsed (tiny: its sizes and seed)
    models.append(small_model)
    _check_out(Path(args.out))
    return Plan(
        device=device, quick=q, sections=tuple(sections), budget_s=args.budget or (180.0 if q else 480.0),
        out=Path(args.out),
        correctness=CorrectnessPlan(
            model=small_model, target_steps=3, target_batch=4 if q else 8, target_seq=16 if q else 64,
            run=(*run_model, *_run_shape(device, q, steps=6 if q else 20, batch=8 if q else 32, train=None,
                                         dev=16 if q else 64, epochs=1))),
        cost=CostPlan(models=tuple(models), regularizers=tuple(regs), batch=args.batch or (4 if q else 32),
                      seq=args.seq or (16 if q else 128), warmup=1 if q else 3, rounds=args.rounds or (3 if q else 10)),
        # the small run: an RTE-shaped run (2,490 train / 277 dev examples, 3 epochs, batch 32) of the
        # offline model on rt_polarity; --quick: 32 / 16 examples, 1 epoch, batch 8
        throughput=ThroughputPlan(
            ks=tuple(ks), runs_per_worker=1,
            run=(*run_model, *_run_shape(device, q, steps=None, batch=8 if q else 32, train=32 if q else 2490,
                                         dev=16 if q else 277, epochs=1 if q else 3))),
    )


def _check_out(out: Path) -> None:
    """The summary folder must be creatable and writable; checked before anything is written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: pass a folder for summary.json and summary.md")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {parent} is not writable: pass a folder you can write to")


def _run_shape(device, quick: bool, *, steps: int | None, batch: int, train: int | None, dev: int, epochs: int) -> list[str]:
    shape = ["task=rt_polarity", "regularizer=mixout", f"device={device}", "deterministic=true",
             f"train.batch_size={batch}", f"train.epochs={epochs}", f"data.train_size={train or steps * batch}",
             f"data.dev_size={dev}", "progress=false"]
    if quick and device.type == "cpu":  # see main(): one thread per process
        shape.append("threads=1")
    return shape + ([f"train.max_steps={steps}"] if steps else [])


class Check:
    """The state of one gpu-check: the plan, the summary being filled, the clock and the log."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + plan.budget_s
        self.summary: dict[str, Any] = {
            "schema": 1, "tool": "mixsweep gpu-check", "started": _now(), "finished": None,
            "device": str(plan.device), "quick": plan.quick, "budget_s": plan.budget_s,
            "sections": {}, "passed": None,
        }

    def log(self, msg: str) -> None:
        print(f"[gpu-check {time.perf_counter() - self.t0:6.1f}s] {msg}", flush=True)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def section(self, name: str, fn: Callable[[dict[str, Any]], None], min_s: float) -> None:
        """Run ``fn(results)``, which fills ``results`` as it goes, so an error keeps what was measured."""
        if name not in self.plan.sections:
            return
        start = time.perf_counter()
        if self.left() < min_s:
            entry = {"status": "skipped", "reason": f"{self.left():.0f}s of the budget left, needs ~{min_s:.0f}s"}
            self.log(f"{name}: skipped ({entry['reason']})")
        else:
            self.log(f"{name}: start ({self.left():.0f}s of the budget left)")
            results: dict[str, Any] = {}
            entry = {"status": "error", "error": "BudgetExceeded: the time budget ran out in this section"}
            try:
                fn(results)
                entry = {"status": "ok"}
            except Exception as e:  # noqa: BLE001 - recorded; the next section still runs
                entry = {"status": "error", "error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc()[-3000:]}
                self.log(f"{name}: ERROR {entry['error']}")
            finally:
                entry = {**results, **entry}
                self._record(name, entry, start)  # also when BudgetExceeded passes through
            return
        self._record(name, entry, start)

    def _record(self, name: str, entry: dict[str, Any], start: float) -> None:
        entry["seconds"] = time.perf_counter() - start
        self.summary["sections"][name] = entry
        self.write()
        self.log(f"{name}: {entry['status']} in {entry['seconds']:.1f}s")

    def write(self) -> None:
        from mixsweep.gpucheck.summary import render_markdown
        from mixsweep.store.atomic import atomic_write_text

        self.summary["wall_s"] = time.perf_counter() - self.t0
        out = self.plan.out
        atomic_write_text(out / "summary.json", json.dumps(self.summary, indent=2, default=str) + "\n")
        atomic_write_text(out / "summary.md", render_markdown(self.summary))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_environment(check: Check, out: dict[str, Any]) -> None:
    from mixsweep.gpucheck.env import environment

    env = environment(check.plan.device)
    out.update(env)
    check.log(f"environment: torch {env['torch']}, CUDA {env['cuda_build']}, {env['gpu_name'] or 'no GPU'}, "
              f"bf16 {'yes' if env['bf16_supported'] else 'no'}")


def _guarded(check: Check, what: str, fn: Callable[[], Any]) -> Any:
    """fn(), or {"error": ...} if it raises: one failed check must not cost the others their GPU time."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - recorded in the summary
        check.log(f"correctness: {what}: ERROR {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}


def run_correctness(check: Check, out: dict[str, Any]) -> None:
    from mixsweep.gpucheck.correctness import determinism_check, operator_checks, target_check
    from mixsweep.gpucheck.env import bf16_supported

    plan, device = check.plan.correctness, check.plan.device
    bf16 = bf16_supported(device)
    out["operator"] = _guarded(check, "operator", lambda: operator_checks(device, bf16))
    for c in out["operator"] if isinstance(out["operator"], list) else []:
        check.log(f"correctness: {c['name']}: max|device-cpu| {c['max_abs_diff']:.3g} "
                  f"(rel {c['rel']:.3g}, tol {c['tol']:g}) {'ok' if c['passed'] else 'FAIL'}")
    out["target"] = _guarded(check, "target", lambda: target_check(
        plan.model, device, plan.target_steps, plan.target_batch, plan.target_seq))
    if "error" not in out["target"]:
        check.log(f"correctness: mixout targets on {device.type}, out of the optimizer, unchanged after "
                  f"{plan.target_steps} steps: {'ok' if out['target']['passed'] else 'FAIL'}")
    out["determinism"] = runs = {}
    runs["fp32"] = _guarded(check, "determinism fp32", lambda: determinism_check(list(plan.run)))
    if device.type == "cuda" and bf16:
        runs["bf16"] = _guarded(check, "determinism bf16", lambda: determinism_check([*plan.run, "bf16=true"]))
    for precision, d in runs.items():
        if "error" not in d:
            check.log(f"correctness: {d['steps'][0]}-step run twice ({precision}, deterministic=true): "
                      + ("identical losses" if d["identical"]
                         else f"losses differ by up to {d['max_abs_loss_diff']:.3g} from step {d['first_differing_step']}"))
    if "bf16" not in runs:
        out["determinism_note"] = ("bf16 pair not run: the runner uses bf16 autocast only on CUDA"
                                   if device.type != "cuda" else "bf16 pair not run: this GPU lacks bf16")
    # determinism is reported, not judged: GPU kernels may legitimately differ run to run
    out["passed"] = (isinstance(out["operator"], list) and all(c["passed"] for c in out["operator"])
                     and out["target"].get("passed") is True
                     and all("error" not in d for d in runs.values()))


def run_cost(check: Check, out: dict[str, Any]) -> None:
    from mixsweep.gpucheck.cost import free, measure_model
    from mixsweep.gpucheck.env import bf16_supported
    from mixsweep.gpucheck.prepare import run_settings
    from mixsweep.run.prepare import set_determinism

    plan, device = check.plan.cost, check.plan.device
    determinism = set_determinism(run_settings().deterministic)  # as a run at its default does
    precisions = ["fp32", "bf16"] if bf16_supported(device) else ["fp32"]
    out.update(determinism=determinism, models=[], skipped_models=[])
    models, skipped = out["models"], out["skipped_models"]
    # throughput needs its share: cost may use up to 55% of what is left when it starts
    end = time.perf_counter() + 0.55 * check.left()
    # a BERT directory gets twice the small model's share of the section's time
    weights = [1.0 if m.name_or_path in ("tiny", "minilm_l6") else 2.0 for m in plan.models]
    for i, model in enumerate(plan.models):
        left = end - time.perf_counter()
        if i and left < 20:
            skipped.append(str(model.name_or_path))
            check.log(f"cost: {model.name_or_path} skipped ({left:.0f}s of the section's budget left)")
            continue
        try:
            models.append(measure_model(
                model, plan.regularizers, device, batch=plan.batch, seq=plan.seq,
                precisions=precisions, warmup=plan.warmup, rounds=plan.rounds,
                deadline=time.perf_counter() + left * weights[i] / sum(weights[i:]), log=check.log))
        except Exception as e:  # noqa: BLE001 - one model failing (e.g. out of memory) does not stop the others
            models.append({"model": str(model.name_or_path), "error": f"{type(e).__name__}: {e}",
                           "traceback": traceback.format_exc()[-3000:]})
            check.log(f"cost: {model.name_or_path}: ERROR {type(e).__name__}: {e}")
        finally:
            free(device)



def run_throughput(check: Check, out: dict[str, Any]) -> None:
    from mixsweep.gpucheck.prepare import run_settings
    from mixsweep.gpucheck.throughput import measure

    plan = check.plan.throughput
    run = run_settings(plan.run)
    out.update({"run": {"model": run.model.name_or_path, "task": run.task_name,
                        "train_size": run.data.train_size, "dev_size": run.data.dev_size,
                        "epochs": run.train.epochs, "batch": run.train.batch_size,
                        "regularizer": run.regularizer_name, "runs_per_worker": plan.runs_per_worker}})
    deadline = time.monotonic() + check.left() - 5
    measure(run, plan.ks, plan.runs_per_worker, deadline, check.log, out)
    try:
        out["table1_estimate"] = estimate_table1(check.summary["sections"].get("cost"), out)
    except Exception as e:  # noqa: BLE001
        out["table1_estimate"] = {"error": f"{type(e).__name__}: {e}"}
    est = out["table1_estimate"]
    if "error" not in est:
        for precision, e in est["precisions"].items():
            check.log(f"throughput: Table 1 ({est['model']}, {precision}): "
                      + ", ".join(f"{g} GPU(s) ~{v['wall_h']:.1f} h" for g, v in e["serial"]["gpus"].items()))


def estimate_table1(cost: dict | None, thr: dict) -> dict:
    """Table 1's wall time from the largest model the cost section measured and the k = 1 overhead."""
    from mixsweep.gpucheck.estimate import table1_estimate

    measured = [m for m in (cost or {}).get("models", []) if m.get("precisions")]
    if not measured:
        raise ValueError("the cost section measured no model")
    model = max(measured, key=lambda m: m["parameters"])
    k1 = next((r for r in thr["k"] if r["k"] == 1), None)
    if k1 is None:
        raise ValueError("throughput at k=1 was not measured")
    small_overhead = k1["run_total_s_mean"] - k1["run_train_s_mean"] - k1["run_eval_s_mean"]
    overhead = max(0.0, small_overhead) + model["setup_s"]
    best = max(thr["k"], key=lambda r: r["runs_per_hour"])
    gain = best["gain"] or 1.0
    out = {"model": model["model"], "is_bert_large": "large" in model["model"].lower(),
           "batch": model["batch"], "seq": model["seq"],
           "overhead_s_per_run": overhead, "best_k": best["k"], "best_k_gain": gain,
           "method": ("880 runs (4 tasks x 11 rows x 20 seeds); run = ceil(n_train/batch)*3 steps x the measured "
                      "step time of its row's regularizer at batch x seq (full length: an upper bound) + 3 x n_dev "
                      "x eval s/example + overhead_s_per_run (the k=1 small runs' time outside training and "
                      "evaluation + setup_s of this model); N GPUs = LPT makespan of the 880 runs on N "
                      "one-GPU workers; with_best_k divides by best_k_gain (optimistic for large models)"),
           "precisions": {}}
    for precision, entry in model["precisions"].items():
        step_s = {v["regularizer"]: v["step_s"] for v in entry["variants"]}
        out["precisions"][precision] = {
            "step_s": step_s, "eval_s_per_example": entry["eval_s_per_example"],
            "serial": table1_estimate(step_s, entry["eval_s_per_example"], overhead, batch=model["batch"]),
            "with_best_k": table1_estimate(step_s, entry["eval_s_per_example"], overhead, concurrency_gain=gain,
                                           batch=model["batch"]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    # cuBLAS reads this when its handle is created: set it before anything touches CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        plan = make_plan(args)
    except UserError as e:
        print(f"gpu-check: error: {e}", file=sys.stderr)
        return 2
    if plan.quick and plan.device.type == "cpu":
        import torch

        # a path check: one thread per process stays fast when other processes share the cores
        torch.set_num_threads(1)
    check = Check(plan)
    check.log(f"device {plan.device}, budget {plan.budget_s:.0f}s, sections {', '.join(plan.sections)}"
              f"{' (quick)' if plan.quick else ''}; writing {plan.out}/summary.{{json,md}}")
    check.write()
    alarm = _arm_alarm(plan.budget_s + 60)
    try:
        check.section("environment", lambda out: run_environment(check, out), 0)
        check.section("correctness", lambda out: run_correctness(check, out), 5)
        check.section("cost", lambda out: run_cost(check, out), 10)
        check.section("throughput", lambda out: run_throughput(check, out), 15)
    except BudgetExceeded:
        check.log("the time budget ran out; the summary holds what was measured")
    finally:
        if alarm:
            signal.alarm(0)
    sections = check.summary["sections"]
    corr = sections.get("correctness", {})
    check.summary["passed"] = (all(s["status"] != "error" for s in sections.values())
                               and corr.get("passed", "correctness" not in plan.sections) is True)
    check.summary["finished"] = _now()
    check.write()
    check.log(f"done: {'PASSED' if check.summary['passed'] else 'FAILED or incomplete'}; "
              f"see {plan.out / 'summary.md'}")
    return 0 if check.summary["passed"] else 1


def _arm_alarm(seconds: float) -> bool:
    """A hard stop past the budget's grace: raises BudgetExceeded in whatever section is running."""
    if not hasattr(signal, "SIGALRM"):
        return False

    def handler(signum, frame):  # noqa: ANN001
        raise BudgetExceeded()

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(int(seconds))
    return True
