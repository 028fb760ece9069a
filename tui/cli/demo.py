"""`replitrack demo`: the full app against a simulated Replicate; nothing to configure, no network."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from tui.cli._common import speed_factor

def add_hook_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--on-complete", metavar="CMD",
                        help="run CMD (through the shell) when a training succeeds; the training's JSON is on stdin")
    parser.add_argument("--on-fail", metavar="CMD",
                        help="run CMD when a training fails; the training's JSON is on stdin")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="try replitrack against a simulated Replicate (no account, no network)",
        description="Run the full app against an embedded, simulated Replicate with trainings in "
                    "every state; webhooks flow to the built-in listener. Nothing is configured and "
                    "nothing leaves this machine. The demo keeps its own store (never REPLITRACK_HOME, "
                    "your real one) in a demo folder that is cleared each time it starts; commands run "
                    "beside it without a token act on the demo.")
    parser.add_argument("--speed", type=speed_factor, default=None,
                        help="how much faster than real time the trainings run (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated trainings")
    parser.add_argument("--home", type=Path, metavar="DIR",
                        help="keep the demo's store in DIR (empty, or an earlier demo's: it is cleared) "
                             "instead of the demo folder")
    add_hook_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tui.cli.runtime import DEMO_SPEED, run_demo  # the app: loaded when run, for start-up time

    return asyncio.run(run_demo(speed=args.speed or DEMO_SPEED, seed=args.seed, home=args.home,
                                on_complete=args.on_complete, on_fail=args.on_fail))
