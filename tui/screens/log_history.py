"""The whole log of a training, scrollable back to its first line, with search (/, n, N)."""

from __future__ import annotations

import asyncio
import bisect
import mmap
import re
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.worker import Worker, WorkerState
from textual.widgets import Input, Static

from tui.base import ReplitrackScreen
from tui.widgets.footer import KeyFooter
from tui.widgets.log_file import LogFile, LogFileView
from tui.widgets.status_line import StatusLine

MAX_COUNTED = 1_000_000  # matches counted at most (the count then reads "1,000,000+")


def matching_lines(file: LogFile, query: str) -> list[int]:
    """The indexed lines of `file` that hold `query` (case-insensitive, plain text), in order."""
    needle = re.compile(re.escape(query.encode()), re.IGNORECASE)
    lines: list[int] = []
    try:
        with open(file.path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            end = min(len(data), file.indexed)
            for match in needle.finditer(data, 0, end):
                line = file.line_of(match.start())
                if not lines or lines[-1] != line:
                    lines.append(line)
                    if len(lines) >= MAX_COUNTED:
                        break
    except (OSError, ValueError):  # no file yet, or an empty one (mmap refuses size 0)
        return []
    return lines


class LogHistoryScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="history.back"),
        Binding("slash", "search", "Search", key_display="/", id="history.search"),
        Binding("n", "next", "Next match", id="history.next"),
        Binding("N", "previous", "Previous match", key_display="N", id="history.previous"),
        Binding("G", "end", "End", key_display="G", id="history.end"),
        Binding("g", "top", "Top", id="history.top"),
        Binding("j", "scroll(1)", "Down", show=False, id="history.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="history.up"),
    ]

    def __init__(self, training_id: str) -> None:
        super().__init__()
        self.training_id = training_id
        self.query_text = ""
        self._note = ""  # what the title says about the search
        self.matches: list[int] = []  # lines holding the query, in order (for "match k of N")
        self._unsubscribe: Callable[[], None] | None = None
        self._reload_scheduled = False  # an indexing run is scheduled or running
        self._dirty = False  # the log grew since the running indexing began

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="history-title")
        yield LogFileView(self.app.store.log_path(self.training_id), id="history-view")
        yield Input(placeholder="search the whole log (enter: find, n/N: next/previous, esc: close)",
                    id="history-search", classes="hidden")
        yield KeyFooter()

    def on_mount(self) -> None:
        view = self.query_one(LogFileView)
        self._unsubscribe = self.app.subscribe_log(self.training_id, self._grew)
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

    def update_title(self, note: str | None = None) -> None:
        note = self._note if note is None else note
        self._note = note
        view = self.query_one(LogFileView)
        wide = view.virtual_size.width + 9 > view.scrollable_content_region.width  # 9: the line numbers
        for with_id in (True, False):  # a narrow terminal drops the id (it is on the detail screen)
            text = Text.assemble(("Full log ", "bold"), (self.training_id if with_id else "", "dim"),
                                 (f"   {view.file.line_count:,} lines", ""))
            if self.query_text:
                text.append(f"   search: {self.query_text!r}", style="yellow")
            if note:
                text.append(f"   {note}", style="bold")
            if wide:
                text.append("   ← → longer lines", style="bold yellow")
            if text.cell_len <= self.size.width - 2:
                break
        self.query_one("#history-title", Static).update(text)

    def on_resize(self) -> None:
        self.update_title()

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
        self.matches = []
        view = self.query_one(LogFileView)
        view.current = None
        self.find(backwards=False)
        event.input.add_class("hidden")  # the title shows the query; n/N move between matches
        view.focus()
        if self.query_text:
            self.run_worker(self._count(self.query_text), group="history-count", exclusive=True)

    async def _count(self, query: str) -> None:
        """Every line holding the query, found off the UI loop (a 100 MB log takes a moment)."""
        view = self.query_one(LogFileView)
        lines = await asyncio.to_thread(matching_lines, view.file, query)
        if query == self.query_text:
            self.matches = lines
            self.update_title(self.position_note(view.current))

    def position_note(self, found: int | None) -> str:
        if found is None:
            return "no match" if self.query_text else ""
        note = f"line {found + 1:,}"
        if self.matches:
            k = bisect.bisect_left(self.matches, found)
            if k < len(self.matches) and self.matches[k] == found:
                note = f"match {k + 1:,} of {len(self.matches):,} ({note})"
        return note

    def find(self, *, backwards: bool) -> None:
        view = self.query_one(LogFileView)
        found = view.search(self.query_text, backwards=backwards)
        self.update_title(self.position_note(found))

    def action_scroll(self, lines: int) -> None:
        view = self.query_one(LogFileView)
        view.scroll_to(y=view.scroll_offset.y + lines, animate=False)

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
            self.app.report(event.worker.error)
