"""Runs in MLflow: a study exported after the fact (``mixsweep export mlflow``) and, opt-in, each run
logged live while it trains (``+tracking=mlflow``). The results store stays the source of truth.

- :mod:`~mixsweep.tracking.mapping`: what a record is in MLflow (params, tags, metrics, status); pure.
- :mod:`~mixsweep.tracking.server`: the tracking URI, the client, the study's experiment and its runs.
- :mod:`~mixsweep.tracking.live`: a run's curve logged while it trains; a tracker that is down costs a
  one-line warning, never the run.
- :mod:`~mixsweep.export.to_mlflow`: a whole study (a parent run per cell, a child run per record);
  :mod:`~mixsweep.export.cli`: its command.

mlflow is the optional extra ``tracking`` and is imported only inside these functions.
"""

from __future__ import annotations

from mixsweep.errors import UserError

INSTALL = "pip install 'mixsweep[tracking]' (make setup installs it)"


def require_mlflow() -> None:
    """Raise a one-line :class:`UserError` saying how to install mlflow when it is missing."""
    try:
        import mlflow  # noqa: F401
    except ImportError as e:
        raise UserError(f"mlflow is not installed ({e.name or e}): {INSTALL}") from e
