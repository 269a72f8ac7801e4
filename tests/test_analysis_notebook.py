"""notebooks/paper_figures.ipynb runs end to end on a small results store."""

from __future__ import annotations

import json
import os
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from mixsweep.analysis.synthetic import demo_store
from mixsweep.config.paths import ROOT

NOTEBOOK = ROOT / "notebooks" / "paper_figures.ipynb"


def venv_kernel(tmp_path) -> KernelManager:
    """A kernel on this interpreter, whether or not a "python3" kernelspec is registered."""
    spec_dir = tmp_path / "kernels" / "mixsweep-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mixsweep test", "language": "python",
        "env": {"HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"},
    }))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="mixsweep-test", kernel_spec_manager=ksm)


@pytest.mark.slow
def test_notebook_regenerates_every_figure(tmp_path):
    demo_store(tmp_path / "results", sweep="nb", seeds=3)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell(
        f"RESULTS = {str(tmp_path / 'results')!r}\nSWEEP = 'nb'\nOUT = {str(tmp_path / 'figs')!r}"))
    client = NotebookClient(nb, km=venv_kernel(tmp_path), timeout=180,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env={**os.environ, "HF_HUB_OFFLINE": "1"})
    names = {p.stem for p in (tmp_path / "figs").glob("*.png")}
    assert names == {"fig3_swarms", "fig4_p_sweep", "appF_dropout_sweep", "fig2_digits", "expected_max"}
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any(o.get("output_type") == "error" for o in outputs)


@pytest.mark.slow
def test_notebook_finds_results_from_the_repository_root_whatever_the_kernel_cwd(tmp_path):
    # a repository root (MIXSWEEP_ROOT) with results/nb, and the kernel started in its notebooks/,
    # as Jupyter does: the default RESULTS = "results" must find the runs
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "conf").symlink_to(ROOT / "conf")
    demo_store(repo / "results", sweep="nb", seeds=2, digits=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell("SWEEP = 'nb'"))
    km = venv_kernel(tmp_path)
    km.kernel_spec.env["MIXSWEEP_ROOT"] = str(repo)
    client = NotebookClient(nb, km=km, timeout=180, resources={"metadata": {"path": str(repo / "notebooks")}})
    client.execute(env={**os.environ, "HF_HUB_OFFLINE": "1", "MIXSWEEP_ROOT": str(repo)})
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"results: {repo / 'results' / 'nb'}" in text
    assert (repo / "results" / "nb" / "figures" / "fig3_swarms.png").is_file()
    assert not (repo / "notebooks" / "results").exists()
