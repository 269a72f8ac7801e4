"""The study header of ``plan`` and ``sweep`` counts the runs the plan runs: no cell where a method is inert
(issue 32 item 7: R3F on STS-B)."""

from __future__ import annotations

import pytest

from helpers import run_cli


@pytest.mark.parametrize(("task", "cells"), [
    ("stsb", 33),  # sweeps/stabilizers.yaml's 35 cells less r3f@bertadam and r3f@adamw_hf
    ("rte", 35),
])
def test_the_header_counts_the_cells_the_plan_runs(tmp_path, task, cells):
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "stabilizers", "--task", task, "--seeds", "2",
                                        "--results", str(tmp_path / "r")])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"study 'stabilizers': {2 * cells} runs ({cells} cells × 2 seeds) on {task}")
    assert f"{2 * cells} runs in {cells} cells" in out
