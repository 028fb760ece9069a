"""`replitrack demo`: the full app against a simulated Replicate; nothing to configure, no network."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

from core import config
from core.errors import ReplitrackError
from tui.cli._common import speed_factor

DEMO_MARKER = ".replitrack-demo"  # in a demo's home: it may be cleared when the next demo starts
DEMO_INFO = "demo.json"  # the running demo's simulator address and (public, demo-only) token


def demo_home() -> Path:
    """The demo's own folder: REPLITRACK_DEMO_HOME, else `demo` in the user's cache directory.
    Never the store (REPLITRACK_HOME): a demo must not write into a real account's data."""
    if explicit := os.environ.get("REPLITRACK_DEMO_HOME"):
        return Path(explicit).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("replitrack", appauthor=False) / "demo"


def prepare_demo_home(home: Path) -> Path:
    """Make `home` a fresh, empty demo home: a demo started again starts from nothing (the
    simulator's ids repeat, so an old store would only hold stale copies). Only a folder that is
    empty or was a demo's own is cleared; a running demo's is refused."""
    from core.store import read_owner

    home = home.expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise ReplitrackError(f"demo home {home} is a file: give a folder (or none)")
    owner = read_owner(home) if home.exists() else None
    if owner is not None:
        raise ReplitrackError(f"a demo already runs in {home} (PID {owner.get('pid') or '?'}): use that one, "
                              "or start this one elsewhere with `replitrack demo --home DIR`")
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            raise ReplitrackError(f"{home} is not empty and is not a demo's folder: the demo clears its "
                                  "folder when it starts, so give it an empty or new one (--home DIR)")
        for entry in home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / DEMO_MARKER).write_text("replitrack demo: this folder is cleared when a demo starts\n")
    except OSError as error:
        raise ReplitrackError(f"cannot use {home} for the demo: {error.strerror or error}") from None
    return home


def running_demo() -> tuple[Path, dict[str, Any]] | None:
    """(home, {"pid", "base_url", "token"}) of a demo running now, looked for in REPLITRACK_HOME
    (a `demo --home` there) and in the demo folder."""
    import json

    from core.store import read_owner

    for home in (config.home(), demo_home()):
        owner = read_owner(home)
        if owner is None or not (home / DEMO_MARKER).exists():
            continue
        try:
            info = json.loads((home / DEMO_INFO).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("base_url") and info.get("token"):
            return home, {**info, "pid": owner.get("pid")}
    return None


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
