"""URLs on the screen and in files: the password and any secret query value masked.

``postgresql://user:pw@host/db?sslpassword=x`` -> ``postgresql://user:***@host/db?sslpassword=***``.
Every line that may hold a storage or tracking URL goes through :func:`mask` (``mixsweep hpo``'s
Optuna storage, ``mixsweep export mlflow``'s tracking URI and everything it sends to MLflow); the
real URL only reaches the library that connects.
"""

from __future__ import annotations

import re

# scheme://user:PASSWORD@  (the user name stays: it says which account is used)
_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
# ?password=...&token=...  (query keys whose value is a credential)
_QUERY = re.compile(r"([?&;](?:[A-Za-z_]*(?:password|passwd|pwd|secret|token|key|credential|auth)[A-Za-z_]*)=)"
                    r"([^&;#\s]+)", re.IGNORECASE)


def mask(text: str) -> str:
    """``text`` with every URL password and secret query value replaced by ``***``."""
    return _QUERY.sub(r"\1***", _PASSWORD.sub(r"\1***\3", text))
