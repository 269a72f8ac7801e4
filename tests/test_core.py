"""The pure core of the harness: atomic writes, records, cell labels, run ids, grid expansion."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mixsweep.records import RunRecord, cell_label
from mixsweep.store import runs as store
from mixsweep.store.atomic import atomic_write_json, atomic_write_text, remove_stale_tmp
from mixsweep.sweeping.expand import expand_jobs


def reg(dropout=0.0, p=0.0, lam=0.0, target="pretrained", policy="none", head_p=None, head_wd="none", form=None,
        drop_head=False, **mix):
    """A regularizer block in the contract's shape (every method present, inactive ones with 0)."""
    wd = {"lam": lam, "target": target, "head": head_wd} | ({"form": form} if form else {})
    return {"name": "x", "dropout": {"p": dropout, "head": drop_head},
            "mixout": {"p": p, "layers": "paper", "granularity": "neuron", "grad": "exact",
                       "head": {"policy": policy, "p": head_p}, **mix},
            "wdecay": wd}


@pytest.mark.parametrize("config, label", [
    (reg(), "none"),
    (reg(dropout=0.1), "dropout(0.1)"),
    (reg(dropout=0.1, lam=0.01, target="zero", head_wd="zero"), "dropout(0.1)+wdecay(0,0.01)"),
    (reg(lam=0.01), "wdecay(w_pre,0.01)"),
    (reg(p=0.7), "mixout(w_pre,0.7)"),
    (reg(p=0.7, lam=0.01), "mixout(w_pre,0.7)+wdecay(w_pre,0.01)"),
    (reg(p=0.7, policy="mixout_init"), "mixout(w_pre,0.7)|head:mixout(w0,0.7)"),
    (reg(p=0.7, policy="dropout", head_p=0.7), "mixout(w_pre,0.7)|head:dropout(0.7)"),
    (reg(p=0.9, layers="all_linear"), "mixout(w_pre,0.9)[layers=all_linear]"),
    (reg(p=0.9, grad="official", granularity="element"), "mixout(w_pre,0.9)[element,grad=official]"),
    (reg(p=0.0, layers="all_linear"), "none"),
    # Devlin's decay is decoupled (BertAdam) and keeps the paper's label; the other form is named.
    (reg(dropout=0.1, drop_head=True, lam=0.01, target="zero", head_wd="zero", form="decoupled"),
     "dropout(0.1)+wdecay(0,0.01)"),
    (reg(dropout=0.1, drop_head=True, lam=0.01, target="zero", head_wd="zero", form="l2"),
     "dropout(0.1)+wdecay(0,0.01)[l2]"),
    (reg(lam=0.01, form="l2"), "wdecay(w_pre,0.01)"),
    (reg(lam=0.01, form="decoupled"), "wdecay(w_pre,0.01)[decoupled]"),
    (reg(p=0.0, policy="dropout", head_p=0.7), "none|head:dropout(0.7)"),
    (reg(lam=0.01, head_wd="zero"), "wdecay(w_pre,0.01)|head:wdecay(0,0.01)"),
    ({"name": "none"}, "none"),
])
def test_cell_labels_follow_the_papers_notation(config, label):
    assert cell_label(config) == label


def test_atomic_write_replaces_whole_files_and_respects_the_umask(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_text(path, "old")

    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_stale_temp_files_are_swept(tmp_path):
    (tmp_path / ".result.json.abc.tmp").write_text("{")
    (tmp_path / "result.json").write_text("{}")
    assert remove_stale_tmp(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_corrupt_record_reads_as_absent_and_is_reported_once(tmp_path, capsys):
    (tmp_path / store.RESULT).write_text('{"run_id": "x", "status": "ok"')
    assert store.read_record(tmp_path) is None
    assert store.read_record(tmp_path) is None
    assert capsys.readouterr().out.count("corrupt record") == 1


def test_records_round_trip_and_reject_unknown_statuses():
    rec = RunRecord(run_id="r", sweep="s", task="rte", cell="c", label="none", seed=0, status="ok",
                    final={"accuracy": 70.0})
    assert RunRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    with pytest.raises(ValueError, match="unknown status"):
        RunRecord.from_dict({**rec.to_dict(), "status": "done"})
    with pytest.raises(ValueError, match="lacks"):
        RunRecord.from_dict({"run_id": "r"})


def test_grid_times_cells_with_user_keys_winning():
    grid = [["seed=0", "task=rte"], ["seed=1", "task=rte"]]
    cells = {"a": ["regularizer=mixout", "regularizer.mixout.p=0.7"], "b": ["regularizer=dropout"]}
    jobs = expand_jobs(grid, cells, keep_keys={"regularizer.mixout.p"})
    assert jobs == [
        ["seed=0", "task=rte", "regularizer=mixout", "cell=a"],
        ["seed=0", "task=rte", "regularizer=dropout", "cell=b"],
        ["seed=1", "task=rte", "regularizer=mixout", "cell=a"],
        ["seed=1", "task=rte", "regularizer=dropout", "cell=b"],
    ]
    assert expand_jobs(grid, {}) == grid
