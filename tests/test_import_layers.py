"""The package's import graph has no cycle, and no module imports from a layer above its own.

The graph is read from the source (``ast``): every ``import`` statement counts, at module level,
inside a function (the lazy imports that keep ``--help`` fast) or under ``TYPE_CHECKING``. Imports
made by name at run time (``importlib.import_module``: the CLI's command table, the analysis
package's lazy exports, the regularizer registry's discovery) are not statements and are not read.

A new module must be given a layer here; an import that breaks a rule names both ends.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("mixsweep", "hydra_plugins")

# Lowest first. A module may import from its own layer or any layer below, never from above.
# A prefix names a module and everything under it; the longest prefix that matches decides.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("mixsweep", "mixsweep.errors", "mixsweep.config.paths", "mixsweep.store.atomic",
                    "mixsweep.run.progress", "mixsweep.data.hub_access", "mixsweep.run.environment",
                    "mixsweep.sweeping.slurm", "mixsweep.run.lockfile", "mixsweep.data.dev_split",
                    "mixsweep.secrets")),
    ("core", ("mixsweep.data.tasks", "mixsweep.regularizers", "mixsweep.optim", "mixsweep.models",
              "mixsweep.records", "mixsweep.data.metrics",
              "mixsweep.store",  # runs, run and cell ids, what a run keeps for the instability measures
              "mixsweep.config",  # the run-config schema, a run's recipe line
              "mixsweep.instability",  # pure instability measures
              "mixsweep.run.step")),  # one optimizer step: the methods' hooks around backward and update
    # what a record is in MLflow, and a run's live logging (mlflow imported inside functions)
    ("tracking", ("mixsweep.tracking",)),
    ("data", ("mixsweep.data",)),
    ("train", ("mixsweep.run", "mixsweep.digits")),  # the run: its setup (shared by digits and gpu-check) and loop
    ("sweeping", ("mixsweep.sweeping", "hydra_plugins")),
    ("analysis", ("mixsweep.analysis",)),
    ("apps", ("mixsweep.hpo", "mixsweep.gpucheck", "mixsweep.export")),  # export reads the analysis' tables
    ("cli", ("mixsweep.cli", "mixsweep.__main__")),
]


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__)."""
    out = {}
    for top in PACKAGES:
        for path in sorted((SRC / top).rglob("*.py")):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def imports(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The project's modules that ``name`` imports anywhere in its file."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..y import z
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            # `from mixsweep.store import runs` imports the module mixsweep.store.runs; `from x import f`, x itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in map(resolve, targets) if t and t != name)
    return found


def layer_of(name: str) -> int | None:
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, pkg, set(mods)) for name, (path, pkg) in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    return [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
            for a, targets in sorted(edges.items()) for b in sorted(targets) if layer_of(b) > layer_of(a)]


# --- the walker itself, on hand-made graphs and files ---------------------------------------


def test_cycles_finds_loops_and_only_loops():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b"], ["c", "d"]]


def test_imports_reads_function_level_relative_and_type_checking_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "from . import sibling\n"
        "from pkg.sub.mod import name\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.typed import T\n"
        "def f():\n"
        "    import pkg.lazy\n"
    )
    known = {"pkg", "pkg.sub", "pkg.sub.mod", "pkg.sibling", "pkg.typed", "pkg.lazy", "pkg.m"}
    assert imports("pkg.m", path, False, known) == {"pkg.sibling", "pkg.sub.mod", "pkg.typed", "pkg.lazy"}


def test_upward_names_an_import_from_a_higher_layer():
    assert upward({"mixsweep.sweeping.cli": {"mixsweep.analysis.summary"}}) == [
        "mixsweep.sweeping.cli (sweeping) imports mixsweep.analysis.summary (analysis)"]
    assert upward({"mixsweep.analysis.cli": {"mixsweep.sweeping.cli"}}) == []


# --- the package --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return graph()


def test_every_module_has_a_layer(edges):
    assert len(edges) > 50  # the walk found the package
    unplaced = [m for m in edges if layer_of(m) is None]
    assert not unplaced, f"give these modules a layer in LAYERS: {', '.join(unplaced)}"


def test_the_import_graph_has_no_cycle(edges):
    found = cycles(edges)
    assert not found, "modules that import each other in a loop: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_imports_from_a_higher_layer(edges):
    found = upward(edges)
    assert not found, "imports from a higher layer: " + "; ".join(found)
