"""Row names: the study's cell names where cells differ in more than the regularizer, with a legend.

Expected names and legends are typed by hand from the rule stated in docs/studies.md ("Cells are keyed by their whole config")."""

import pandas as pd

from mixsweep.analysis.cells import aggregate
from mixsweep.analysis.tables import footnotes
from mixsweep.store.cell_id import row_names

DEVLIN = "dropout(0.1)+wdecay(0,0.01)"


def _cfg(task="rte", opt="bertadam", lr=2e-5, epochs=3, reg=None, model="bert_large"):
    return {"task": {"name": task}, "model": {"name": model}, "optimizer": {"name": opt, "lr": lr},
            "train": {"epochs": epochs}, "regularizer": reg or {"dropout": 0.1, "wdecay": {"lam": 0.01}}}


def test_paper_grid_keeps_labels():
    cells = {"a": ("rte", "dropout_0.1", "dropout(0.1)", _cfg(reg={"dropout": 0.1})),
             "b": ("rte", "mixout_0.9", "mixout(w_pre,0.9)", _cfg(reg={"mixout": {"p": 0.9}}))}
    assert row_names(cells) == {"a": "dropout(0.1)", "b": "mixout(w_pre,0.9)"}


def test_study_with_recipe_cells_uses_cell_names():
    cells = {"a": ("rte", "devlin", DEVLIN, _cfg()),
             "b": ("rte", "mosbach", DEVLIN, _cfg(opt="adamw", lr=1e-5, epochs=20)),
             "c": ("rte", "child_tuning_f", DEVLIN + "+child_tuning_f(0.3)",
                   _cfg(reg={"dropout": 0.1, "wdecay": {"lam": 0.01}, "child_tuning": {"p_f": 0.3}}))}
    assert row_names(cells) == {"a": "devlin", "b": "mosbach", "c": "child_tuning_f"}


def test_cells_crossed_with_optimizer_and_a_joined_args_run():
    cells = {"a": ("rte", "devlin_adamw", DEVLIN, _cfg(opt="adamw")),
             "b": ("rte", "devlin_bertadam", DEVLIN, _cfg()),
             "c": ("rte", "devlin_bertadam", DEVLIN, _cfg(model="tiny")),
             "d": ("mrpc", "devlin_bertadam", DEVLIN, _cfg(task="mrpc"))}
    assert row_names(cells) == {"a": "devlin_adamw", "b": "devlin_bertadam [model=bert_large]",
                                "c": "devlin_bertadam [model=tiny]", "d": "devlin_bertadam"}


def test_legend_lists_each_row_delta_in_row_order():
    runs = pd.DataFrame({
        "task": ["rte"] * 4, "cell": ["devlin", "devlin", "mosbach", "mosbach"],
        "label": ["devlin", "devlin", "mosbach", "mosbach"],
        "delta": [DEVLIN, DEVLIN, DEVLIN + " [optimizer=adamw, train.epochs=20]",
                  DEVLIN + " [optimizer=adamw, train.epochs=20]"],
        "status": ["done"] * 4, "final_score": [0.6, 0.7, 0.5, 0.8], "has_halves": [False] * 4,
        "majority_score": [0.5] * 4, "has_majority": [True] * 4, "headline": ["acc"] * 4,
    })
    agg = aggregate(runs, failures=())
    assert footnotes(agg, ()) == [f"devlin: {DEVLIN}", f"mosbach: {DEVLIN} [optimizer=adamw, train.epochs=20]"]


def test_no_legend_for_label_rows():
    runs = pd.DataFrame({"task": ["rte"] * 2, "cell": ["d", "d"], "label": [DEVLIN] * 2, "delta": [DEVLIN] * 2,
                         "status": ["done"] * 2, "final_score": [0.6, 0.7], "has_halves": [False] * 2})
    assert footnotes(aggregate(runs, failures=()), ()) == []
