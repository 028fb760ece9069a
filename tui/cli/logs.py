"""`replitrack logs ID [--follow] [--tail N]`: a training's log; with --follow, stream it until the
training ends and exit 0 (succeeded), 1 (failed) or 2 (canceled)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.errors import BadArgumentError
from core.views import logs_view
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(
        subparsers, "logs", run, help="print a training's log (--follow streams it until the end)",
        description="Print a training's log. With --follow, stream new lines until the training "
                    "ends; exit 0 succeeded, 1 failed, 2 canceled.")
    parser.add_argument("id", metavar="ID", help="training id, or destination owner/name")
    parser.add_argument("-f", "--follow", action="store_true", help="stream new lines until the training ends")
    parser.add_argument("-n", "--tail", type=int, metavar="N", help="only the last N lines")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="how often to poll Replicate when no replitrack instance is running (default 5)")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    if args.tail is not None and args.tail < 0:
        raise BadArgumentError(f"--tail {args.tail}: give a number of lines, 0 or more")
    if args.interval <= 0:
        raise BadArgumentError(f"--interval {args.interval}: give a positive number of seconds")
    return c.run_async(_run(args))


async def _run(args: argparse.Namespace) -> int:
    record, log = await c.fresh_view(args.id, with_log=True)
    view = logs_view(record, log, tail=args.tail)
    out = _Output(json=args.json)
    out.write(view)
    if not args.follow:
        out.finish()
        return c.EXIT_OK

    from tui.cli._follow import Follower, Tick  # tinydb: loaded when used, for start-up time

    follower = Follower([record["id"]], offsets={record["id"]: len(log)}, interval=args.interval, progress=False)

    def on_tick(tick: Tick) -> None:
        for tid, text in tick.texts.items():
            out.write(_chunk(tick.views.get(tid, record), tick.offsets[tid], text))

    final = (await follower.run(on_tick))[record["id"]]
    if args.json:  # the last JSON line says how it ended, even when the end brought no new text
        end = follower.offsets.get(record["id"], len(log))
        out.write(_chunk(final, end, ""))
    out.finish()
    _say_outcome(final)
    return c.exit_code_for(final["status"])


def _chunk(view: dict[str, Any], start: int, text: str) -> dict[str, Any]:
    """A logs_view-shaped object for a piece of the log that starts at character `start`."""
    end = start + len(text)
    return {"id": view.get("id"), "status": view.get("status"), "terminal": bool(view.get("terminal")),
            "offset": start, "next_offset": end, "total_chars": end, "logs": text}


class _Output:
    """Log text to stdout: raw when piped, stripped of control sequences on a terminal; or JSON
    (one logs_view object, or one per chunk with --follow: JSON lines)."""

    def __init__(self, *, json: bool) -> None:
        self.json = json
        self.terminal = o.use_colour(sys.stdout) or sys.stdout.isatty()
        self.last = "\n"

    def write(self, view: dict[str, Any]) -> None:
        if self.json:
            sys.stdout.write(json.dumps(view, ensure_ascii=False) + "\n")
        elif view["logs"]:
            text = o.safe_text(view["logs"], terminal=self.terminal)
            sys.stdout.write(text)
            self.last = text[-1:] or self.last
        sys.stdout.flush()

    def finish(self) -> None:
        if not self.json and self.last != "\n":
            sys.stdout.write("\n")  # a log that stops mid-line should not glue the shell prompt to it
            sys.stdout.flush()


def _say_outcome(view: dict[str, Any]) -> None:
    status = view["status"]
    message = f"training {view['id']} {status}"
    if view.get("output_version"):
        message += f": {view['output_version']}"
    if view.get("error"):
        message += f": {view['error']}"
    o.say(message)
