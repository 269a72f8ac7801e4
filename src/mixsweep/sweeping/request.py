"""What ``mixsweep sweep``/``plan`` was asked to run: one study, narrowed and overridden.

It sits below the modules that read it (compose, preflight, launch, tidy), so that none of them
imports another for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mixsweep.config.paths import hydra_searchpath_override
from mixsweep.sweeping.expand import method_settings_added


@dataclass
class SweepRequest:
    sweep: str = "smoke"
    task: str | None = None
    seeds: int | None = None
    launcher: str | None = None
    results: str = "results"
    workers: int | None = None
    overrides: list[str] = field(default_factory=list)
    dry_run: bool = False
    cells: list[str] | None = None  # a subset of the study's cells, by name

    def __post_init__(self) -> None:
        self.overrides = method_settings_added(self.overrides)

    def hydra_arguments(self) -> list[str]:
        """The one Hydra multirun this request is: the study, its results folder, the narrowing (task,
        seeds, cells), the launcher and its workers (``threads`` = cores ÷ workers unless given), then the
        user's overrides, last so that they win. The cell sweeper takes these as its arguments, and
        ``compose`` reads the same list for the launch's own keys (:func:`~mixsweep.sweeping.overrides.user_keys`)."""
        # Quoted: Hydra would read a study named 2024 or nan as a number, not as the file's name.
        ov = [hydra_searchpath_override(), f"+sweeps='{self.sweep}'", f"paths.results={self.results}"]
        if self.task:
            ov.append(f"task={self.task}")
        if self.seeds:
            ov.append(f"seed=range(0,{self.seeds})")
        if self.launcher:
            ov.append(f"launcher={self.launcher}")
        if self.launcher == "joblib":
            n = self.workers or 2
            ov.append(f"hydra.launcher.n_jobs={n}")
            if not any(o.startswith("threads=") for o in self.overrides):
                ov.append(f"threads={max(1, (os.cpu_count() or 1) // n)}")
        ov.append("progress=true")  # a bar on a terminal, else a line every ~30 s (mixsweep.run.progress)
        if self.cells is not None:
            ov.append("hydra.sweeper.select=[" + ",".join(f"'{c}'" for c in self.cells) + "]")
        if self.dry_run:
            ov.append("hydra.sweeper.dry_run=true")
        return ov + list(self.overrides)
