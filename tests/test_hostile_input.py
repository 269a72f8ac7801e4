"""Hostile and unlucky input through the CLI, each in a subprocess (issue 24 §2–11; §1 is the
browser test in test_report_browser.py): nothing lost, nothing injected, no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import GLUE
from helpers import run_cli, study_run_ids, sweep_argv, write_study
from mixsweep.analysis.synthetic import demo_store

ROOT = Path(__file__).resolve().parents[1]
ONE_CELL = {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"]}
CRASH = "fault={kind: raise, step: 1}"  # train._inject_fault: every run of the launch fails


def one_error_line(code: int, err: str) -> str:
    """The CLI's answer to bad input: exit 2 and one ``mixsweep: error:`` line, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "Warning" not in line and "warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith("mixsweep: error: "), err
    return lines[0]


def tree(root: Path) -> list[tuple[str, str]]:
    return sorted((str(p.relative_to(root)), p.read_text() if p.is_file() else "/")
                  for p in root.rglob("*"))


# ---- 2. store migrate ------------------------------------------------------------------------

def old_layout_record(rid: str, sweep: str) -> dict:
    return {"run_id": rid, "sweep": sweep, "task": "rte", "cell": "dropout_0.1", "label": "dropout(0.1)",
            "seed": 0, "status": "ok", "headline": "acc", "final": {"acc": 60.0}}


def test_migrate_refuses_what_is_not_a_store_and_touches_nothing(tmp_path):
    photos = tmp_path / "X" / "photos" / "2024" / "deadbeef0123"
    photos.mkdir(parents=True)
    (photos / "img.jpg").write_text("jpeg")
    (tmp_path / "afile").write_text("text")
    before = tree(tmp_path)
    for target in (tmp_path / "X", tmp_path / "afile", tmp_path / "missing"):
        code, out, err = run_cli(tmp_path, ["store", "migrate", "--results", str(target)])
        line = one_error_line(code, err)
        assert "--results DIR" in line and "migrated" not in out
    assert tree(tmp_path) == before


def test_migrate_dry_run_says_what_it_would_do_then_moves_only_runs_with_records(tmp_path):
    results = tmp_path / "results"
    rid = "0123456789ab"
    (results / "old" / "rte" / rid).mkdir(parents=True)
    (results / "old" / "rte" / rid / "result.json").write_text(json.dumps(old_layout_record(rid, "old")))
    (results / "old" / "notes.txt").write_text("mine")
    (results / "photos" / "2024" / "deadbeef0123").mkdir(parents=True)  # looks like a run, holds no record
    before = tree(results)

    code, out, err = run_cli(tmp_path, ["store", "migrate", "--results", str(results), "--dry-run"])
    assert code == 0, err
    assert f"would move {results / 'old' / 'rte' / rid} to {results / 'runs' / rid}" in out
    assert "nothing was changed" in out and "photos" not in out
    assert tree(results) == before

    code, out, err = run_cli(tmp_path, ["store", "migrate", "--results", str(results)])
    assert code == 0, err
    assert "migrated 1 runs of 1 studies" in out
    assert (results / "runs" / rid / "result.json").is_file() and (results / "old" / "notes.txt").read_text() == "mine"
    assert (results / "photos" / "2024" / "deadbeef0123").is_dir() and not (results / "photos" / "view.json").exists()


# ---- 3 and 9. storage URLs: secrets masked, failures one line -----------------------------------

def test_a_storage_password_is_masked_in_every_line_and_file(tmp_path):
    results = tmp_path / "results"
    url = f"sqlite:///{tmp_path / 'optuna.db'}?password=s3cret"
    code, out, err = run_cli(tmp_path, ["hpo", "--task", "rte", "--trials", "0", "--results", str(results),
                                        "--storage", url, "model=tiny"])
    assert code == 0, err
    assert "s3cret" not in out + err
    assert out.count("password=***") == 2  # the storage line and the dashboard hint
    for path in results.rglob("*"):
        assert not path.is_file() or b"s3cret" not in path.read_bytes(), path

    # from the environment (Optuna's own variable): never on the command line, and named, not shown
    code, out, err = run_cli(tmp_path, ["hpo", "--task", "rte", "--trials", "0", "--results", str(results),
                                        "model=tiny"], OPTUNA_STORAGE=url)
    assert code == 0, err
    assert "s3cret" not in out + err and 'optuna-dashboard "$OPTUNA_STORAGE"' in out
    assert not (results / "hpo" / "rte-mixout" / "journal.log").exists()  # the URL was used


def test_make_hpo_echoes_the_command_with_the_password_masked(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".setup-stamp").touch()
    (venv / "bin" / "mixsweep").write_text("#!/bin/sh\nexit 0\n")  # the echo is Make's, not the command's
    (venv / "bin" / "mixsweep").chmod(0o755)
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "hpo", f"VENV={venv}", "TASK=rte",
                           "ARGS=--storage postgresql://user:s3cret@db.example/x?sslpassword=pw2&app=m"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr and "pw2" not in proc.stdout + proc.stderr
    assert "postgresql://user:***@db.example/x?sslpassword=***&app=m" in proc.stdout


@pytest.mark.parametrize("url, says", [
    ("postgresql://user:s3cret@127.0.0.1:1/db", "no database driver"),  # psycopg2 is not installed
    ("sqlite:////nonexistent-dir/x/optuna.db", "cannot open the storage"),
])
def test_a_storage_that_cannot_be_opened_is_one_line_with_the_fix(tmp_path, url, says):
    pytest.importorskip("sqlalchemy")
    if url.startswith("postgresql"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is not None:
            pytest.skip("psycopg2 is installed: the missing-driver case cannot happen here")
    code, out, err = run_cli(tmp_path, ["hpo", "--task", "rte", "--trials", "1", "--results",
                                        str(tmp_path / "results"), "--storage", url, "model=tiny"])
    line = one_error_line(code, err)
    assert says in line and "--storage" in line and "s3cret" not in out + err


# ---- 4. rerun takes a run id ---------------------------------------------------------------------

@pytest.mark.parametrize("given", ["/etc", "../../other/runs/848", "*", "[0-9]", "0123456789abc", "ABC", ""])
def test_rerun_takes_only_a_hex_run_id(tmp_path, given):
    code, out, err = run_cli(tmp_path, ["rerun", given, "--results", str(tmp_path / "results")])
    assert "is not a run id" in one_error_line(code, err)


# ---- 5. RESULTS=/ --------------------------------------------------------------------------------

@pytest.mark.parametrize("results", ["/", "/etc", "/usr/share/x"])
def test_a_system_directory_is_refused_as_results(tmp_path, results):
    # a model that does not exist: were the folder accepted, the preflight would stop the sweep
    # before it writes anything (the test must not fill / on a build without the check)
    safe = "model.name_or_path=/nonexistent/model-dir"
    for argv in (["sweep", "--results", results, safe], ["plan", "--results", results, safe]):
        code, out, err = run_cli(tmp_path, argv)
        line = one_error_line(code, err)
        assert ("file-system root" if results == "/" else "system directory") in line and "RESULTS=DIR" in line
    assert not Path("/runs").exists() and not Path("/etc/runs").exists()


# ---- 6, 7, 10. a sweep: full disk, a result.json that is no record, failed runs --------------------

# Hydra writes .hydra/config.yaml before each job: the second job finds the disk full.
FULL_DISK = """
import errno
import hydra.core.utils as hydra_utils
_save, _calls = hydra_utils._save_config, []
def _save_config(cfg, filename, output_dir):
    if filename == "config.yaml":
        _calls.append(output_dir)
        if len(_calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(output_dir) + "/config.yaml")
    return _save(cfg, filename, output_dir)
hydra_utils._save_config = _save_config
"""


def test_a_full_disk_mid_sweep_is_one_line_and_keeps_the_finished_run(tmp_path):
    results = tmp_path / "results"
    write_study(tmp_path, "disk", ONE_CELL, seeds=2)
    code, out, err = run_cli(tmp_path, sweep_argv(results, "disk"), prelude=FULL_DISK, timeout=300)
    line = one_error_line(code, err)
    assert "disk is full" in line and "RESULTS=DIR" in line
    records = list((results / "runs").glob("*/result.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "ok"


def test_a_result_json_that_is_no_record_is_warned_about_and_redone(tmp_path):
    results = tmp_path / "results"
    write_study(tmp_path, "notrec", ONE_CELL, seeds=1, glue=GLUE)
    code, out, err = run_cli(tmp_path, sweep_argv(results, "notrec"), timeout=300)
    assert code == 0, err
    (rid,) = study_run_ids(results, "notrec")
    path = results / "runs" / rid / "result.json"
    for text in ("[]", "null", '"x"'):  # valid JSON, no record
        path.write_text(text)
        code, out, err = run_cli(tmp_path, ["plan", "--sweep", "notrec", "--results", str(results)])
        assert code == 0 and "Traceback" not in err, err
        assert f"corrupt record {path}" in out and "will be redone" in out
        assert "0 done, 0 failed (will retry), 1 to do" in out


def test_a_sweep_whose_runs_failed_exits_1_and_says_so_last(tmp_path):
    results = tmp_path / "results"
    write_study(tmp_path, "crash", ONE_CELL, seeds=2)
    code, out, err = run_cli(tmp_path, [*sweep_argv(results, "crash"), CRASH], timeout=300)
    assert code == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mixsweep: 2 of 2 runs of this launch failed") and "injected fault" in last
    assert "relaunch" in last and "Traceback" not in err


# ---- 8. report on a read-only store ----------------------------------------------------------------

# A read-only file system, simulated (tests run as root, for whom chmod does not bite): creating a
# file or folder under the store fails with EROFS.
READ_ONLY = """
import errno, os, tempfile
_store = os.environ["READ_ONLY_STORE"]
def _ro(path):
    return os.path.abspath(str(path)).startswith(_store)
_mkstemp, _mkdir, _open = tempfile.mkstemp, os.mkdir, os.open
def mkstemp(*a, dir=None, **k):
    if dir is not None and _ro(dir):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))
    return _mkstemp(*a, dir=dir, **k)
def mkdir(path, *a, **k):
    if _ro(path) and not os.path.isdir(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    return _mkdir(path, *a, **k)
def open_(path, flags, *a, **k):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _ro(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    return _open(path, flags, *a, **k)
tempfile.mkstemp, os.mkdir, os.open = mkstemp, mkdir, open_
"""


def test_report_on_a_read_only_store_says_so_and_writes_elsewhere_with_out(tmp_path):
    results = tmp_path / "results"
    demo_store(results, sweep="demo", seeds=2, digits=False)
    before = tree(results)
    argv = ["report", "--sweep", "demo", "--results", str(results), "--no-figures"]
    code, out, err = run_cli(tmp_path, argv, prelude=READ_ONLY, READ_ONLY_STORE=str(results))
    line = one_error_line(code, err)
    assert "read-only" in line and "--out DIR" in line
    assert tree(results) == before

    elsewhere = tmp_path / "elsewhere"
    code, out, err = run_cli(tmp_path, [*argv, "--out", str(elsewhere)], prelude=READ_ONLY,
                             READ_ONLY_STORE=str(results))
    assert code == 0, err
    assert {p.name for p in elsewhere.iterdir()} >= {"report.md", "report.html", "runs.csv", "runs.parquet"}
    assert tree(results) == before


# ---- 11. one name per study ------------------------------------------------------------------------

def test_a_study_file_whose_sweep_key_differs_from_its_name_is_refused(tmp_path):
    (tmp_path / "sweeps").mkdir()
    shutil.copy(ROOT / "sweeps" / "smoke.yaml", tmp_path / "sweeps" / "mystudy.yaml")
    for command in ("plan", "sweep"):
        code, out, err = run_cli(tmp_path, [command, "--sweep", "mystudy", "--results", str(tmp_path / "r"),
                                            "model.name_or_path=/nonexistent/model-dir"])  # never trains
        line = one_error_line(code, err)
        assert "sweep: smoke" in line and "mystudy" in line
    assert not (tmp_path / "r").exists()


def test_every_shipped_study_is_named_as_its_file():
    import yaml

    for path in (ROOT / "sweeps").glob("*.yaml"):
        assert str(yaml.safe_load(path.read_text()).get("sweep", path.stem)) == path.stem, path
