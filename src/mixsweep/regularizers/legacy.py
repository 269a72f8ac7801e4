"""Reading run records written before the method interface: their regularizer block had every
knob in one flat shape (``dropout: 0.1``, ``mixout: {p, ...}``, ``wdecay: {lam, target, form}``,
``head: {policy, p, wdecay}``). :func:`upgrade` rewrites such a block into the method shape, so the
analysis reads old and new records alike. New configs never need it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_legacy(reg: Mapping[str, Any]) -> bool:
    return "head" in reg or ("dropout" in reg and not isinstance(reg["dropout"], Mapping))


def upgrade(reg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The method-shape equivalent of a legacy block (a new-shape block is returned as a copy)."""
    reg = dict(reg or {})
    if not is_legacy(reg):
        return reg
    head = dict(reg.pop("head", None) or {})
    out: dict[str, Any] = {k: v for k, v in reg.items() if k not in ("dropout", "mixout", "wdecay")}
    # The old dropout setting covered every dropout, the classifier's input included.
    out["dropout"] = {"p": float(reg.get("dropout") or 0.0), "head": True}
    mix = dict(reg.get("mixout") or {})
    mix["head"] = {"policy": head.get("policy", "none"), "p": head.get("p")}
    out["mixout"] = mix
    wd = dict(reg.get("wdecay") or {})
    wd.setdefault("form", "l2")  # the only form legacy configs defaulted to
    wd["head"] = head.get("wdecay", "none")
    out["wdecay"] = wd
    return out
