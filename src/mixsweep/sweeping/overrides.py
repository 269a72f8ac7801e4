"""The one reading of a Hydra override's key: ``key=value``, ``+key=value`` (add), ``++key=value`` (add or
override) and ``~key`` / ``~key=value`` (delete) all name ``key``."""

from __future__ import annotations

from collections.abc import Iterable


def override_key(override: str) -> str:
    """``"++regularizer.mixout.p=0.9"`` → ``"regularizer.mixout.p"``; ``"~regularizer.wdecay"`` →
    ``"regularizer.wdecay"``; ``"seed=range(0,3)"`` → ``"seed"``."""
    return override.split("=", 1)[0].lstrip("+~")


def user_keys(arguments: Iterable[str]) -> set[str]:
    """The keys a launch's own arguments set: what the user typed (ARGS) and what ``mixsweep sweep`` sets
    for them (task, seeds, results, launcher, threads). A cell's override of one of these keys is dropped
    (:func:`mixsweep.sweeping.expand.expand_jobs`, ``keep_keys``), so the launch's value holds in every cell.
    The cell sweeper reads them from its multirun arguments, ``compose`` from the same list
    (:meth:`mixsweep.sweeping.request.SweepRequest.hydra_arguments`)."""
    return {override_key(o) for o in arguments}
