"""Bad input: one line ``mixsweep: error: <problem>: <fix>``, exit status 2, no traceback unless
asked for, and nothing half-written in the results directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import copy_glue, one_error_line, records, run_cli, run_dirs, sweep_argv, write_study
from mixsweep.cli import main

SWEEP = "bad"


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MIXSWEEP_SEARCH_PATH", str(tmp_path))
    monkeypatch.setenv("MIXSWEEP_CACHE", str(tmp_path / "cache"))
    write_study(tmp_path, SWEEP, seeds=1)
    return tmp_path


def rejected(root: Path, capsys, *argv: str, sweep: str = SWEEP) -> str:
    """Run ``mixsweep sweep`` with ``argv``; return its one error line."""
    results = root / "results"
    code = main(sweep_argv(results, sweep, *argv))
    err = capsys.readouterr().err
    assert code == 2, err
    return one_error_line(err)


def assert_nothing_written(root: Path) -> None:
    assert not (root / "results").exists(), sorted(map(str, (root / "results").rglob("*")))


def assert_no_run_written(root: Path) -> None:
    """For errors found by a run itself: no run directory, record or temp file (Hydra's own job
    logs, the sweep's multirun.yaml and progress ledger may exist)."""
    results = root / "results"
    assert not run_dirs(results, SWEEP) and not list(results.rglob("result.json"))
    assert not list(results.rglob("*.tmp"))


@pytest.mark.parametrize(("argv", "problem"), [
    (["--task", "rtee"], "unknown task 'rtee'"),
    (["task=rtee"], "task/rtee"),
    (["model=bert_hugee"], "model/bert_hugee"),
    (["regularizer=mixup"], "regularizer/mixup"),
    (["--launcher", "kubernetes"], "unknown launcher 'kubernetes'"),
])
def test_unknown_names_are_rejected_before_anything_runs(root, capsys, argv, problem):
    line = rejected(root, capsys, *argv)
    assert problem in line
    assert_nothing_written(root)


def test_an_unknown_sweep(root, capsys):
    line = rejected(root, capsys, sweep="tabel1")
    assert "unknown sweep 'tabel1'" in line and "table1" in line
    assert_nothing_written(root)


@pytest.mark.parametrize(("override", "key"), [
    ("regularizer.mixout.p=1.5", "regularizer.mixout.p=1.5"),
    ("regularizer.mixout.p=-0.1", "regularizer.mixout.p=-0.1"),
    ("regularizer.dropout.p=1.01", "regularizer.dropout.p=1.01"),
    ("regularizer.mixout.head.p=2", "regularizer.mixout.head.p=2"),
])
def test_a_probability_outside_0_1(root, capsys, override, key):
    line = rejected(root, capsys, override)
    assert key in line and "[0, 1]" in line
    assert_nothing_written(root)


def test_a_probability_outside_0_1_in_one_cell_stops_the_whole_sweep_before_it_starts(root, capsys):
    write_study(root, "onebad", {"good": ["regularizer=dropout"], "bad": ["regularizer=mixout",
                                                                           "regularizer.mixout.p=7"]}, seeds=1)
    assert "regularizer.mixout.p=7" in rejected(root, capsys, sweep="onebad")
    assert_nothing_written(root)


def test_a_negative_weight_decay(root, capsys):
    line = rejected(root, capsys, "regularizer=wdecay", "regularizer.wdecay.lam=-0.01")
    assert "regularizer.wdecay.lam=-0.01" in line and ">= 0" in line
    assert_nothing_written(root)


@pytest.mark.parametrize("seeds", ["0", "-3"])
def test_seeds_not_positive(root, capsys, seeds):
    assert f"SEEDS must be a positive number of restarts, got {seeds}" in rejected(root, capsys, "--seeds", seeds)
    assert_nothing_written(root)


def test_an_unknown_key_in_args(root, capsys):
    line = rejected(root, capsys, "train.epochz=3")
    assert "unknown config key 'train.epochz'" in line and "plan --show-config" in line
    assert_nothing_written(root)


def test_an_unwritable_results_directory(root, capsys):
    (root / "afile").write_text("a file, not a folder")  # tests run as root: chmod would not stop a write
    code = main(sweep_argv(root / "afile" / "sub", SWEEP))
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "afile/sub" in line and "RESULTS=" in line
    assert (root / "afile").read_text() == "a file, not a folder"


def test_a_missing_data_directory(root, capsys):
    line = rejected(root, capsys, f"data.glue_dir={root / 'no_glue'}")
    assert "no_glue does not exist" in line and "data.glue_dir" in line
    assert_no_run_written(root)


def test_a_missing_data_file(root, capsys):
    glue = copy_glue(root / "glue")
    (glue / "RTE" / "dev.tsv").unlink()
    line = rejected(root, capsys, f"data.glue_dir={glue}")
    assert "missing" in line and "RTE/dev.tsv" in line
    assert_no_run_written(root)


def test_a_malformed_tsv_row(root, capsys):
    glue = copy_glue(root / "glue")
    train = glue / "RTE" / "train.tsv"
    n = len(train.read_text().splitlines())
    with train.open("a") as fh:
        fh.write("99\tonly one sentence, no label\n")
    line = rejected(root, capsys, f"data.glue_dir={glue}")
    assert f"train.tsv:{n + 1}" in line and "expected 4 tab-separated columns, found 2" in line
    assert_no_run_written(root)


def test_an_unknown_label(root, capsys):
    glue = copy_glue(root / "glue")
    with (glue / "RTE" / "dev.tsv").open("a") as fh:
        fh.write("99\tA cat sat.\tAn animal sat.\tmaybe\n")
    line = rejected(root, capsys, f"data.glue_dir={glue}")
    assert "'maybe'" in line and "dev.tsv" in line
    assert_no_run_written(root)


def test_an_empty_split(root, capsys):
    glue = copy_glue(root / "glue")
    dev = glue / "RTE" / "dev.tsv"
    dev.write_text(dev.read_text().splitlines()[0] + "\n")  # the header only
    line = rejected(root, capsys, f"data.glue_dir={glue}")
    assert "dev split" in line and "no rows" in line
    assert_no_run_written(root)


def test_cuda_requested_without_a_gpu(root, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = rejected(root, capsys, "device=cuda")
    assert "device=cuda" in line and "device=cpu" in line
    assert_no_run_written(root)


def test_a_corrupt_record_in_the_store_is_reported_and_the_run_redone(root, capsys):
    results = root / "results"
    assert main(sweep_argv(results, SWEEP)) == 0
    good = records(results, SWEEP)
    victim = next(iter(good))
    path = next(results.glob(f"{SWEEP}/*/{victim}/result.json"))
    path.write_text(path.read_text()[:200])  # a truncated file, as a foreign writer might leave
    capsys.readouterr()

    assert main(sweep_argv(results, SWEEP)) == 0
    out = capsys.readouterr().out
    assert f"mixsweep: warning: corrupt record {path}" in out and "the run will be redone" in out
    assert "1 done, 0 failed (will retry), 1 to do" in out
    redone = records(results, SWEEP)[victim]
    assert redone.status == "ok" and redone.train_loss == good[victim].train_loss


@pytest.mark.slow
def test_the_command_line_prints_one_line_and_the_traceback_only_with_debug(root, capsys, monkeypatch):
    argv = sweep_argv(root / "results", SWEEP, f"data.glue_dir={root / 'no_glue'}")
    code, _, err = run_cli(root, argv)  # the installed entry point, in its own process
    line = one_error_line(err)
    assert code == 2 and "no_glue does not exist" in line

    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "read_glue_split" in err, "the traceback reaches into the failed run"
    assert err.strip().splitlines()[-1] == line
    monkeypatch.setenv("MIXSWEEP_DEBUG", "1")
    assert main(argv) == 2
    assert "Traceback" in capsys.readouterr().err


def test_rerun_of_an_unknown_run_id(tmp_path, capsys):
    assert main(["rerun", "0123456789ab", "--results", str(tmp_path)]) == 2
    assert "no stored run '0123456789ab'" in one_error_line(capsys.readouterr().err)


def test_a_study_whose_name_reads_as_a_number(root, capsys):
    """``nan`` or ``2024`` must reach Hydra as the study's file name, not as a float or an int."""
    for name in ("nan", "2024"):
        write_study(root, name, seeds=1)
        assert main(sweep_argv(root / "results", name)) == 0, capsys.readouterr().err
        assert {r.sweep for r in records(root / "results", name).values()} == {name}
