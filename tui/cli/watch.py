"""`replitrack watch ID [ID ...]`: live progress bars (stage, ETA, loss) in a plain terminal,
one per training, until they all end; exits like `logs --follow` (any failure 1, else any
cancel 2, else 0)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core import formats
from core.errors import BadArgumentError
from core.models import utcnow
from core.text import terminal_safe
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(
        subparsers, "watch", run, help="live progress bars until the trainings end",
        description="Live progress (stage, ETA, loss) for one or more trainings in a plain terminal, "
                    "until they all end. Exit 0 all succeeded, 1 any failed, 2 any canceled. Piped, "
                    "it prints one line per change instead of bars.")
    parser.add_argument("ids", nargs="+", metavar="ID", help="training id, or destination owner/name")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="how often to poll Replicate when no replitrack instance is running (default 5)")
    c.add_json_flag(parser)
    parser.epilog = "--json prints one status object (as `status --json`) per line on each change."


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise BadArgumentError(f"--interval {args.interval}: give a positive number of seconds")
    return c.run_async(watch(args.ids, interval=args.interval, json_lines=args.json))


def report_started(args: argparse.Namespace, view: dict[str, Any], note: str) -> int:
    """What `train` and `retry` print for a new training (its id, or its status object with
    --json), then, with --watch, follow it to the end."""
    if args.json and args.watch:  # then everything on stdout is JSON lines
        print(json.dumps(view, ensure_ascii=False), flush=True)
    elif args.json:
        o.print_json(view)
    else:
        print(view["id"], flush=True)
    o.say(note)
    if args.watch:
        return c.run_async(watch([view["id"]], interval=args.interval, json_lines=args.json))
    return c.EXIT_OK


async def watch(refs: list[str], *, interval: float = 5.0, json_lines: bool = False) -> int:
    from tui.cli._follow import Follower  # tinydb: loaded when used, for start-up time

    follower = Follower(list(dict.fromkeys(refs)), interval=interval)
    if json_lines:
        display: _Display = _JsonLines()
    elif sys.stdout.isatty():
        display = _Bars()
    else:
        display = _Lines()
    try:
        final = await follower.run(display.update)
    finally:
        display.close()
    for view in final.values():
        if view.get("error"):
            o.say(f"{view['id']} {view['status']}: {view['error']}")
        elif view.get("output_version"):
            o.say(f"{view['id']} {view['status']}: {view['output_version']}")
    return c.combined_exit_code([view["status"] for view in final.values()])


def _name(view: dict[str, Any]) -> str:
    """`portraits·wjv4p4st`: the destination's name and enough of the id to tell trainings apart."""
    destination = view.get("destination")
    return f"{destination.split('/')[-1]}·{view['id'][:8]}" if destination else view["id"]


def _state(view: dict[str, Any]) -> str:
    """`training · step 310/1000` while running, the outcome once finished."""
    if view["terminal"]:
        return str(view["status"])
    stage = formats.stage_label(view.get("stage"))
    if view.get("step") is not None and view.get("total_steps"):
        stage += f" · {view['step']}/{view['total_steps']}"
    return stage


class _Display:
    def update(self, tick: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


_CHANGES = ("status", "stage", "step", "overall_percent", "loss", "output_version", "error")


class _JsonLines(_Display):
    """One status object per line whenever a training moves (a new ETA alone is not a move)."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Any, ...]] = {}

    def update(self, tick: Any) -> None:
        for tid, view in tick.views.items():
            key = tuple(view.get(name) for name in _CHANGES)
            if self.last.get(tid) != key:
                self.last[tid] = key
                sys.stdout.write(json.dumps(view, ensure_ascii=False) + "\n")
        sys.stdout.flush()


class _Lines(_Display):
    """Piped output: one aligned line when a training's status, stage or tens of percent change."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Any, ...]] = {}

    def update(self, tick: Any) -> None:
        for tid, view in tick.views.items():
            percent = view.get("overall_percent") or 0
            key = (view["status"], view.get("stage"), int(percent // 10))
            if self.last.get(tid) == key:
                continue
            self.last[tid] = key
            parts = [utcnow().astimezone().strftime("%H:%M:%S"), view["id"], view.get("destination") or "-",
                     view["status"], formats.percent(view.get("overall_percent"))]
            if not view["terminal"]:
                parts += [_state(view), f"ETA {formats.duration(formats.remaining_seconds(view))}"]
            if view.get("loss") is not None:
                parts.append(f"loss {formats.number(view['loss'])}")
            print(terminal_safe("  ".join(parts), one_line=True), flush=True)


class _Bars(_Display):
    """A terminal: rich progress bars redrawn in place (not full screen), one per training."""

    def __init__(self) -> None:
        from rich.console import Console  # rich: loaded when used, for start-up time
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.fields[name]}", markup=True),
            BarColumn(bar_width=32),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[state]}", style="cyan"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[loss]}", style="dim"),
            console=self.console, auto_refresh=True, refresh_per_second=4, transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, tick: Any) -> None:
        from rich.markup import escape  # rich: loaded when used, for start-up time

        for tid, view in tick.views.items():
            fields: dict[str, Any] = {
                # names come from Replicate: never let them be read as markup
                "name": escape(terminal_safe(_name(view), one_line=True)),
                "state": escape(terminal_safe(_state(view), one_line=True)),
                "eta": "" if view["terminal"] else f"ETA {formats.duration(formats.remaining_seconds(view))}",
                "loss": f"loss {formats.number(view['loss'])}" if view.get("loss") is not None else "",
            }
            completed = float(view.get("overall_percent") or 0)
            if tid not in self.tasks:
                self.tasks[tid] = self.progress.add_task("", total=100, **fields)
            self.progress.update(self.tasks[tid], completed=completed, **fields)

    def close(self) -> None:
        self.progress.stop()
