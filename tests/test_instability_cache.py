"""``table --measure X`` computes X alone, and a cell's representation matrices are cached per run set
(#32 item 15)."""

from __future__ import annotations

import argparse
import os
from collections import Counter

import pandas as pd
import pytest

from mixsweep.analysis.cli import cmd_table
from mixsweep.instability import cell as cell_module
from test_instability_consistency import _store


@pytest.fixture
def counted(monkeypatch):
    """Count every decomposition of a run (``prepare``) and every pair distance, by measure."""
    calls: Counter = Counter()
    wrapped = {}
    for name, fn in cell_module.PAIR_FUNCTIONS.items():
        def counting(a, b, fn=fn, name=name):
            calls[name] += 1
            return fn(a, b)
        wrapped[name] = counting
    monkeypatch.setattr(cell_module, "PAIR_FUNCTIONS", wrapped)
    prepare = cell_module.prepare

    def counting_prepare(x):
        calls["prepare"] += 1
        return prepare(x)

    monkeypatch.setattr(cell_module, "prepare", counting_prepare)
    return calls


def _table(results, measure, capsys) -> pd.DataFrame:
    args = argparse.Namespace(sweep="consistency", results=results, cells=None, from_csv=None, selection="final",
                              failure="default", format="csv", measure=measure, view="paper",
                              design=None)
    assert cmd_table(args) == 0
    return pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))


def test_table_measure_computes_that_measure_alone_then_reads_the_cache(tmp_path, counted, capsys):
    results = tmp_path / "results"
    _store(results)  # 4 cells × 4 runs, one layer: 6 pairs and 4 decompositions per cell
    first = _table(results, "cka", capsys)
    assert dict(counted) == {"prepare": 16, "cka": 24}  # no SVCCA, PWCCA or Procrustes
    counted.clear()
    again = _table(results, "cka", capsys)
    assert dict(counted) == {}  # every matrix from the cache: no decomposition at all
    pd.testing.assert_frame_equal(first, again)
    _table(results, "pwd", capsys)
    assert dict(counted) == {}  # a prediction measure touches no representation
    # a run whose representations are rewritten (a rerun) misses the cache for its cell only
    rep = next((results / "runs").glob("*/representations.npz")) if (results / "runs").is_dir() else None
    assert rep is not None
    os.utime(rep, ns=(rep.stat().st_atime_ns, rep.stat().st_mtime_ns + 1_000_000))
    _table(results, "cka", capsys)
    assert dict(counted) == {"prepare": 4, "cka": 6}


def test_a_store_that_cannot_be_written_is_measured_without_a_cache(tmp_path, counted, capsys, monkeypatch):
    import mixsweep.store.atomic

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    results = tmp_path / "results"
    _store(results)
    monkeypatch.setattr(mixsweep.store.atomic, "atomic_write_with", refuse)  # from now on, a read-only store
    rows = _table(results, "procrustes", capsys)
    assert len(rows) == 4 and counted["procrustes"] == 24
    counted.clear()
    _table(results, "procrustes", capsys)
    assert counted["procrustes"] == 24  # nothing was cached, nothing failed
