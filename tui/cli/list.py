"""`replitrack list`: the tracked trainings with status, progress, stage and ETA."""

from __future__ import annotations

import argparse
from typing import Any

from core import config, formats
from core.views import status_view
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "list", run, help="list the tracked trainings",
                           description="The trainings in the local store, newest first.")
    parser.add_argument("--active", action="store_true", help="only trainings that have not finished")
    parser.add_argument("--no-refresh", action="store_true",
                        help="show what is stored, without fetching the running trainings from Replicate first")
    c.add_json_flag(parser)
    parser.epilog = ("Beside a running replitrack instance, shows what it keeps up to date; otherwise the "
                     "unfinished trainings are fetched from Replicate first (unless --no-refresh).")


def run(args: argparse.Namespace) -> int:
    if not args.no_refresh and c.store_owner() is None and config.api_token():
        c.run_async(c.refresh_unfinished())
    with c.open_store(write=False) as store:
        records = sorted(store.trainings(), key=lambda r: r.get("created_at") or "", reverse=True)
    views = [status_view(record) for record in records]
    if args.active:
        views = [view for view in views if not view["terminal"]]
    if args.json:
        o.print_json(views)
        return c.EXIT_OK
    if not views:
        o.say("No active trainings." if args.active and records else
              "No trainings tracked yet: run `replitrack import` to fetch your account's trainings.")
        return c.EXIT_OK
    rows, styles = [], []
    for view in views:
        rows.append([
            view["id"] or "-", view["destination"] or "-", view["trainer"] or "-", view["status"] or "-",
            formats.percent(view["overall_percent"]), formats.stage_label(view["stage"]),
            formats.duration(formats.remaining_seconds(view)), o.short_time(view["created_at"]),
        ])
        styles.append([None, "bold", "dim", o.STATUS_STYLE.get(view["status"] or ""), None, None, None, "dim"])
    o.print_table(["ID", "MODEL", "TRAINER", "STATUS", "PROGRESS", "STAGE", "ETA", "CREATED"], rows, styles,
                  right=(4,))
    return c.EXIT_OK
