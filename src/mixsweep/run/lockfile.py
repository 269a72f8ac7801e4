"""Constraints that recreate the environment a run record was made in.

A record stores the versions of the packages that decide its numbers (``env.versions``, see
:mod:`mixsweep.run.environment`). The committed ``constraints.txt`` pins every package of the tested
set. This merges the two: the record's versions win, the lock fills in the rest.

    python -m mixsweep.run.lockfile results/runs/<run_id>/result.json [constraints.txt] > env.txt
    make setup CONSTRAINTS=env.txt PYTHON=python3.11
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mixsweep.errors import UserError

NOT_PIP = ("python", "mixsweep")  # the interpreter and the project itself are no pip constraints
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def record_constraints(record: dict, base: str = "") -> str:
    """``base`` (a constraints file's text) with the record's package versions pinned over it.

    Local version tags (``+cpu``) are dropped: ``torch==2.13.0`` matches ``2.13.0+cpu``.
    """
    env = record.get("env") or {}
    versions = {_canon(k): (k, str(v).split("+")[0]) for k, v in (env.get("versions") or {}).items()
                if v and k not in NOT_PIP}
    git = env.get("git") or {}
    out = [f"# environment of run {record.get('run_id', '?')}: python {(env.get('versions') or {}).get('python')}, "
           f"git {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}"]
    for line in base.splitlines():
        m = _NAME.match(line)
        if m and _canon(m.group(1)) in versions:
            continue  # replaced by the record's version below
        out.append(line)
    out += [f"{name}=={version}" for name, version in versions.values()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m mixsweep.run.lockfile RESULT_JSON [CONSTRAINTS]", file=sys.stderr)
        return 2
    try:
        record = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        base = Path(args[1]).read_text(encoding="utf-8") if len(args) == 2 else ""
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {e}: give a run's result.json and, optionally, a constraints file") from e
    sys.stdout.write(record_constraints(record, base))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"mixsweep.run.lockfile: error: {e}", file=sys.stderr)
        sys.exit(2)
