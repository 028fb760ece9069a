"""Sync: what differs between the local store and Replicate, and the keys to reconcile it.

The list holds the differences Replicate reports (finished remotely but not here, missed updates,
never imported), then the local trainings one can act on (failed/canceled: retry; running:
cancel). Sync one (enter/s) or all (a); retry (r) and cancel (x) ask first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.worker import Worker, WorkerState
from textual.widgets import DataTable, Static

from core.errors import ReplitrackError
from core.models import Status
from core.service import SyncItem
from tui.base import ReplitrackScreen
from tui.format import safe, status_text
from tui.screens.models import short
from tui.widgets.footer import KeyFooter
from tui.widgets.status_line import StatusLine


class SyncScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="sync.back"),
        Binding("s", "sync_one", "Sync", id="sync.one"),
        Binding("a", "sync_all", "Sync all", id="sync.all"),
        Binding("r", "retry", "Retry", id="sync.retry"),
        Binding("x", "cancel", "Cancel", id="sync.cancel"),
        Binding("g", "check", "Check again", id="sync.check"),
        Binding("i", "sign_in", "Sign in", id="sync.sign_in"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, SyncItem] = {}
        self.checking = False
        self.problem: str | None = None  # why the last check could not compare; None: it did

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="sync-caption")
        table: DataTable[Any] = DataTable(id="sync-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="sync-change")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in (("id", "Training", 26), ("model", "Model", 20), ("here", "Here", 13),
                                  ("there", "Replicate", 13), ("what", "What differs", 37)):
            table.add_column(label, key=key, width=width)
        self.app.trainings_changed.subscribe(self, lambda _: self.fill() if self.is_current else None)
        table.focus()
        self.action_check()

    def on_screen_resume(self) -> None:
        if self.is_mounted and self.query(DataTable):
            self.query_one(StatusLine).refresh()
            self.fill()

    def caption(self, text: str, style: str = "dim") -> None:
        self.query_one("#sync-caption", Static).update(Text(text, style=style))

    def signed_in(self) -> bool:
        app: Any = self.app
        return bool(app.service.client.token) and app.connection.signed_in

    def action_sign_in(self) -> None:
        def signed_in() -> None:
            self.refresh_bindings()
            self.action_check()

        self.app.sign_in(then=signed_in)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "sign_in":  # offered (and shown in the footer) only while signed out
            return not self.signed_in()
        return True

    def action_check(self) -> None:
        if not self.signed_in():
            # Nothing can be compared without a token: say so, never "all in sync".
            self.problem = "Not signed in: replitrack cannot compare with Replicate. Press i to sign in."
            self.fill()
            return
        if not self.checking:
            self.checking = True
            self.caption("⟳ comparing with Replicate…", "bold cyan")
            self.check()

    @work(exclusive=True, group="sync-check", exit_on_error=False)
    async def check(self) -> None:
        try:
            items = await self.app.service.differences()
        except ReplitrackError as error:
            self.app.report(error)
            self.problem = f"Could not compare with Replicate: {error}  ·  g: check again"
            items = None
        finally:
            self.checking = False
        if items is not None:
            self.problem = None
            self.items = {item.training_id: item for item in items}
        self.fill()

    def rows(self) -> list[tuple[str, str | None, str | None, str, str]]:
        """(id, model, local status, remote status, what) for each row, differences first."""
        rows = [(i.training_id, i.destination, i.local_status, i.remote_status, i.reason)
                for i in self.items.values()]
        records: dict[str, dict[str, Any]] = self.app.records
        for tid, view in records.items():
            if tid in self.items:
                continue
            status = Status.parse(view.get("status"))
            if status in (Status.FAILED, Status.CANCELED):
                rows.append((tid, view.get("destination"), str(status), str(status), "in sync · r retries it"))
            elif not status.terminal:
                rows.append((tid, view.get("destination"), str(status), str(status), "running · x cancels it"))
        return rows

    def fill(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_id()
        table.clear()
        rows = self.rows()
        for tid, model, here, there, what in rows:
            table.add_row(safe(tid), short(model, 20), status_text(here) if here else Text("not here", style="dim"),
                          status_text(there), safe(what), key=tid)
        if current is not None and current in {r[0] for r in rows}:
            table.move_cursor(row=table.get_row_index(current), animate=False)
        if self.problem is not None:
            self.caption(self.problem, "bold red")
        elif not self.checking:
            differing = len(self.items)
            self.caption(f"{differing} training{'s' if differing != 1 else ''} differ from Replicate"
                         + ("  ·  s: sync the selected one, a: sync all" if differing else "  ·  all in sync")
                         + "  ·  g: check again", "bold" if differing else "green")
        self.show_change()

    def current_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    @on(DataTable.RowHighlighted, "#sync-table")
    def show_change(self) -> None:
        tid = self.current_id()
        item = self.items.get(tid or "")
        text = Text()
        if item is not None:
            text.append("Syncing changes ", style="dim")
            text.append(item.training_id, style="bold")
            text.append(f": {item.local_status or 'not stored'} → {item.remote_status}", style="bold")
            text.append(" (status, progress, logs and output fetched from Replicate)", style="dim")
        elif tid:
            text.append(f"{tid} is in sync with what replitrack last heard.", style="dim")
        self.query_one("#sync-change", Static).update(text)

    @on(DataTable.RowSelected, "#sync-table")
    def _selected(self) -> None:
        self.action_sync_one()

    # ----- actions -----------------------------------------------------------------------------
    def action_sync_one(self) -> None:
        tid = self.current_id()
        if tid:
            self.sync([tid])

    def action_sync_all(self) -> None:
        if self.items:
            self.sync(list(self.items))
        elif self.problem is not None:
            self.notify(self.problem, severity="warning", markup=False)
        else:
            self.notify("Nothing to sync: everything matches Replicate.", timeout=3)

    @work(group="sync-run", exit_on_error=False)
    async def sync(self, ids: list[str]) -> None:
        self.caption(f"⟳ syncing {len(ids)} training{'s' if len(ids) != 1 else ''}…", "bold cyan")
        done = 0
        for tid in ids:
            try:
                await self.app.service.sync([tid])
            except ReplitrackError as error:
                self.app.report(error)
                continue
            self.items.pop(tid, None)
            done += 1
        self.notify(f"Synced {done} of {len(ids)} training{'s' if len(ids) != 1 else ''}.", timeout=4)
        self.fill()

    def action_retry(self) -> None:
        if tid := self.current_id():
            if tid in self.app.records:
                self.app.retry(tid)
            else:
                self.notify("Sync it first (s): replitrack needs its inputs to retry it.", severity="warning")

    def action_cancel(self) -> None:
        if tid := self.current_id():
            if tid in self.app.records:
                self.app.cancel(tid)
            else:
                self.notify("Sync it first (s).", severity="warning")

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Sync selected", "Fetch the selected training from Replicate", self.action_sync_one)
        yield SystemCommand("Sync all", "Fetch every differing training", self.action_sync_all)
        yield SystemCommand("Check again", "Compare with Replicate again", self.action_check)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.app.report(event.worker.error)
