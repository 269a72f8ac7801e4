"""Where the project's configuration lives on disk."""

from __future__ import annotations

import os
from pathlib import Path

# src/mixsweep/config/paths.py -> repository root (editable install / source checkout).
ROOT = Path(os.environ.get("MIXSWEEP_ROOT", Path(__file__).resolve().parents[3]))
CONF_DIR = ROOT / "conf"


def search_roots() -> list[Path]:
    """Directories whose ``sweeps/`` folder holds study files: the repository, then every
    directory in ``MIXSWEEP_SEARCH_PATH`` (os.pathsep-separated), for studies kept elsewhere."""
    extra = [Path(p) for p in os.environ.get("MIXSWEEP_SEARCH_PATH", "").split(os.pathsep) if p]
    return [ROOT, *extra]


def sweep_names() -> list[str]:
    return sorted({p.stem for root in search_roots() for p in (root / "sweeps").glob("*.yaml")})


def sweep_file(name: str) -> Path | None:
    """The study file ``sweeps/<name>.yaml`` of the first search root that has one (as ``make sweep``
    finds it), or None."""
    return next((p for p in (r / "sweeps" / f"{name}.yaml" for r in search_roots()) if p.is_file()), None)


def hydra_searchpath_override() -> str:
    return "hydra.searchpath=[" + ",".join(f"file://{r.resolve()}" for r in search_roots()) + "]"
