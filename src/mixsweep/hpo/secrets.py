"""The Optuna storage URL: ``OPTUNA_STORAGE`` (the variable Optuna's own CLI reads) keeps it off
the command line and out of the shell history; every line ``mixsweep hpo`` prints or writes that
may hold it goes through :func:`mixsweep.secrets.mask`, and the real URL only reaches Optuna.
"""

from __future__ import annotations

from mixsweep.secrets import mask

ENV = "OPTUNA_STORAGE"

__all__ = ["ENV", "mask"]
