"""Storage URLs on the screen and in files: the password and any secret query value masked.

``postgresql://user:pw@host/db?sslpassword=x`` -> ``postgresql://user:***@host/db?sslpassword=***``.
Every line ``mixsweep hpo`` prints or writes that may hold the storage URL goes through
:func:`mask`; the real URL only reaches Optuna. ``OPTUNA_STORAGE`` (the variable Optuna's own
CLI reads) keeps it off the command line and out of the shell history.
"""

from __future__ import annotations

import re

ENV = "OPTUNA_STORAGE"
# scheme://user:PASSWORD@  (the user name stays: it says which account is used)
_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
# ?password=...&token=...  (query keys whose value is a credential)
_QUERY = re.compile(r"([?&;](?:[A-Za-z_]*(?:password|passwd|pwd|secret|token|key|credential|auth)[A-Za-z_]*)=)"
                    r"([^&;#\s]+)", re.IGNORECASE)


def mask(text: str) -> str:
    """``text`` with every URL password and secret query value replaced by ``***``."""
    return _QUERY.sub(r"\1***", _PASSWORD.sub(r"\1***\3", text))
