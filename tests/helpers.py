"""Shared test pieces: tiny study files, CLI subprocesses, store inspection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import GLUE
from mixsweep.records import RunRecord

STUDY = """# @package _global_
defaults:
  - override /hydra/sweeper: cells
  - override /model: tiny
sweep: {name}
data: {{source: glue_dir, glue_dir: {glue}}}
train: {{epochs: {epochs}, batch_size: 8, eval_batch_size: 16}}
optimizer: {{lr: 1.0e-3}}
threads: 1
hydra:
  sweeper:
    params:
      seed: range(0,{seeds})
      task: rte
    cells:
{cells}
"""
CELLS = {
    "dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"],
    "mixout_0.5": ["regularizer=mixout", "regularizer.mixout.p=0.5"],
}
# Fields that are a function of the config alone: equal bit for bit between two CPU executions.
OUTCOME = ("status", "final", "best", "best_step", "eval_curve", "train_loss", "distance_sq", "seeds", "extra")


def write_study(root: Path, name: str, cells: dict[str, list[str]] | None = None, *, seeds: int = 4,
                epochs: int = 1, glue: Path = GLUE) -> str:
    lines = "\n".join(f"      {k}: {json.dumps(v)}" for k, v in (cells or CELLS).items())
    (root / "sweeps").mkdir(parents=True, exist_ok=True)
    (root / "sweeps" / f"{name}.yaml").write_text(
        STUDY.format(name=name, glue=glue, epochs=epochs, seeds=seeds, cells=lines))
    return name


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess that finds the studies and cache under ``root``."""
    return {**os.environ, "MIXSWEEP_SEARCH_PATH": str(root), "MIXSWEEP_CACHE": str(root / "cache"),
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **extra}


def sweep_argv(results: Path, sweep: str, *extra: str) -> list[str]:
    return ["sweep", "--sweep", sweep, "--results", str(results), "--no-summary", *extra]


def start_cli(root: Path, argv: list[str], *, prelude: str = "", **env: str) -> subprocess.Popen:
    """``python -m mixsweep.cli ARGV`` in a subprocess; ``prelude`` is Python run first (fault hooks)."""
    code = prelude + "\nimport sys\nfrom mixsweep.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    cmd = [sys.executable, "-c", code, *argv] if prelude else [sys.executable, "-m", "mixsweep.cli", *argv]
    return subprocess.Popen(cmd, env=cli_env(root, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run_cli(root: Path, argv: list[str], *, prelude: str = "", timeout: float = 120, **env: str):
    proc = start_cli(root, argv, prelude=prelude, **env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def study_run_ids(results: Path, sweep: str) -> list[str]:
    """The run ids in the study's view (``<results>/<sweep>/view.json``), read without the store."""
    path = results / sweep / "view.json"
    return [e["run_id"] for e in json.loads(path.read_text())["runs"]] if path.exists() else []


def run_dirs(results: Path, sweep: str) -> list[Path]:
    """Every run directory of the sweep in the store (``<results>/runs/<run_id>``), finished or not."""
    return sorted(d for d in (results / "runs" / rid for rid in study_run_ids(results, sweep)) if d.is_dir())


def result_files(results: Path, sweep: str) -> list[Path]:
    return [d / "result.json" for d in run_dirs(results, sweep) if (d / "result.json").exists()]


def records(results: Path, sweep: str) -> dict[str, RunRecord]:
    out = {}
    for path in result_files(results, sweep):
        rec = RunRecord.from_dict(json.loads(path.read_text()))
        out[rec.run_id] = rec
    return out


def outcome(rec: RunRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in OUTCOME}


def result_stamps(results: Path, sweep: str) -> dict[str, tuple[int, int, str]]:
    """run_id -> (mtime_ns, inode, text) of its result.json: any rewrite changes it."""
    out = {}
    for path in result_files(results, sweep):
        st = path.stat()
        out[path.parent.name] = (st.st_mtime_ns, st.st_ino, path.read_text())
    return out


def assert_store_consistent(results: Path, sweep: str, n_runs: int) -> None:
    """Every run committed exactly once: a valid record, its matching curve, no temp or stray file."""
    dirs = run_dirs(results, sweep)
    assert len(dirs) == n_runs, [d.name for d in dirs]
    for d in dirs:
        names = {p.name for p in d.iterdir()}
        assert names <= {"result.json", "curve.jsonl", ".lock", "outputs.npz", "representations.npz"}, \
            f"stray files in {d}: {names}"
        assert "result.json" in names and "curve.jsonl" in names, f"uncommitted run {d}: {names}"
        rec = RunRecord.from_dict(json.loads((d / "result.json").read_text()))
        assert rec.run_id == d.name and rec.status == "ok"
        curve = [json.loads(line) for line in (d / "curve.jsonl").read_text().splitlines()]
        assert curve == rec.eval_curve
    assert not list(results.rglob("*.tmp")), "a temp file survived"


def one_error_line(err: str) -> str:
    """The stderr of a rejected command: exactly one ``mixsweep: error: <problem>: <fix>`` line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("mixsweep: error: ") and "Traceback" not in err, err
    assert ": " in line.removeprefix("mixsweep: error: "), f"no fix given: {line}"
    return line


def copy_glue(dst: Path, task_dir: str = "RTE") -> Path:
    """A private copy of one fixture task folder, to be damaged by a test; returns the glue root."""
    (dst / task_dir).mkdir(parents=True)
    for f in (GLUE / task_dir).iterdir():
        (dst / task_dir / f.name).write_bytes(f.read_bytes())
    return dst


def unpadded(md: str) -> str:
    """``md`` with every Markdown table line's cells stripped of their padding (``| rte | Our+W | 2 |``),
    so that a test names a row's cells, in order, whatever the column widths; other lines are kept."""
    def line(text: str) -> str:
        if not text.startswith("|"):
            return text
        cells = re.split(r"(?<!\\)\|", text)[1:-1]  # an escaped \| stays inside its cell
        return "| " + " | ".join(c.strip() for c in cells) + " |"

    return "\n".join(line(text) for text in md.splitlines())
