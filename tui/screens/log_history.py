"""The whole log of a training, scrollable back to its first line, with search (/, n, N)."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState
from textual.widgets import Input, Static

from tui.widgets.log_file import LogFileView
from tui.widgets.footer import KeyFooter
from tui.widgets.status_line import StatusLine


class LogHistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="history.back"),
        Binding("slash", "search", "Search", key_display="/", id="history.search"),
        Binding("n", "next", "Next match", id="history.next"),
        Binding("N", "previous", "Previous match", key_display="N", id="history.previous"),
        Binding("G", "end", "End", key_display="G", id="history.end"),
        Binding("g", "top", "Top", id="history.top"),
    ]

    def __init__(self, training_id: str) -> None:
        super().__init__()
        self.training_id = training_id
        self.query_text = ""
        self._unsubscribe: Callable[[], None] | None = None
        self._reload_scheduled = False  # an indexing run is scheduled or running
        self._dirty = False  # the log grew since the running indexing began

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="history-title")
        yield LogFileView(self.app.store.log_path(self.training_id), id="history-view")  # type: ignore[attr-defined]
        yield Input(placeholder="search the whole log (enter: find, n/N: next/previous, esc: close)",
                    id="history-search", classes="hidden")
        yield KeyFooter()

    def on_mount(self) -> None:
        view = self.query_one(LogFileView)
        self._unsubscribe = self.app.subscribe_log(self.training_id, self._grew)  # type: ignore[attr-defined]
        self.query_one("#history-title", Static).update(Text("Full log: indexing…", style="dim"))
        view.focus()
        self._reload_scheduled = True
        self.run_worker(self._reload_async(first=True), group="history-index")

    def on_unmount(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def _grew(self, _: str) -> None:
        # Coalesce: a burst of log updates re-indexes once, 100 ms later, one indexing at a time.
        self._dirty = True
        if not self._reload_scheduled:
            self._reload_scheduled = True
            self.set_timer(0.1, self._reload)

    def _reload(self) -> None:
        self.run_worker(self._reload_async(), group="history-index")

    async def _reload_async(self, first: bool = False) -> None:
        view = self.query_one(LogFileView)
        try:
            while True:
                self._dirty = False
                await view.reload_in_thread()
                if not self._dirty:
                    break
        finally:
            self._reload_scheduled = False
        if first:
            view.scroll_end(animate=False)
        self.update_title()

    def update_title(self, note: str = "") -> None:
        view = self.query_one(LogFileView)
        text = Text.assemble(("Full log ", "bold"), (self.training_id, "dim"),
                             (f"   {view.file.line_count:,} lines", ""))
        if self.query_text:
            text.append(f"   search: {self.query_text!r}", style="yellow")
        if note:
            text.append(f"   {note}", style="bold")
        self.query_one("#history-title", Static).update(text)

    def action_back(self) -> None:
        box = self.query_one("#history-search", Input)
        if box.has_focus:
            box.add_class("hidden")
            self.query_one(LogFileView).focus()
        else:
            self.app.pop_screen()

    def action_search(self) -> None:
        box = self.query_one("#history-search", Input)
        box.remove_class("hidden")
        box.focus()

    @on(Input.Submitted, "#history-search")
    def _submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value
        view = self.query_one(LogFileView)
        view.current = None
        self.find(backwards=False)
        event.input.add_class("hidden")  # the title shows the query; n/N move between matches
        view.focus()

    def find(self, *, backwards: bool) -> None:
        view = self.query_one(LogFileView)
        found = view.search(self.query_text, backwards=backwards)
        if self.query_text and found is None:
            self.update_title("no match")
        elif found is not None:
            self.update_title(f"match on line {found + 1:,}")
        else:
            self.update_title()

    def action_next(self) -> None:
        self.find(backwards=False)

    def action_previous(self) -> None:
        self.find(backwards=True)

    def action_end(self) -> None:
        self.query_one(LogFileView).scroll_end(animate=False)

    def action_top(self) -> None:
        self.query_one(LogFileView).scroll_home(animate=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.app.report(event.worker.error)  # type: ignore[attr-defined]
