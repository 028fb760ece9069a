"""`replitrack import`: bring every training of the account into the store (all pages)."""

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
                                       "100 per page) into the local store, with a progress display.")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    report = c.run_async(import_all(quiet=args.json))
    if args.json:
        o.print_json(report)
    else:
        print(f"Imported {report['imported']} training(s) in {report['pages']} page(s); "
              f"{report['stored']} in the store.")
    return c.EXIT_OK


async def import_all(*, quiet: bool = False) -> dict[str, Any]:
    """{"imported": trainings fetched, "pages": pages read, "stored": trainings now in the store}."""
    owner = c.store_owner()
    if owner is None:
        with c.open_store(write=True) as store:
            if not store.readonly:
                return await _import_here(store, quiet)
        owner = c.store_owner() or c.Owner(None, None)
    if owner.api:
        answer = await c.LocalApi(owner).object("POST", "/api/import")
        return {"imported": int(answer.get("imported") or 0), "pages": int(answer.get("pages") or 0),
                "stored": int(answer.get("stored") or 0)}
    raise ReplitrackError(
        f"{owner.describe()} owns the store and cannot import on request: import from it (the TUI "
        "imports your trainings on first run), or stop it and run `replitrack import` again"
    )


async def _import_here(store: Any, quiet: bool) -> dict[str, Any]:
    from core.service import TrainingService  # httpx: loaded when used, for start-up time

    meter = _Meter(quiet)
    pages = 0

    def on_page(done: int, count: int) -> None:
        nonlocal pages
        pages = done
        meter.update(done, count)

    try:
        async with c.make_client() as client:
            count = await TrainingService(store, client).import_all(on_page)
    finally:
        meter.close()
    return {"imported": count, "pages": pages, "stored": len(store)}


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
