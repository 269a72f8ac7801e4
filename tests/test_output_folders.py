"""Where the analysis writes (issue 36 §1, §6, §12): ``report --out`` and ``plots --out`` go through the
store's location check, a full disk is one line that leaves nothing behind (report, plots and hpo), and
an output folder that cannot be made says why, naming the folder and never an internal temp file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import GLUE
from helpers import run_cli
from mixsweep.analysis.synthetic import demo_store
from test_hostile_input import one_error_line, tree

# A full disk, simulated for the files opened for writing under FULL_DISK_DIR: the first
# FULL_DISK_AFTER bytes are written, the next write fails with ENOSPC, as a real disk that fills
# up mid-file does. After 5000 bytes matplotlib's PDF writer turns it into
# "AttributeError: 'Stream' object has no attribute 'pos'"; after 2000 into a zlib error.
FULL_DISK = """
import builtins, errno, io, os
_full = os.path.realpath(os.environ["FULL_DISK_DIR"])
_after = int(os.environ["FULL_DISK_AFTER"])
_open, _fdopen = builtins.open, os.fdopen
class _Full:
    def __init__(self, fh):
        self._fh, self._n = fh, 0
    def write(self, data):
        self._n += len(data)
        if self._n > _after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._fh.write(data)
    def __getattr__(self, name):
        return getattr(self._fh, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self._fh.close()
def _full_disk(path):
    return os.path.realpath(path).startswith(_full)
def _writing(mode):
    return any(c in mode for c in "wax+")
def open_(file, mode="r", *a, **k):
    fh = _open(file, mode, *a, **k)
    if isinstance(file, (str, bytes, os.PathLike)) and _writing(mode) and _full_disk(os.fsdecode(file)):
        return _Full(fh)
    return fh
def fdopen(fd, mode="r", *a, **k):
    fh = _fdopen(fd, mode, *a, **k)
    if _writing(mode) and _full_disk(os.readlink(f"/proc/self/fd/{fd}")):
        return _Full(fh)
    return fh
builtins.open, io.open, os.fdopen = open_, open_, fdopen
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("out") / "results"
    demo_store(results, sweep="demo", seeds=2, digits=False)
    return results


def report_argv(results: Path, *extra: str) -> list[str]:
    return ["report", "--sweep", "demo", "--results", str(results), *extra]


def plots_argv(results: Path, *extra: str) -> list[str]:
    return ["plots", "--sweep", "demo", "--results", str(results), *extra]


# ---- §1: --out goes through the location check that RESULTS= goes through -----------------------

# Not /etc or /: were the check missing (as on the main branch before it), the command would write
# there (the tests run as root). A fresh folder under /usr is removed again if it appears; /proc
# takes no folder at all.
SYSTEM_OUT = ["/usr/share/mixsweep-test-out-36", "/proc/mixsweep-test-out"]


@pytest.mark.parametrize("command", [report_argv, plots_argv], ids=["report", "plots"])
@pytest.mark.parametrize("out", SYSTEM_OUT)
def test_out_in_a_system_folder_is_refused_like_results(tmp_path, store, command, out):
    assert not Path(out).exists()
    try:
        code, stdout, err = run_cli(tmp_path, command(store, "--out", out))
        line = one_error_line(code, err)
        assert "system directory" in line and f"'{out}'" in line and "--out DIR" in line, line
        assert "free disk space" not in line
        assert not Path(out).exists()
    finally:
        if out.startswith("/usr/") and Path(out).exists():
            shutil.rmtree(out)


def test_the_default_figures_folder_in_a_system_folder_is_refused(tmp_path):
    """The check runs on every output folder: plots of a CSV under /usr would write figures/ beside it."""
    folder = Path("/usr/share/mixsweep-test-36")
    assert not folder.exists()
    try:
        folder.mkdir()
        (folder / "runs.csv").write_text("task,config,seed,score\nrte,a,0,60.0\nrte,a,1,61.0\n")
        code, _, err = run_cli(tmp_path, ["plots", "--from-csv", str(folder / "runs.csv")])
        line = one_error_line(code, err)
        assert "system directory" in line and "--out DIR" in line
        assert [p.name for p in folder.iterdir()] == ["runs.csv"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---- §12: the folder's own problem, not a temp file's, and not "free disk space" ------------------

def test_an_out_folder_below_a_file_says_so(tmp_path, store):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(tmp_path, report_argv(store, "--no-figures", "--out", str(tmp_path / "afile" / "sub")))
    line = one_error_line(code, err)
    assert f"{tmp_path / 'afile'} is a file, not a folder" in line and "--out DIR" in line
    assert "free disk space" not in line


# A read-only file system as open(2) reports it: the error's file name is the file being created (here
# the write check's temp file), not the folder.
READ_ONLY_OPEN = """
import errno, os
_ro, _open = os.environ["READ_ONLY_DIR"], os.open
def open_(path, flags, *a, **k):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and os.path.abspath(str(path)).startswith(_ro):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    return _open(path, flags, *a, **k)
os.open = open_
"""


def test_a_read_only_out_names_the_folder_not_a_temp_file(tmp_path, store):
    out = tmp_path / "ro"
    out.mkdir()
    code, _, err = run_cli(tmp_path, report_argv(store, "--no-figures", "--out", str(out)), prelude=READ_ONLY_OPEN,
                           READ_ONLY_DIR=str(out))
    line = one_error_line(code, err)
    assert f"the folder {out} is read-only" in line and "--out DIR" in line
    assert ".tmp" not in line and "write-check" not in line
    assert list(out.iterdir()) == []


# ---- §6: a full disk ------------------------------------------------------------------------------

@pytest.mark.parametrize("after", [0, 2000, 5000])
def test_a_report_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, store, after):
    disk = tmp_path / "disk"
    (disk / "kept").mkdir(parents=True)
    (disk / "kept" / "notes.txt").write_text("mine")
    before = tree(disk)
    for out in (disk / "new" / "report", disk / "kept"):  # a folder to create, and one that has files
        code, _, err = run_cli(tmp_path, report_argv(store, "--out", str(out)), prelude=FULL_DISK,
                               FULL_DISK_DIR=str(disk), FULL_DISK_AFTER=str(after))
        line = one_error_line(code, err)
        assert line.startswith("mixsweep: error: the disk is full (No space left on device)"), line
        assert str(out) in line and "free disk space" in line
        assert tree(disk) == before, "the failed report left files or folders behind"


def test_plots_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, store):
    disk = tmp_path / "disk"
    disk.mkdir()
    code, _, err = run_cli(tmp_path, plots_argv(store, "--out", str(disk / "figures")), prelude=FULL_DISK,
                           FULL_DISK_DIR=str(disk), FULL_DISK_AFTER="5000")
    line = one_error_line(code, err)
    assert "the disk is full" in line
    assert list(disk.iterdir()) == []


SPACE = """\
base: [regularizer=mixout]
params:
  regularizer.mixout.p: {type: float, low: 0.1, high: 0.9}
"""


def test_hpo_on_a_full_disk_is_one_line_and_leaves_no_empty_journal(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    results = tmp_path / "results"
    argv = ["hpo", "--task", "rte", "--space", str(tmp_path / "space.yaml"), "--results", str(results),
            "--trials", "1", "--study", "t", "model=tiny", "data.source=glue_dir", f"data.glue_dir={GLUE}"]
    code, _, err = run_cli(tmp_path, argv, prelude=FULL_DISK, FULL_DISK_DIR=str(results), FULL_DISK_AFTER="0")
    line = one_error_line(code, err)
    assert "the disk is full" in line and "journal.log" in line and "--results DIR" in line
    assert not results.exists(), sorted(results.rglob("*"))


def test_an_hpo_journal_in_a_system_folder_is_refused(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    folder = Path("/usr/share/mixsweep-test-journal-36")  # removed again if a build without the check makes it
    assert not folder.exists()
    try:
        code, _, err = run_cli(tmp_path, ["hpo", "--task", "rte", "--space", str(tmp_path / "space.yaml"),
                                          "--results", str(tmp_path / "r"), "--storage", str(folder / "journal.log"),
                                          "--trials", "1", "--study", "t", "model=tiny", "data.source=glue_dir",
                                          f"data.glue_dir={GLUE}"], timeout=300)
        line = one_error_line(code, err)
        assert "journal folder" in line and "system directory" in line and "--storage PATH" in line, line
        assert not folder.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
