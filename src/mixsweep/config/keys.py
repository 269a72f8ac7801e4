"""One setting's declaration: its kind, valid range, the meaning of ``null`` and its role in the run id
(:class:`Key`), with the one-line rule an error prints. Pure: no I/O, no torch.

The settings themselves are declared with their defaults in :mod:`mixsweep.config.settings`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixsweep.errors import UserError

INF = math.inf


class ConfigError(UserError, ValueError):
    """One or more run-config values out of their schema: one line per problem."""


@dataclass(frozen=True)
class Key:
    """One setting: ``kind`` int | number | bool | str | choice | device | numbers | strs | ints | block.

    Numbers lie in ``lo..hi`` (``open_lo``/``open_hi``: the bound itself is excluded). ``null`` says
    what a null value means; None = null is not allowed. ``size`` fixes a list's length.
    """

    kind: str
    lo: float = -INF
    hi: float = INF
    open_lo: bool = False
    open_hi: bool = False
    null: str | None = None
    choices: tuple[str, ...] = ()
    size: int | None = None
    meaning: str = ""
    # How the run id (mixsweep.store.runid) reads the key. in_run_id=False: it locates, labels or schedules a
    # run without changing its numbers. null_hashed_as: null is hashed as this older "off" value (written
    # before null became the one "off"), so stored runs keep their ids. omitted_when_off: a key added after
    # runs were stored, left out of the hash when false or null, so runs from before share the id.
    in_run_id: bool = True
    null_hashed_as: int | None = None
    omitted_when_off: bool = False

    def rule(self) -> str:
        """What a valid value is, as the error says it."""
        text = {
            "int": f"an integer{self._range()}",
            "number": f"a number{self._range()}",
            "bool": "true or false",
            "str": "a non-empty string",
            "choice": f"one of {', '.join(self.choices)}",
            "device": "auto, cpu, cuda or cuda:N",
            "numbers": f"a list of {self.size} numbers{self._range(each=True)}",
            "ints": f"a non-empty list of integers{self._range(each=True)}",
            "strs": "a list of strings",
            "block": "a mapping",
            "layers": "head, quarters, all, last, a layer number >= 1, or a list of them",
        }[self.kind]
        return f"must be {text}" + (f", or null for {self.null}" if self.null else "")

    def _range(self, each: bool = False) -> str:
        lo, hi = self.lo, self.hi
        pre = " each" if each else ""
        if lo == -INF and hi == INF:
            return ""
        if hi == INF:
            return f"{pre} {'>' if self.open_lo else '>='} {_num(lo)}"
        if lo == -INF:
            return f"{pre} {'<' if self.open_hi else '<='} {_num(hi)}"
        return (f"{pre} in {'(' if self.open_lo else '['}{_num(lo)}, {_num(hi)}"
                f"{')' if self.open_hi else ']'}")

    def accepts(self, v: Any) -> bool:
        if v is None:
            return self.null is not None
        if self.kind == "int":
            return is_int(v) and self._in_range(v)
        if self.kind == "number":
            return is_number(v) and self._in_range(v)
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "str":
            # a name or path YAML read as a number (a study called 2024 or nan, RESULTS=2024) is still text
            return (isinstance(v, str) and v != "") or (isinstance(v, (int, float)) and not isinstance(v, bool))
        if self.kind == "choice":
            return isinstance(v, str) and v in self.choices
        if self.kind == "device":
            return isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None
        if self.kind == "numbers":
            return (isinstance(v, (list, tuple)) and len(v) == self.size
                    and all(is_number(x) and self._in_range(x) for x in v))
        if self.kind == "ints":
            return isinstance(v, (list, tuple)) and len(v) > 0 and all(is_int(x) and self._in_range(x) for x in v)
        if self.kind == "strs":
            return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
        if self.kind == "block":
            return isinstance(v, Mapping)
        if self.kind == "layers":
            items = list(v) if isinstance(v, (list, tuple)) else [v]
            return len(items) > 0 and all((is_int(x) and x >= 1) or x in ("head", "quarters", "all", "last")
                                          for x in items)
        raise AssertionError(self.kind)

    def _in_range(self, v: float) -> bool:
        above = v > self.lo if self.open_lo else v >= self.lo
        below = v < self.hi if self.open_hi else v <= self.hi
        return above and below


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(x: float) -> str:
    return f"{x:g}"


def integer(lo: float = -INF, null: str | None = None, meaning: str = "", **kw: Any) -> Key:
    return Key("int", lo=lo, null=null, meaning=meaning, **kw)


def number(lo: float = -INF, hi: float = INF, null: str | None = None, meaning: str = "", **kw: Any) -> Key:
    return Key("number", lo=lo, hi=hi, null=null, meaning=meaning, **kw)


def text(null: str | None = None, meaning: str = "") -> Key:
    return Key("str", null=null, meaning=meaning)


def choice(*choices: str, meaning: str = "", null: str | None = None) -> Key:
    return Key("choice", choices=choices, meaning=meaning, null=null)


BOOL = Key("bool")
SEED = integer(0, meaning="a seed")


def line(name: str, value: Any, spec: Key) -> str:
    """``key=value: must be ...`` (+ a hint when YAML read a number as text)."""
    hint = ""
    if isinstance(value, str) and spec.kind in ("int", "number") and _parses_as_number(value):
        hint = f" (it was read as text: write it as a number, e.g. {_as_yaml_float(value)})"
    return f"{name}={shown(value)}: {spec.rule()}{hint}"


def shown(value: Any) -> str:
    """A value as the user would type it in an override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_yaml_float(text: str) -> str:
    """PyYAML reads ``2e-5`` as text; ``2.0e-5`` is a float."""
    mantissa, e, exponent = text.lower().partition("e")
    if e and "." not in mantissa:
        return f"{mantissa}.0e{exponent}"
    return text
