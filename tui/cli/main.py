"""The `replitrack` command: one subcommand per module in `tui.cli`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `run`, a
function `run(args) -> int`. Modules import their heavy dependencies inside `run`, so that
`replitrack --help` and the scriptable commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core.errors import ReplitrackError
from tui.cli._common import use_usage_exit

# The order here is the order of `replitrack --help`.
COMMAND_MODULES: list[str] = [
    "demo",
    "track",
    "list",
    "import_cmd",
    "status",
    "logs",
    "progress",
    "watch",
    "sync",
    "train",
    "cancel",
    "retry",
    "try_cmd",
    "compare",
    "events",
    "config",
    "listen",
    "sim",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replitrack",
        description="Follow your Replicate trainings live: progress, stage, ETA, logs, loss curve.",
    )
    # `replitrack` alone opens the app, so the app's options work without a subcommand too.
    importlib.import_module("tui.cli.track").add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tui.cli.{name}").register(commands)
    for each in (parser, *commands.choices.values()):
        use_usage_exit(each)  # a usage error exits 64 everywhere: 2 means "canceled" to scripts
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:  # no subcommand: open the app (sign-in first when there is no token)
        run = importlib.import_module("tui.cli.track").run
    try:
        return int(run(args) or 0)
    except ReplitrackError as error:
        print(f"replitrack: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
