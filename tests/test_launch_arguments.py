"""One Hydra multirun per request (``SweepRequest.hydra_arguments``), and one reading of the keys it sets
(``overrides.user_keys``), shared by the cell sweeper and ``compose``. Expected values typed by hand."""

from __future__ import annotations

import os

from mixsweep.config.paths import hydra_searchpath_override
from mixsweep.sweeping.overrides import user_keys
from mixsweep.sweeping.request import SweepRequest


def test_the_multirun_arguments_of_a_narrowed_joblib_request(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    req = SweepRequest(sweep="smoke", task="rte", seeds=3, launcher="joblib", workers=2, results="out",
                       overrides=["optimizer.lr=1e-5", "regularizer.mixout.p=0.7"], cells=["devlin"])
    assert req.hydra_arguments() == [
        hydra_searchpath_override(), "+sweeps='smoke'", "paths.results=out", "task=rte", "seed=range(0,3)",
        "launcher=joblib", "hydra.launcher.n_jobs=2", "threads=2", "progress=true", "hydra.sweeper.select=['devlin']",
        "optimizer.lr=1e-5", "++regularizer.mixout.p=0.7"]
    # the user's threads wins over cores / workers
    assert "threads=2" not in SweepRequest(launcher="joblib", overrides=["threads=1"]).hydra_arguments()


def test_the_launchs_keys_strip_add_and_delete_prefixes():
    assert user_keys(["+sweeps='smoke'", "paths.results=out", "seed=range(0,3)", "++regularizer.mixout.p=0.7",
                      "~regularizer.wdecay"]) == {"sweeps", "paths.results", "seed", "regularizer.mixout.p",
                                                  "regularizer.wdecay"}
