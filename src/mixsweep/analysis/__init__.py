"""Analysis of sweep results: load runs into a tidy table, aggregate per cell, count failed runs
under named definitions, compare with the paper's published numbers, test, plot and report.

Public entry points are imported lazily so that importing the package stays cheap (the CLI
imports it for ``--help``); nothing here imports matplotlib until a figure is drawn.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "summary_table": "summary",
    "load_results": "load",
    "load_external_csv": "load",
    "export_runs": "load",
    "RunTable": "load",
    "aggregate": "cells",
    "compare_with_paper": "cells",
    "failure_mask": "failures",
    "DEFINITIONS": "failures",
    "paper_reference": "paper",
    "paper_runs": "paper",
    "paper_table": "paper",
    "expected_max": "stats",
    "compare": "stats",
    "draw_figures": "figures",
    "build_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mixsweep.analysis.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mixsweep.analysis' has no attribute {name!r}")
