"""A study's analysis design, fixed before it runs: ``hydra.sweeper.design`` in ``sweeps/<study>.yaml``.

The sweeper ignores the block (it changes no run id and no plan); the report reads it to test each
compared cell against its baseline the way the design states (issue 31, item 5)::

    design:
      failure: majority            # the failure definition (analysis/failures.py)
      thresholds: [0, 1, 2, 4]     # points above the majority answer; the first is primary
      never_learned_band: 0.05     # δ of the never-learned diagnostic (analysis/failure_kinds.py)
      primary: {test: fisher, correction: holm}
      secondary: mannwhitney       # or none
      alpha: 0.05
      compare:                     # cell: its baseline cell, the one factor it changes, the side claimed
        devlin: {baseline: none, factor: "dropout 0.1 + decoupled decay 0.01", claim: fewer}
      contrast:                    # reported with counts, never with a verdict
        label: "Mosbach et al.'s optimizer × budget"
        cells: [devlin, mosbach_opt]
      early_discarding: {fractions: [0.1, 0.25, 0.5], n_start: [4, 8], keep: [1, 2], n_boot: 1000}

Everything is checked strictly: an unknown key, a wrong type or a value out of range is a one-line
:class:`UserError` naming the key and the fix. Only ``compare`` is required.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsweep.analysis.stats import CLAIMS
from mixsweep.errors import UserError

FAILURES = ("majority",)  # thresholds are points above the majority answer: only that rule has one
TESTS = ("fisher",)
CORRECTIONS = ("holm",)
SECONDARY = ("mannwhitney", "none")


@dataclass(frozen=True)
class Compared:
    """One compared cell: its baseline cell, the one factor it changes, the side of the claim."""

    cell: str
    baseline: str
    factor: str
    claim: str  # fewer | more (failures than the baseline)


@dataclass(frozen=True)
class Contrast:
    label: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class EarlyDiscarding:
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    n_start: tuple[int, ...] = (4, 8)
    keep: tuple[int, ...] = (1, 2)
    n_boot: int = 1000


@dataclass(frozen=True)
class Design:
    compare: tuple[Compared, ...]
    failure: str = "majority"
    thresholds: tuple[float, ...] = (0.0,)
    never_learned_band: float = 0.05
    test: str = "fisher"
    correction: str = "holm"
    secondary: str = "mannwhitney"
    alpha: float = 0.05
    contrast: Contrast | None = None
    early_discarding: EarlyDiscarding = field(default_factory=EarlyDiscarding)
    source: str = ""  # where it was read (for messages)

    @property
    def primary_threshold(self) -> float:
        return self.thresholds[0]

    def cells(self) -> list[str]:
        """Every cell the design names: compared cells, their baselines, the contrast's."""
        names = [c.cell for c in self.compare] + [c.baseline for c in self.compare]
        names += list(self.contrast.cells) if self.contrast else []
        return list(dict.fromkeys(names))


KEYS = ("failure", "thresholds", "never_learned_band", "primary", "secondary", "alpha", "compare", "contrast",
        "early_discarding")


def parse_design(block: Any, where: str = "design") -> Design:
    """The ``design:`` mapping as a :class:`Design`; anything malformed is a one-line UserError."""
    d = _mapping(block, where, KEYS)
    if "compare" not in d:
        raise UserError(f"{where}: no 'compare' key: name each compared cell as "
                        "'cell: {baseline: <cell>, factor: \"<the one factor>\", claim: fewer|more}'")
    failure = _choice(d.get("failure", "majority"), f"{where}.failure", FAILURES)
    primary = _mapping(d.get("primary", {}), f"{where}.primary", ("test", "correction"))
    secondary = d.get("secondary", "mannwhitney")
    return Design(
        compare=_compare(d["compare"], f"{where}.compare"),
        failure=failure,
        thresholds=_thresholds(d.get("thresholds", [0]), f"{where}.thresholds"),
        never_learned_band=_number(d.get("never_learned_band", 0.05), f"{where}.never_learned_band", low=0,
                                   open_low=True),
        test=_choice(primary.get("test", "fisher"), f"{where}.primary.test", TESTS),
        correction=_choice(primary.get("correction", "holm"), f"{where}.primary.correction", CORRECTIONS),
        secondary=_choice("none" if secondary is None else secondary, f"{where}.secondary", SECONDARY),
        alpha=_number(d.get("alpha", 0.05), f"{where}.alpha", low=0, high=1, open_low=True, open_high=True),
        contrast=_contrast(d["contrast"], f"{where}.contrast") if d.get("contrast") is not None else None,
        early_discarding=_early(d.get("early_discarding") or {}, f"{where}.early_discarding"),
        source=where,
    )


def _mapping(value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping of {', '.join(keys)}, not {_shown(value)}: write it as "
                        "'key: value' lines under it")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}': choose from {', '.join(keys)}")
    return dict(value)


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UserError(f"{where} is {_shown(value)}: choose {' or '.join(choices)}")
    return str(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where} must be a non-empty text, not {_shown(value)}: quote it, e.g. \"dropout 0.1\"")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any, where: str, low: float | None = None, high: float | None = None,
            open_low: bool = False, open_high: bool = False) -> float:
    ok = _is_number(value)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        lo = "" if low is None else ("> " if open_low else ">= ") + f"{low:g}"
        hi = "" if high is None else ("< " if open_high else "<= ") + f"{high:g}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise UserError(f"{where} is {_shown(value)}: give a number{' ' + bounds if bounds else ''}")
    return float(value)


def _numbers(value: Any, where: str, example: str, check) -> tuple:
    if not isinstance(value, list) or not value:
        raise UserError(f"{where} must be a non-empty list, not {_shown(value)}: e.g. {example}")
    items = tuple(check(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise UserError(f"{where} lists a value twice ({_shown(value)}): give each once, e.g. {example}")
    return items


def _thresholds(value: Any, where: str) -> tuple[float, ...]:
    return _numbers(value, where, "[0, 1, 2, 4]", lambda v, w: _number(v, w, low=0))


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{where} is {_shown(value)}: give a whole number >= 1")
    return value


def _compare(value: Any, where: str) -> tuple[Compared, ...]:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where} must map each compared cell to its baseline, factor and claim, not "
                        f"{_shown(value)}: e.g. 'devlin: {{baseline: none, factor: \"dropout 0.1\", claim: fewer}}'")
    out = []
    for cell, spec in value.items():
        w = f"{where}.{cell}"
        d = _mapping(spec, w, ("baseline", "factor", "claim"))
        missing = [k for k in ("baseline", "factor", "claim") if k not in d]
        if missing:
            raise UserError(f"{w}: no '{missing[0]}' key: give baseline (a cell), factor (the one thing it changes) "
                            "and claim (fewer or more failures)")
        baseline = _text(d["baseline"], f"{w}.baseline")
        if baseline == str(cell):
            raise UserError(f"{w}.baseline is the cell itself: name the cell it is compared with")
        out.append(Compared(str(cell), baseline, _text(d["factor"], f"{w}.factor"),
                            _choice(d["claim"], f"{w}.claim", CLAIMS)))
    return tuple(out)


def _contrast(value: Any, where: str) -> Contrast:
    d = _mapping(value, where, ("label", "cells"))
    cells = d.get("cells")
    if not isinstance(cells, list) or len(cells) < 2 or not all(isinstance(c, str) and c for c in cells):
        raise UserError(f"{where}.cells must list two or more cell names, not {_shown(cells)}: "
                        "e.g. [devlin, mosbach_opt]")
    return Contrast(_text(d.get("label"), f"{where}.label"), tuple(cells))


def _early(value: Any, where: str) -> EarlyDiscarding:
    d = _mapping(value, where, ("fractions", "n_start", "keep", "n_boot"))
    default = EarlyDiscarding()
    fractions = _numbers(d["fractions"], f"{where}.fractions", "[0.1, 0.25, 0.5]",
                         lambda v, w: _number(v, w, low=0, high=1, open_low=True, open_high=True)) \
        if "fractions" in d else default.fractions
    n_start = _numbers(d["n_start"], f"{where}.n_start", "[4, 8]", _positive_int) if "n_start" in d \
        else default.n_start
    keep = _numbers(d["keep"], f"{where}.keep", "[1, 2]", _positive_int) if "keep" in d else default.keep
    if max(keep) >= min(n_start):
        raise UserError(f"{where}: keep {max(keep)} is not fewer than n_start {min(n_start)}: keep fewer restarts "
                        "than start, e.g. n_start: [4, 8], keep: [1, 2]")
    n_boot = _positive_int(d["n_boot"], f"{where}.n_boot") if "n_boot" in d else default.n_boot
    return EarlyDiscarding(tuple(fractions), tuple(n_start), tuple(keep), n_boot)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_cells(design: Design, cells: list[str]) -> None:
    """Every cell the design names is among ``cells`` (the study's runs), else a one-line UserError."""
    for name in design.cells():
        if name not in cells:
            raise UserError(f"{design.source}: cell '{name}' has no runs: run it, or remove it from the design "
                            f"(cells with runs: {', '.join(sorted(cells)) or 'none'})")


def read_design(path: str | os.PathLike) -> Design | None:
    """The design block of a study file (``hydra.sweeper.design``), or of a file that holds only the block
    (``design:`` at its top); None if a study file has none. An unreadable file is a UserError."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read design file {path}: {e}: give a readable YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"design file {path} is not valid YAML{at}: fix its syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"design file {path} holds no mapping: write 'design:' with its keys under it")
    if "design" in data:
        return parse_design(data["design"], f"{path}: design")
    block = ((data.get("hydra") or {}).get("sweeper") or {}) if isinstance(data.get("hydra"), dict) else {}
    if isinstance(block, dict) and "design" in block:
        return parse_design(block["design"], f"{path}: hydra.sweeper.design")
    return None


def design_file(path: str | os.PathLike) -> Design:
    """``--design FILE``: the file must exist and hold a design."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"design file {path} does not exist: give a study file with hydra.sweeper.design, or a "
                        "YAML file with a top-level 'design:'")
    design = read_design(path)
    if design is None:
        raise UserError(f"{path} holds no design: add 'design:' (top level) or hydra.sweeper.design")
    return design


def study_design(study: str) -> Design | None:
    """The design of study ``study``, from its study file (the first ``sweeps/<study>.yaml`` of the search
    roots, as ``make sweep SWEEP=<study>`` finds it); None if it has no file or no design."""
    from mixsweep.config.paths import sweep_file

    path = sweep_file(study)
    return read_design(path) if path is not None else None
