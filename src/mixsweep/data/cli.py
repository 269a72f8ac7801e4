"""``mixsweep data describe TASK [key=value ...]``: load a task's data and print a JSON summary.

Overrides are the fields of the ``data`` block (``mixsweep.config.settings.Data``), written as a sweep takes them
(``data.source=glue_dir data.glue_dir=PATH``) or without the ``data.`` prefix (``source=glue_dir
train_size=4 files.train=PATH``); values are parsed as YAML scalars.
"""

from __future__ import annotations

import argparse
import json

from mixsweep.config.settings import Data


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect task data")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    describe = data_sub.add_parser(
        "describe",
        help="print split sizes, label counts, majority baseline and source as JSON",
        description="Load TASK's train/dev data as a run would and print a JSON summary.",
    )
    describe.add_argument("task", help="task name, e.g. rte, mrpc, rt_polarity")
    describe.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="data config overrides as a sweep takes them (data.source=glue_dir data.glue_dir=PATH) "
             "or short (source=glue_dir glue_dir=PATH)",
    )
    describe.set_defaults(func=_describe)


def _describe(args: argparse.Namespace) -> int:
    from mixsweep.data.describe import describe_splits
    from mixsweep.data.hub_access import one_attempt
    from mixsweep.data.loading import load_splits
    from mixsweep.data.tasks import get_task

    task = get_task(args.task)
    data_cfg = data_config(args.overrides)
    one_attempt()
    print(json.dumps(describe_splits(task, load_splits(task, data_cfg)), indent=2))
    return 0


def data_config(overrides: list[str]) -> Data:
    """The declared ``data`` defaults with ``key=value`` overrides; an unknown key or a bad value is a UserError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    from mixsweep.config import settings
    from mixsweep.errors import UserError

    defaults = OmegaConf.create(settings.defaults_node(settings.Data))
    OmegaConf.set_struct(defaults, True)
    malformed = [o for o in overrides if "=" not in o]
    if malformed:
        raise UserError(f"override {malformed[0]!r} is not KEY=VALUE: write e.g. data.source=glue_dir")
    # The sweep's form (data.key=value, copied from ARGS) and the short form (key=value) are one.
    overrides = [o.removeprefix("+").removeprefix("data.") for o in overrides]
    try:
        merged = OmegaConf.merge(defaults, OmegaConf.from_dotlist(overrides))
    except ConfigKeyError as e:
        raise UserError(
            f"unknown data setting '{e.full_key}': choose among {', '.join(map(str, defaults.keys()))} "
            "(written data.KEY=VALUE or KEY=VALUE)"
        ) from None
    # cache_dir interpolates the run config's paths.cache, which describe does not need.
    plain = {}
    for key in merged.keys():
        if key != "cache_dir":
            value = merged[key]
            plain[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return settings.parse(settings.Data, plain, "data")
