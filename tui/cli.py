"""The `replitrack` command: one subcommand per module in `tui.commands`.

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

# The order here is the order of `replitrack --help`.
COMMAND_MODULES: list[str] = [
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replitrack",
        description="Follow your Replicate trainings live: progress, stage, ETA, logs, loss curve.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tui.commands.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        return int(run(args) or 0)
    except ReplitrackError as error:
        print(f"replitrack: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
