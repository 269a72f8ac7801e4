"""The ``mixsweep`` command: one subcommand per capability.

Each capability module exposes ``register(subparsers)``, which adds its parsers and sets
``func=callable(args) -> int`` on each. Heavy imports (torch, transformers) stay inside those
callables so that ``mixsweep --help`` and argument errors are instant.

This module is the top of the import layers (see tests/test_import_layers.py): it alone may join
two capabilities, as it does by handing the analysis' summary table to the sweep command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator

from mixsweep.errors import Terminated, UserError

# Modules that contribute subcommands; a module that is absent is skipped, so a partial
# checkout still gives a working CLI for what exists.
COMMAND_MODULES = (
    "mixsweep.sweeping.cli",  # sweep, plan, rerun
    "mixsweep.data.cli",  # data describe
    "mixsweep.analysis.cli",  # report, table, plots
    "mixsweep.hpo.cli",  # hpo
    "mixsweep.export.cli",  # export mlflow
)


def _summary_table(results: str, sweep: str, cells: list[str] | None) -> str:
    from mixsweep.analysis.summary import summary_table

    return summary_table(results, sweep, cells)


# What a command gets from a capability above its own layer, by command module.
HANDED_IN = {"mixsweep.sweeping.cli": {"summarize": _summary_table}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixsweep",
        description="Reproducible finetuning sweeps for the Mixout paper and its ablations.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks on errors, and the hub's and transformers' warnings")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print mixsweep's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                continue
            raise
        module.register(sub, **HANDED_IN.get(name, {}))
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mixsweep")
    except PackageNotFoundError:
        return "unknown (not installed)"


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set environment variables (None: leave as is) for one command, then restore them, so that
    a caller running several commands in one process (the tests) sees no leftovers."""
    saved = {k: os.environ.get(k) for k, v in values.items() if v is not None}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread for one command (Python's default is to
    die at once, silently); the handler before it is restored after. A second SIGTERM while the first
    unwinds is ignored, so that the cleanup finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


RESUME = "finished runs are kept; relaunch the same command to resume"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("MIXSWEEP_DEBUG") == "1"
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from mixsweep.config import paths

    if not paths.CONF_DIR.is_dir():
        # A wheel install carries no conf/ or sweeps/: mixsweep runs from a checkout.
        print(f"mixsweep: error: no config directory at {paths.CONF_DIR}: install from a checkout "
              f"(`make setup`, i.e. pip install -e .) or set MIXSWEEP_ROOT=<checkout>", file=sys.stderr)
        return 2
    try:
        with _sigterm_raises(), _environment(MIXSWEEP_DEBUG="1" if debug else None):  # jobs read it
            return int(args.func(args) or 0)
    except UserError as e:
        if debug:
            traceback.print_exc()
        # One line per problem: preflight reports everything it found at once.
        for line in str(e).splitlines() or [""]:
            print(f"mixsweep: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mixsweep: interrupted (Ctrl-C): {RESUME}", file=sys.stderr)
        return 130
    except Terminated:
        if debug:
            traceback.print_exc()
        print(f"mixsweep: stopped by SIGTERM (a scheduler's time limit or cancellation, or kill): {RESUME}",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        # The reader went away (`mixsweep plan | head -1`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
