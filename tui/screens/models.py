"""Home: one row per training, updated in place as news arrives; sort, filter, open, act."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from core.models import Status
from tui.base import ReplitrackScreen
from tui.format import ago_short, duration, elapsed_seconds, eta_text, progress_cell, safe, status_text
from tui.widgets.progress import stage_label
from tui.widgets.status_line import StatusLine

# Beyond this many rows DataTable building blocks the UI (≈ 0.2 s per 1,000 rows): show the
# first rows of the current order and say how many more the filter hides.
MAX_ROWS = 200
FILTER_PAUSE = 0.15  # seconds without a key press before the filter applies

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("model", "Model", 25), ("trainer", "Trainer", 15), ("status", "Status", 12),
    ("progress", "Progress", 16), ("stage", "Stage", 13), ("eta", "ETA", 7),
    ("elapsed", "Elapsed", 7), ("updated", "Updated", 8),
)
TICKING = ("eta", "elapsed", "updated")


def _created(view: dict[str, Any]) -> str:
    # Stored timestamps are UTC ISO strings ending in Z: as text they sort in time order (bar
    # sub-second ties), and comparing text spares parsing 10,000 dates per sort.
    return str(view.get("created_at") or "")


FINISHED = frozenset({"succeeded", "failed", "canceled", "aborted"})


def finished(view: dict[str, Any]) -> bool:
    return view.get("status") in FINISHED


# name → (label, key function, reverse)
SORTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any], bool]] = {
    "active": ("active first", lambda v: (not finished(v), _created(v)), True),
    "newest": ("newest", _created, True),
    "progress": ("progress", lambda v: float(v.get("overall_percent") or 0), True),
    "model": ("model", lambda v: str(v.get("destination") or "").lower(), False),
    "status": ("status", lambda v: str(v.get("status") or ""), False),
}


def short(text: str | None, width: int) -> Text:
    value = str(text or "–")
    return safe(value if len(value) <= width else value[: width - 1] + "…")


def haystack(view: dict[str, Any]) -> str:
    return " ".join(str(view.get(k) or "") for k in ("id", "destination", "trainer", "status", "stage")).lower()


def matches(view: dict[str, Any], needle: str, hay: str | None = None) -> bool:
    if not needle:
        return True
    hay = haystack(view) if hay is None else hay
    return all(word in hay for word in needle.lower().split())


class ModelsScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("enter", "open", "Open", id="models.open"),
        Binding("slash", "filter", "Filter", key_display="/", id="models.filter"),
        Binding("s", "sort", "Sort", id="models.sort"),
        Binding("f", "toggle_finished", "Finished", id="models.finished"),
        Binding("y", "app.open_sync", "Sync", id="models.sync"),
        Binding("n", "app.new_training", "New", id="models.new"),
        Binding("r", "retry", "Retry", id="models.retry"),
        Binding("x", "cancel", "Cancel", id="models.cancel"),
        Binding("o", "open_web", "Web", id="models.web"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="models.clear"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_name = "active"
        self.show_finished = True
        self.needle = ""
        self.shown: list[str] = []
        self._rows: set[str] = set()
        self._stale: set[str] = set()  # changed while another screen was on top
        self._finished_ago: dict[str, str] = {}  # the "updated" text last shown for finished rows
        self._hay: dict[str, str] = {}  # training id → what the filter searches, lowercased
        self._filter_timer: Any = None

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="models-caption")
        table: DataTable[Any] = DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Input(placeholder="filter: model, trainer, id, status… (enter to apply, esc to clear)",
                    id="models-filter", classes="hidden")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        self.rebuild()
        self.app.trainings_changed.subscribe(self, self.on_changed)
        self.app.ticked.subscribe(self, self.on_tick)
        table.focus()

    # ----- rows --------------------------------------------------------------------------------
    @property
    def records(self) -> dict[str, dict[str, Any]]:
        return self.app.records

    def visible(self) -> list[str]:
        label, key, reverse = SORTS[self.sort_name]
        hay = self._hay
        needle = self.needle
        views = []
        for tid, view in self.records.items():
            if not self.show_finished and finished(view):
                continue
            if needle:
                if tid not in hay:
                    hay[tid] = haystack(view)
                if not matches(view, needle, hay[tid]):
                    continue
            views.append(view)
        views.sort(key=key, reverse=reverse)
        return [v["id"] for v in views]

    def cells(self, view: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "model": short(view.get("destination") or view.get("id"), 25),
            # The trainer's name says which it is; its owner only takes room (full name in detail).
            "trainer": short(str(view.get("trainer") or "").rsplit("/", 1)[-1], 15),
            "status": status_text(view.get("status")),
            "progress": progress_cell(view, 10),
            "stage": short(stage_label(view.get("stage")), 13),
            "eta": Text(eta_text(view, now)),
            "elapsed": Text(duration(elapsed_seconds(view, now))),
            # A finished training's last news is its completion, not when we happened to import it.
            "updated": Text(ago_short(view.get("completed_at") or view.get("updated_at"), now), style="dim"),
        }

    def rebuild(self) -> None:
        """Rebuild the rows (sort, filter, new trainings); the cursor stays on its training."""
        table = self.query_one(DataTable)
        current = self.current_id()
        ids = self.visible()
        self.shown = ids[:MAX_ROWS]
        now = self.app.clock()
        table.clear()
        for tid in self.shown:  # the row key is the training id
            table.add_row(*self.cells(self.records[tid], now).values(), key=tid)
        self._rows = set(self.shown)
        if current in self._rows:
            table.move_cursor(row=table.get_row_index(current), animate=False)
        self.update_caption(len(ids))

    def update_caption(self, total: int) -> None:
        parts = [f"{total} training{'s' if total != 1 else ''}"]
        if total > len(self.shown):
            parts.append(f"showing the first {len(self.shown)} (filter with / to narrow)")
        parts.append(f"sorted by {SORTS[self.sort_name][0]}")
        parts.append("finished shown" if self.show_finished else "active only")
        if self.needle:
            parts.append(f"filter: {self.needle}")
        if not self.records:
            parts = ["No trainings yet. Press n to start one, or ctrl+p → Import all trainings."]
        self.query_one("#models-caption", Static).update(Text("  ·  ".join(parts), style="dim"))

    def current_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # the cursor is past the rows a filter left
            return None
        return row_key.value

    def on_changed(self, changed: frozenset[str]) -> None:
        if not self.is_current:
            # Under another screen, updating cells would repaint that screen too (Textual
            # composites background screens): note what changed, apply it on return.
            self._stale |= changed
            return
        table = self.query_one(DataTable)
        now = self.app.clock()
        missing = False
        for tid in changed:
            self._hay.pop(tid, None)
            view = self.records.get(tid)
            if view is None:
                continue
            if tid not in self._rows:
                missing = missing or (matches(view, self.needle) and (
                    self.show_finished or not Status.parse(view.get("status")).terminal))
                continue
            for column, value in self.cells(view, now).items():
                table.update_cell(tid, column, value)
        if missing:
            self.rebuild()  # a training we had not seen: place it where the sort says

    def on_screen_resume(self) -> None:
        self.query_one(StatusLine).refresh()
        if self._stale:
            changed, self._stale = frozenset(self._stale), set()
            self.on_changed(changed)

    def on_tick(self, now: datetime) -> None:
        if not self.is_current:
            return
        table = self.query_one(DataTable)
        for tid in self._rows:
            view = self.records.get(tid)
            if view is None:
                continue
            if not Status.parse(view.get("status")).terminal:
                cells = self.cells(view, now)
                for column in TICKING:
                    table.update_cell(tid, column, cells[column])
            else:  # only "2m ago" moves, and only now and then: touch the cell when its text does
                ago = ago_short(view.get("completed_at") or view.get("updated_at"), now)
                if self._finished_ago.get(tid) != ago:
                    self._finished_ago[tid] = ago
                    table.update_cell(tid, "updated", Text(ago, style="dim"))

    # ----- actions -----------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#models-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        tid = event.row_key.value
        if tid:
            self.app.open_detail(tid)

    def action_open(self) -> None:
        if tid := self.current_id():
            self.app.open_detail(tid)

    def action_sort(self) -> None:
        names = list(SORTS)
        self.sort_name = names[(names.index(self.sort_name) + 1) % len(names)]
        self.rebuild()
        self.notify(f"Sorted by {SORTS[self.sort_name][0]}", timeout=2)

    def action_toggle_finished(self) -> None:
        self.show_finished = not self.show_finished
        self.rebuild()

    def action_filter(self) -> None:
        box = self.query_one("#models-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#models-filter", Input)
        box.value, self.needle = "", ""
        box.add_class("hidden")
        self.rebuild()
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#models-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Filter as one types, but once typing pauses: with 10,000 trainings a rebuild per key
        # would make typing lag.
        self.needle = event.value.strip()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_PAUSE, self.rebuild)

    @on(Input.Submitted, "#models-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.needle = event.value.strip()
        self.rebuild()
        if not event.value.strip():
            event.input.add_class("hidden")
        self.query_one(DataTable).focus()

    def action_retry(self) -> None:
        if tid := self.current_id():
            self.app.retry(tid)

    def action_cancel(self) -> None:
        if tid := self.current_id():
            self.app.cancel(tid)

    def action_open_web(self) -> None:
        if tid := self.current_id():
            self.app.open_training_page(tid)

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Open training", "Open the selected training's detail", self.action_open)
        yield SystemCommand("Filter", "Filter trainings by model, trainer, id or status", self.action_filter)
        yield SystemCommand("Sort", "Cycle the sort order", self.action_sort)
        yield SystemCommand("Show or hide finished", "Toggle finished trainings", self.action_toggle_finished)
        yield SystemCommand("Retry training", "Retry the selected training (asks first)", self.action_retry)
        yield SystemCommand("Cancel training", "Cancel the selected training (asks first)", self.action_cancel)
        yield SystemCommand("Open on Replicate", "Open the selected training's web page", self.action_open_web)
