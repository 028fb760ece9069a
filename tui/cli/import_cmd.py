"""`replitrack import`: bring every training of the account into the store (all pages), then
each finished one in full (log, error, final progress), most recent first."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from core.errors import ReplitrackError
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "import", run, help="import every training of the account",
                           description="Fetch every training of the account from Replicate (all pages, "
                                       "100 per page) into the local store, with a progress display; then "
                                       "the log, error and final progress of each finished training not "
                                       "fetched before (most recent first; interrupted, the next import "
                                       "goes on where it stopped).")
    parser.add_argument("--no-details", action="store_true",
                        help="only the list: skip fetching each finished training's log")
    c.add_json_flag(parser)


DETAILS_PER_SECOND = 20.0  # fetches of finished trainings' details: well within Replicate's limits


def run(args: argparse.Namespace) -> int:
    report = c.run_async(import_all(quiet=args.json, details=not args.no_details))
    if args.json:
        o.print_json(report)
    else:
        print(f"Imported {report['imported']} training(s) in {report['pages']} page(s); "
              f"{report['stored']} in the store"
              + (f"; fetched the log of {report['details']} finished one(s)." if report.get("details") else "."))
    return c.EXIT_OK


async def import_all(*, quiet: bool = False, details: bool = True) -> dict[str, Any]:
    """{"imported": trainings fetched, "pages": pages read, "stored": trainings now in the store,
    "details": finished trainings fetched in full}."""
    owner = c.store_owner()
    if owner is None:
        with c.open_store(write=True) as store:
            if not store.readonly:
                return await _import_here(store, quiet, details)
        owner = c.store_owner() or c.Owner(None, None)
    if owner.api:
        answer = await c.LocalApi(owner).object("POST", "/api/import")
        return {"imported": int(answer.get("imported") or 0), "pages": int(answer.get("pages") or 0),
                "stored": int(answer.get("stored") or 0)}
    raise ReplitrackError(
        f"{owner.describe()} owns the store and cannot import on request: import from it (the TUI "
        "imports your trainings on first run), or stop it and run `replitrack import` again"
    )


async def _import_here(store: Any, quiet: bool, details: bool) -> dict[str, Any]:
    from core.service import TrainingService  # httpx: loaded when used, for start-up time

    meter = _Meter(quiet)
    pages = 0

    def on_page(done: int, count: int) -> None:
        nonlocal pages
        pages = done
        meter.update(done, count)

    fetched = 0
    try:
        async with c.make_client() as client:
            service = TrainingService(store, client)
            count = await service.import_all(on_page)
            meter.close()
            if details:
                def on_each(done: int, total: int) -> None:
                    if not quiet and (done % 25 == 0 or done == total):
                        o.say(f"fetched the details of {done} of {total} finished training(s)")

                fetched = await service.fetch_details(per_second=DETAILS_PER_SECOND, on_each=on_each)
    finally:
        meter.close()
    return {"imported": count, "pages": pages, "stored": len(store), "details": fetched}


class _Meter:
    """Progress while paging: a rich spinner on a terminal, a line per page on stderr otherwise
    (the total is unknown until the last page: Replicate gives no count)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.progress: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console  # rich: loaded when used, for start-up time
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("Importing trainings"), BarColumn(bar_width=None),
                                     TextColumn("{task.fields[count]} so far, page {task.fields[pages]}"),
                                     TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.task = self.progress.add_task("", total=None, count=0, pages=0)
            self.progress.start()

    def update(self, pages: int, count: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, count=count, pages=pages)
        elif not self.quiet:
            o.say(f"imported page {pages}: {count} training(s) so far")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
