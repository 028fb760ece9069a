"""`replitrack` (or `replitrack track`): the app on your Replicate account.

With no token it opens the sign-in screen instead of failing."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from tui.cli.demo import add_hook_options


def add_options(parser: argparse.ArgumentParser) -> None:
    """The app's options; also on the bare `replitrack` command."""
    add_hook_options(parser)
    parser.add_argument("--no-tunnel", action="store_true",
                        help="do not open an ngrok tunnel: follow trainings by polling only")
    parser.add_argument("--public-url", metavar="URL",
                        help="a URL you already expose (cloudflared, reverse proxy) that reaches the listener")
    parser.add_argument("--webhook-secret", metavar="WHSEC",
                        help="the webhook signing secret (default: REPLICATE_WEBHOOK_SECRET, else fetched)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "track", help="open the app on your Replicate account (the default command)",
        description="Follow your trainings live. Without REPLICATE_API_TOKEN a sign-in screen asks for it.")
    add_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tui.cli.runtime import run_live  # the app: loaded when run, for start-up time

    return asyncio.run(run_live(no_tunnel=getattr(args, "no_tunnel", False),
                                public_url=getattr(args, "public_url", None),
                                webhook_secret=getattr(args, "webhook_secret", None),
                                on_complete=getattr(args, "on_complete", None),
                                on_fail=getattr(args, "on_fail", None)))
