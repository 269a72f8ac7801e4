"""The one reading of a Hydra override's key: ``key=value``, ``+key=value`` (add), ``++key=value`` (add or
override) and ``~key`` / ``~key=value`` (delete) all name ``key``."""

from __future__ import annotations


def override_key(override: str) -> str:
    """``"++regularizer.mixout.p=0.9"`` → ``"regularizer.mixout.p"``; ``"~regularizer.wdecay"`` →
    ``"regularizer.wdecay"``; ``"seed=range(0,3)"`` → ``"seed"``."""
    return override.split("=", 1)[0].lstrip("+~")
