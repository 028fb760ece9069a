"""The `replitrack` command: one subcommand per module in `tui.cli`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `run`, a
function `run(args) -> int`. Modules import their heavy dependencies inside `run`, so that
`replitrack --help` and the scriptable commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    importlib.import_module("tui.cli.track").add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tui.cli.{name}").register(commands)
    for each in (parser, *commands.choices.values()):
        use_usage_exit(each)  # a usage error exits 64 everywhere: 2 means "canceled" to scripts
    parser.set_defaults(_commands=commands.choices)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("replitrack")
    except PackageNotFoundError:
        return "(not installed)"


# Commands that never act on an account: they are not pointed at a running demo.
_OFFLINE = frozenset({None, "demo", "sim", "progress", "track"})


def use_running_demo(command: str | None) -> None:
    """Without a token of one's own, commands beside a running `replitrack demo` act on the
    demo's simulator, with its store and (public, demo-only) credentials, and say so."""
    from core import config

    if command in _OFFLINE or config.api_token() or os.environ.get("REPLICATE_BASE_URL"):
        return
    from tui.cli.demo_home import running_demo

    found = running_demo()
    if found is None:
        return
    home, info = found
    os.environ.update(REPLITRACK_HOME=str(home), REPLICATE_BASE_URL=str(info["base_url"]),
                      REPLICATE_API_TOKEN=str(info["token"]))
    print(f"note: no Replicate token of your own: acting on the running demo (PID {info.get('pid') or '?'}, "
          f"store {home})", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl+C anywhere, even while starting: quietly, 130
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said with the usage of the command it was given to, not the top level's
        sub = args._commands.get(args.command) if args.command else None
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    run = getattr(args, "run", None)
    if run is None:  # no subcommand: open the app (sign-in first when there is no token)
        run = importlib.import_module("tui.cli.track").run
    try:
        use_running_demo(args.command)  # it reads the token: an unusable one is said, not a traceback
        code = int(run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
        return code
    except ReplitrackError as error:
        print(f"replitrack: {error}", file=sys.stderr)
        return error.exit_code


def _closed_pipe() -> int:
    """The reader went away (`replitrack list | head`): stop quietly, as `cat` does. Python would
    still try to flush stdout at exit and print a traceback; point it at /dev/null instead."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left
