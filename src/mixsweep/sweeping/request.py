"""What ``mixsweep sweep``/``plan`` was asked to run: one study, narrowed and overridden.

It sits below the modules that read it (compose, preflight, launch, tidy), so that none of them
imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
