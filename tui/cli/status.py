"""`replitrack status ID`: one training, the same record the local API's status endpoint returns."""

from __future__ import annotations

import argparse
from typing import Any

from core import formats
from core.text import terminal_safe
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "status", run, help="show one training's status, progress and ETA",
                           description="One training (by id, or a destination owner/name for its latest "
                                       "training). When no replitrack instance keeps the store up to date, a "
                                       "running training is fetched from Replicate first.")
    parser.add_argument("id", metavar="ID", help="training id, or destination owner/name")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    view, _ = c.run_async(c.fresh_view(args.id))
    if args.json:
        o.print_json(view)
    else:
        print_status(view)
    return c.EXIT_OK


def print_status(view: dict[str, Any]) -> None:
    colour = o.use_colour()
    status = view["status"] or "-"
    step = (f"step {view['step']}/{view['total_steps']}" if view.get("step") is not None and view.get("total_steps")
            else None)
    progress = " · ".join(p for p in (formats.percent(view["overall_percent"]), step) if p)
    fields: list[tuple[str, str, str | None]] = [
        ("Training", view["id"] or "-", "bold"),
        ("Model", view["destination"] or "-", None),
        ("Trainer", view["trainer"] or "-", None),
        ("Status", status, o.STATUS_STYLE.get(status)),
        ("Stage", formats.stage_label(view["stage"]), None),
        ("Progress", progress, None),
    ]
    if not view["terminal"]:
        fields.append(("ETA", formats.duration(formats.remaining_seconds(view)), None))
    if view.get("loss") is not None:
        fields.append(("Loss", formats.number(view["loss"]), None))
    fields += [("Created", o.short_time(view["created_at"]), None),
               ("Completed", o.short_time(view["completed_at"]), None)]
    if view.get("output_version"):
        fields.append(("Output", view["output_version"], "green"))
    if view.get("error"):
        fields.append(("Error", str(view["error"]), "red"))
    fields.append(("URL", view["web_url"] or "-", "dim"))
    width = max(len(name) for name, _, _ in fields)
    for name, value, style in fields:
        value = terminal_safe(value, one_line=name != "Error")  # from Replicate: colour on or not
        print(f"{o.paint(name.ljust(width), 'bold', colour=colour)}  {o.paint(value, style, colour=colour)}")
