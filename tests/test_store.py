"""The one run store (views, records, migration from the per-study layout), cell identity and labels,
and choosing cells by name. Expected labels are typed by hand from the rule in store/cell_id.py."""

from __future__ import annotations

import json

import pytest

from helpers import unpadded
from mixsweep.analysis.load import load_results
from mixsweep.errors import UserError
from mixsweep.records import RunRecord, best_point
from mixsweep.run.recipe import recipe_line
from mixsweep.store import runs as store
from mixsweep.store.cell_id import cell_id, flatten, table_labels
from mixsweep.sweeping.expand import select_cells

MIX = {"mixout": {"p": 0.9}}


def cfg(task="rte", reg=None, seed=0, **blocks):
    base = {"task": {"name": task}, "regularizer": reg or MIX, "seed": seed, "init_seed": seed,
            "optimizer": {"name": "bertadam", "lr": 2e-5}, "train": {"epochs": 3}}
    return base | blocks


def labels(*cells):
    """``(id, task, reg label, config)`` rows -> {id: table label}."""
    return table_labels({cid: (task, label, c) for cid, task, label, c in cells})


# ---- identity and labels --------------------------------------------------------------------

def test_identity_ignores_the_seeds_but_nothing_else():
    assert cell_id(cfg(seed=0)) == cell_id(cfg(seed=7))
    assert cell_id(cfg()) != cell_id(cfg(optimizer={"name": "bertadam", "lr": 1e-5}))
    assert cell_id(cfg()) != cell_id(cfg(train={"epochs": 2}))
    # keys that cannot change a result (where the results go) are not part of it
    assert cell_id(cfg(paths={"results": "a"})) == cell_id(cfg(paths={"results": "b"}))


def test_cells_that_differ_only_in_the_optimizer_name_it():
    adamw = cfg(optimizer={"name": "adamw", "lr": 2e-5, "weight_decay": 0.0})
    out = labels(("a", "rte", "mixout(w_pre,0.9)", adamw), ("b", "rte", "mixout(w_pre,0.9)", cfg()))
    # adamw's own extra key follows from its name, so it is not spelled out
    assert out == {"a": "mixout(w_pre,0.9) [optimizer=adamw]", "b": "mixout(w_pre,0.9) [optimizer=bertadam]"}


def test_a_knob_that_does_not_follow_from_the_name_is_shown_too():
    a = cfg(optimizer={"name": "adamw", "lr": 1e-5})
    b = cfg(optimizer={"name": "bertadam", "lr": 2e-5})
    c = cfg(optimizer={"name": "adamw", "lr": 2e-5})
    out = labels(("a", "rte", "none", a), ("b", "rte", "none", b), ("c", "rte", "none", c))
    assert out == {"a": "none [optimizer=adamw, optimizer.lr=1e-05]",
                   "b": "none [optimizer=bertadam, optimizer.lr=2e-05]",
                   "c": "none [optimizer=adamw, optimizer.lr=2e-05]"}


def test_learning_rate_and_epochs_are_appended_and_tasks_are_not():
    out = labels(("a", "rte", "mixout(w_pre,0.9)", cfg(optimizer={"name": "bertadam", "lr": 1e-5})),
                 ("b", "rte", "mixout(w_pre,0.9)", cfg()),
                 ("c", "mrpc", "mixout(w_pre,0.9)", cfg(task="mrpc")))
    assert out == {"a": "mixout(w_pre,0.9) [optimizer.lr=1e-05]", "b": "mixout(w_pre,0.9) [optimizer.lr=2e-05]",
                   "c": "mixout(w_pre,0.9) [optimizer.lr=2e-05]"}
    out = labels(("a", "rte", "none", cfg(train={"epochs": 1})), ("b", "rte", "none", cfg()))
    assert out == {"a": "none [train.epochs=1]", "b": "none [train.epochs=3]"}


def test_a_paper_grid_keeps_its_plain_labels():
    out = labels(("a", "rte", "mixout(w_pre,0.9)", cfg()), ("b", "mrpc", "mixout(w_pre,0.9)", cfg(task="mrpc")),
                 ("c", "rte", "dropout(0.1)", cfg(reg={"dropout": 0.1})))
    assert out == {"a": "mixout(w_pre,0.9)", "b": "mixout(w_pre,0.9)", "c": "dropout(0.1)"}


def test_regularizer_settings_the_label_omits_are_added_only_where_two_cells_would_merge():
    a = cfg(reg={"mixout": {"p": 0.9, "extra": 1}})
    b = cfg(reg={"mixout": {"p": 0.9, "extra": 2}})
    c = cfg(reg={"dropout": 0.1})
    out = labels(("a", "rte", "mixout(w_pre,0.9)", a), ("b", "rte", "mixout(w_pre,0.9)", b),
                 ("c", "rte", "dropout(0.1)", c))
    assert out == {"a": "mixout(w_pre,0.9) [regularizer.mixout.extra=1]",
                   "b": "mixout(w_pre,0.9) [regularizer.mixout.extra=2]", "c": "dropout(0.1)"}


def test_flatten_joins_paths_and_keeps_lists_and_empty_mappings_as_values():
    assert flatten({"optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "seed": 3}) == \
        {"optimizer.name": "adamw", "optimizer.betas": [0.9, 0.999], "seed": 3}
    assert flatten({"a": {"b": {"c": None}}}) == {"a.b.c": None}
    # a method switched on with its defaults is not the same config as no method
    assert flatten({"regularizer": {"wdecay": {}}}) == {"regularizer.wdecay": {}}
    assert flatten({"regularizer": {"wdecay": {}}}) != flatten({"regularizer": {}})
    assert flatten({}) == {}


def test_an_empty_block_still_tells_two_cells_apart():
    out = labels(("a", "rte", "none", cfg(data={"files": {}})), ("b", "rte", "none", cfg()))
    assert out == {"a": "none [data.files={}]", "b": "none [data.files=<absent>]"}


def test_the_recipe_line_prints_values_as_written_and_no_clipping_as_off():
    train = {"epochs": 3, "batch_size": 32, "warmup_ratio": 0.1}
    opt = {"name": "bertadam", "lr": 2e-5}
    assert recipe_line({"optimizer": opt, "train": {**train, "max_grad_norm": 1.0}}) == \
        "bertadam lr 2e-05, 3 epochs, batch 32, warmup 0.1, clipping 1.0"
    for off in (None, 0, 0.0):
        assert recipe_line({"optimizer": opt, "train": {**train, "max_grad_norm": off}}).endswith(", clipping off")
    digits = {"experiment": "digits", "task": {"finetune": {"lr": 0.01, "epochs": 10, "batch_size": 64,
                                                           "warmup_ratio": 0.0}}}
    assert recipe_line(digits) == "lr 0.01, 10 epochs, batch 64, warmup 0.0"


def test_the_recipe_line_names_the_method_that_replaces_the_global_clip():
    """CWGNC clips each tensor instead (its run_glue.py sets max_grad_norm = -1): the line must not say 1.0."""
    base = {"optimizer": {"name": "bertadam", "lr": 2e-5}, "train": {"epochs": 3, "batch_size": 32,
                                                                      "warmup_ratio": 0.1, "max_grad_norm": 1.0}}
    assert recipe_line({**base, "regularizer": {"cwgnc": {"max_norm": 0.5}}}).endswith(
        ", clipping cwgnc(0.5), not the global 1.0")
    assert recipe_line({**base, "regularizer": {"dps": {}}}).endswith(", clipping 1.0")
    off = {**base, "train": {**base["train"], "max_grad_norm": None}, "regularizer": {"cwgnc": {}}}
    assert recipe_line(off).endswith(", clipping cwgnc(1)")


def test_best_point_skips_nan_and_keeps_the_first_of_equal_maxima():
    curve = [{"step": s, "metrics": {"acc": v}} for s, v in [(1, 50.0), (2, float("nan")), (3, 70.0), (4, 70.0),
                                                             (5, None)]]
    assert best_point(curve, "acc")["step"] == 3
    assert best_point([{"step": 1, "metrics": {"acc": float("nan")}}], "acc") is None
    assert best_point([], "acc") is None


# ---- choosing cells -------------------------------------------------------------------------

def test_select_cells_keeps_the_study_order_and_rejects_unknown_names():
    cells = {"devlin": ["a"], "mixout_0.7": ["b"], "mixout_0.8": ["c"]}
    assert list(select_cells(cells, ["mixout_0.7", "devlin"])) == ["devlin", "mixout_0.7"]
    assert select_cells(cells, None) == cells
    with pytest.raises(UserError, match=r"unknown cell 'mixout_07': choose from devlin, mixout_0.7, mixout_0.8"):
        select_cells(cells, ["devlin", "mixout_07"])


# ---- the store: views and migration -----------------------------------------------------------

def rec(rid: str, sweep: str, cell: str, seed: int = 0, status: str = "ok") -> RunRecord:
    return RunRecord(run_id=rid, sweep=sweep, task="rte", cell=cell, label="mixout(w_pre,0.7)", seed=seed,
                     status=status, headline="accuracy", final={"accuracy": 60.0 + seed},
                     config={"task": {"name": "rte"}, "regularizer": {"mixout": {"p": 0.7}}, "seed": seed})


def test_a_view_is_a_union_and_names_the_run_by_the_studys_own_cell(tmp_path):
    store.write_record(store.run_dir(tmp_path, "aaaaaaaaaaaa"), rec("aaaaaaaaaaaa", "table1", "mixout_0.7"))
    store.add_to_view(tmp_path, "table1", [{"run_id": "aaaaaaaaaaaa", "task": "rte", "cell": "mixout_0.7"}])
    store.add_to_view(tmp_path, "fig4", [{"run_id": "aaaaaaaaaaaa", "task": "rte", "cell": "M0.7"}])
    store.add_to_view(tmp_path, "fig4", [{"run_id": "bbbbbbbbbbbb", "task": "rte", "cell": "M0.8"}])
    assert [e["run_id"] for e in store.read_view(tmp_path, "fig4")] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    (got,) = store.iter_records(tmp_path, "fig4")  # bbbb has no record yet: left out
    assert (got.run_id, got.sweep, got.cell) == ("aaaaaaaaaaaa", "fig4", "M0.7")
    assert [r.sweep for r in store.iter_records(tmp_path, "table1")] == ["table1"]
    assert len(list(store.iter_records(tmp_path))) == 1  # stored once


def write_legacy(results, sweep, rid, record: RunRecord | None):
    d = results / sweep / "rte" / rid
    d.mkdir(parents=True)
    if record is not None:
        (d / "result.json").write_text(json.dumps(record.to_dict()))
        (d / "curve.jsonl").write_text("")
    return d


def snapshot(root):
    return sorted((p.name, p.read_text()) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_migrate_moves_the_old_layout_into_the_store_and_loses_nothing(tmp_path):
    results = tmp_path / "results"
    a, b, c, d = "a" * 12, "b" * 12, "c" * 12, "d" * 12
    write_legacy(results, "table1", a, rec(a, "table1", "mixout_0.7"))
    write_legacy(results, "table1", b, None)  # a run that was in progress when the old sweep died
    write_legacy(results, "mix_prob", a, rec(a, "mix_prob", "mixout_0.7", status="ok"))  # same run, twice
    write_legacy(results, "mix_prob", c, rec(c, "mix_prob", "mixout_0.8", seed=1))
    write_legacy(results, "mix_prob", d, rec(d, "mix_prob", "mixout_0.9", seed=2, status="failed"))
    before = snapshot(results)

    with pytest.raises(UserError, match=r"old layout.*mixsweep store migrate --results"):
        load_results(results, "table1")
    counts = store.migrate(results)
    assert counts == {"moved": 4, "duplicates": 1, "studies": 2}

    assert sorted(p.name for p in (results / "runs").iterdir()) == [a, b, c, d]
    assert len(list(results.glob(f"*/.migrated/rte/{a}/result.json"))) == 1  # the second copy, set aside
    assert not store.legacy_runs(results)
    after = [x for x in snapshot(results) if x[0] != "view.json"]
    assert after == before, "every file of the old layout is still there"
    assert [e["run_id"] for e in store.read_view(results, "table1")] == [a, b]
    assert sorted(e["run_id"] for e in store.read_view(results, "mix_prob")) == [a, c, d]
    runs = load_results(results, "mix_prob").runs
    assert sorted(runs.cell) == ["mixout_0.7", "mixout_0.8", "mixout_0.9"] and set(runs.sweep) == {"mix_prob"}
    assert len(load_results(results, "table1").runs) == 1
    assert store.migrate(results) == {"moved": 0, "duplicates": 0, "studies": 0}  # idempotent


def test_migrate_keeps_the_final_copy_when_the_stored_one_had_failed(tmp_path):
    results = tmp_path / "results"
    rid = "e" * 12
    write_legacy(results, "s1", rid, rec(rid, "s1", "x", status="failed"))
    write_legacy(results, "s2", rid, rec(rid, "s2", "x", status="ok"))
    store.migrate(results)
    assert store.lookup(results, rid).status == "ok"
    (aside,) = results.glob("*/.migrated/rte/*/result.json")
    assert json.loads(aside.read_text())["status"] == "failed"


def test_store_migrate_command_and_a_legacy_study_is_refused_until_migrated(tmp_path, capsys):
    from mixsweep.cli import main

    results = tmp_path / "results"
    rid = "f" * 12
    write_legacy(results, "smoke", rid, rec(rid, "smoke", "mixout_0.7"))
    assert main(["plan", "--sweep", "smoke", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "old layout" in err and "mixsweep store migrate" in err
    assert main(["store", "migrate", "--results", str(results)]) == 0
    assert "migrated 1 runs of 1 studies" in capsys.readouterr().out
    assert store.lookup(results, rid).run_id == rid
    assert main(["table", "--sweep", "smoke", "--results", str(results)]) == 0
    assert "| Our | 60.0 (60.0) [0] |" in unpadded(capsys.readouterr().out)  # Our = mixout(w_pre,0.7)
