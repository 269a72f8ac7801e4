"""Issue 15 §7: only `make setup` installs (within constraints.txt), and `make lock` writes it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mixsweep.config.paths import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.!*-]*$")  # name==version, no local tag


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The Makefile with its inputs and a set-up .venv whose stamp is older than pyproject.toml."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    stamp = tmp_path / ".venv" / ".setup-stamp"
    stamp.touch()
    os.utime(stamp, (1_000_000_000, 1_000_000_000))  # 2001: pyproject.toml was touched since
    return tmp_path


def make(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("target", ["report", "test", "plan", "sweep", "lint"])
def test_a_touched_pyproject_never_makes_other_targets_install(checkout, target):
    proc = make(checkout, "-n", target)
    assert proc.returncode == 0, proc.stderr
    assert "pip install" not in proc.stdout
    assert "run `make setup` to update .venv" in proc.stdout  # but the user is told


def test_setup_installs_every_step_within_the_constraints(checkout):
    proc = make(checkout, "-n", "setup")
    installs = [line for line in proc.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 4 and all("-c constraints.txt" in line for line in installs)
    assert "note:" not in proc.stdout


def test_without_a_venv_any_target_sets_it_up_first(checkout):
    shutil.rmtree(checkout / ".venv")
    proc = make(checkout, "-n", "report")  # -n still runs the $(MAKE) line, itself as a dry run
    assert "pip install -q -c constraints.txt -e '.[dev,docs,tracking]'" in proc.stdout, proc.stdout


def test_committed_constraints_pin_every_package_without_local_tags():
    lines = [x for x in (ROOT / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert lines and all(PIN.match(x) for x in lines), [x for x in lines if not PIN.match(x)]
    names = {x.split("==")[0].lower() for x in lines}
    assert {"torch", "transformers", "hydra-core", "markdown-it-py"} <= names and "mixsweep" not in names


def test_make_lock_writes_the_venv_set_minus_the_project(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / ".setup-stamp").is_file():
        pytest.skip(f"{venv} was not made by `make setup`")
    out = tmp_path / "c.txt"
    proc = make(ROOT, "lock", f"VENV={venv}", f"CONSTRAINTS={out}")
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in out.read_text().splitlines() if x and not x.startswith("#")]
    assert f"wrote {out} ({len(lines)} packages)" in proc.stdout
    assert all(PIN.match(x) for x in lines)
    import torch

    assert f"torch=={torch.__version__.split('+')[0]}" in lines
    assert not any(x.lower().startswith("mixsweep") for x in lines)


def test_a_records_versions_become_constraints_over_the_lock(tmp_path):
    rec = {"run_id": "abc", "env": {"git": {"commit": "c0ffee", "dirty": True},
                                     "versions": {"python": "3.11.7", "mixsweep": "0.1.0", "torch": "2.12.0+cpu",
                                                  "scikit-learn": "1.5.0", "optuna": None}}}
    (tmp_path / "result.json").write_text(__import__("json").dumps(rec))
    (tmp_path / "lock.txt").write_text("# lock\ntorch==2.13.0\nscikit_learn==1.9.1\npandas==3.1.1\n")
    proc = subprocess.run([sys.executable, "-m", "mixsweep.run.lockfile", str(tmp_path / "result.json"),
                           str(tmp_path / "lock.txt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "# environment of run abc: python 3.11.7, git c0ffee (dirty)"
    assert lines[1:] == ["# lock", "pandas==3.1.1", "torch==2.12.0", "scikit-learn==1.5.0"]
    missing = subprocess.run([sys.executable, "-m", "mixsweep.run.lockfile", str(tmp_path / "nope.json")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
