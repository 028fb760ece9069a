"""Home: one row per training, updated in place as news arrives; sort, filter, open, act."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Input, Static

from tui.base import ReplitrackScreen
from tui.format import ago_short, duration, elapsed_seconds, eta_text, percent, progress_cell, safe, status_text
from tui.widgets.progress import stage_label
from tui.widgets.footer import KeyFooter
from tui.widgets.status_line import StatusLine
from tui.widgets.training_list import Column, TrainingList

FILTER_PAUSE = 0.15  # seconds without a key press before the filter applies
# Rows redrawn per frame when the clock moves their times on. A screenful of running trainings
# redrawn in one frame (~8 ms at 33 rows) held up a webhook arriving then; spread over the second,
# each row still moves once a second and no frame does more than this.
TICK_ROWS_PER_FRAME = 8

# Least important columns go first when the terminal is narrow (`drop`, highest first): at 80
# columns the list keeps model, id, status, percent done, ETA and created.
COLUMNS: tuple[Column, ...] = (
    Column("model", "Model", 18, flex=True, prefer=26), Column("id", "Id", 8, drop=4),
    Column("trainer", "Trainer", 12, drop=6), Column("status", "Status", 12),
    Column("progress", "Progress", 14, narrow=5, narrow_label="Done"), Column("stage", "Stage", 13, drop=7), Column("eta", "ETA", 7),
    Column("elapsed", "Elapsed", 7, drop=8), Column("created", "Created", 11, drop=5),
    Column("updated", "Updated", 8, drop=9),
)


def _created(view: dict[str, Any]) -> str:
    # Stored timestamps are UTC ISO strings ending in Z: as text they sort in time order (bar
    # sub-second ties), and comparing text spares parsing 10,000 dates per sort.
    return str(view.get("created_at") or "")


FINISHED = frozenset({"succeeded", "failed", "canceled", "aborted"})


def finished(view: dict[str, Any]) -> bool:
    return view.get("status") in FINISHED


# name → (label, key function, reverse)
SORTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any], bool]] = {
    # Inlined, not via finished()/_created(): the first paint sorts 10,000 of them.
    "active": ("active first", lambda v: (v.get("status") not in FINISHED, v.get("created_at") or ""), True),
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


def created_text(view: dict[str, Any]) -> str:
    """`11-24 09:00` (UTC, as stored): tells three runs of one model apart."""
    created = _created(view)
    return created[5:16].replace("T", " ") if len(created) >= 16 else "–"


def model_text(view: dict[str, Any]) -> Text:
    """The destination; an imported training without one shows its trainer, never a cut id."""
    if view.get("destination"):
        return safe(view["destination"])
    trainer = str(view.get("trainer") or "").rsplit("/", 1)[-1]
    return Text.assemble(("→ ", "dim"), safe(trainer or "unknown trainer")) if trainer else Text("–")


def cells(view: dict[str, Any], widths: Any, now: datetime) -> dict[str, Text]:
    """How one training reads in the list, for the columns that fit (`widths`)."""
    out: dict[str, Text] = {}
    for key in widths:
        if key == "model":
            out[key] = model_text(view)
        elif key == "id":
            out[key] = Text(str(view.get("id") or "")[:8], style="dim")
        elif key == "trainer":
            # The trainer's name says which it is; its owner only takes room (full name in detail).
            out[key] = safe(str(view.get("trainer") or "").rsplit("/", 1)[-1] or "–")
        elif key == "status":
            out[key] = status_text(view.get("status"))
        elif key == "progress":
            width = widths[key]
            out[key] = progress_cell(view, width - 5) if width >= 10 else Text(
                percent(float(view.get("overall_percent") or 0)))
        elif key == "stage":
            out[key] = safe(stage_label(view.get("stage")))
        elif key == "eta":
            out[key] = Text(eta_text(view, now))
        elif key == "elapsed":
            out[key] = Text(duration(elapsed_seconds(view, now)))
        elif key == "created":
            out[key] = Text(created_text(view), style="dim")
        elif key == "updated":
            # A finished training's last news is its completion, not when we happened to import it.
            out[key] = Text(ago_short(view.get("completed_at") or view.get("updated_at"), now), style="dim")
    return out


class ModelsScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("enter", "open", "Open", id="models.open"),
        Binding("slash", "filter", "Filter", key_display="/", id="models.filter"),
        Binding("s", "sort", "Sort", id="models.sort"),
        Binding("f", "toggle_finished", "Finished", id="models.finished"),
        Binding("e", "app.open_events", "Events", id="models.events"),
        Binding("y", "app.open_sync", "Sync", id="models.sync"),
        Binding("n", "app.new_training", "New", id="models.new"),
        Binding("r", "retry", "Retry", id="models.retry"),
        Binding("x", "cancel", "Cancel", id="models.cancel"),
        Binding("o", "open_web", "Web", id="models.web"),
        Binding("space", "mark", "Mark", show=False, id="models.mark"),
        Binding("C", "compare", "Compare marked", key_display="C", show=False, id="models.compare"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="models.clear"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_name = "active"
        self.show_finished = True
        self.needle = ""
        self._keys: dict[str, Any] = {}  # training id → its sort key, for the rows listed
        self._stale: set[str] = set()  # changed while another screen was on top
        self._finished_ago: dict[str, str] = {}  # the "updated" text last shown for finished rows
        self._hay: dict[str, str] = {}  # training id → what the filter searches, lowercased
        self._filter_timer: Any = None
        self._caption = ""
        self._first_rows: list[str] = []

    def compose(self) -> ComposeResult:
        # The rows and their caption are known now: in the first frame, not one frame later.
        self._first_rows = self.visible()
        self._caption = self._caption_text(len(self._first_rows))
        yield StatusLine()
        yield Static(Text(self._caption, style="dim"), id="models-caption")
        yield TrainingList(COLUMNS, self._cells, id="models-table")
        yield Input(placeholder="filter: model, trainer, id, status… (enter to apply, esc to clear)",
                    id="models-filter", classes="hidden")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.table.set_rows(self._first_rows, self.records)
        self.app.trainings_changed.subscribe(self, self.on_changed)
        self.app.ticked.subscribe(self, self.on_tick)
        self.app.connection_changed.subscribe(self, self._connection_changed)
        self.table.focus()

    # ----- rows --------------------------------------------------------------------------------
    @property
    def table(self) -> TrainingList:
        return self.query_one(TrainingList)

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        return self.app.records

    @property
    def shown(self) -> list[str]:
        """The training ids listed, in order (all of them: the list draws only what is on screen)."""
        return self.table.ids

    @property
    def marked_ids(self) -> list[str]:
        """The marked trainings (space), in list order: what `C` compares."""
        marked = self.table.marked
        return [tid for tid in self.table.ids if tid in marked] + sorted(marked - set(self.table.ids))

    def _cells(self, view: dict[str, Any], widths: Any) -> dict[str, Text]:
        return cells(view, widths, self.app.clock())

    def listed(self, view: dict[str, Any]) -> bool:
        if not self.show_finished and finished(view):
            return False
        if self.needle:
            tid = view["id"]
            if tid not in self._hay:
                self._hay[tid] = haystack(view)
            return matches(view, self.needle, self._hay[tid])
        return True

    def visible(self) -> list[str]:
        _, key, reverse = SORTS[self.sort_name]
        if self.show_finished and not self.needle:  # everything is listed: no test per record
            self._keys = {tid: key(view) for tid, view in self.records.items()}
        else:
            self._keys = {tid: key(view) for tid, view in self.records.items() if self.listed(view)}
        return sorted(self._keys, key=self._keys.__getitem__, reverse=reverse)

    def rebuild(self) -> None:
        """Sort and filter all the trainings again; the cursor stays on its training."""
        self.table.set_rows(self.visible(), self.records)
        self.update_caption()

    def loading(self) -> bool:
        """The store is read but the first news (boot, import, listener) is still on its way."""
        connection = self.app.connection
        return not self.records and (connection.importing is not None or connection.listener_error == "starting")

    def update_caption(self) -> None:
        caption = self._caption_text(len(self.table.ids), len(self.table.marked))
        if caption != self._caption:
            self._caption = caption
            self.query_one("#models-caption", Static).update(Text(caption, style="dim"))

    def _caption_text(self, total: int, marked: int = 0) -> str:
        parts = [f"{total} training{'s' if total != 1 else ''}"]
        parts.append(f"sorted by {SORTS[self.sort_name][0]}")
        parts.append("finished shown" if self.show_finished else "active only")
        if self.needle:
            parts.append(f"filter: {self.needle}")
        if marked:
            parts.append(f"{marked} marked (C compares)")
        if not self.records:
            parts = (["loading…"] if self.loading() else
                     ["No trainings yet. Press n to start one, or ctrl+p → Import all trainings."])
        return "  ·  ".join(parts)

    def _connection_changed(self, _: object) -> None:
        if not self.records and self.is_current:
            self.update_caption()  # "loading…" becomes "No trainings yet" once nothing is coming

    def current_id(self) -> str | None:
        return self.table.current_id

    def on_changed(self, changed: frozenset[str]) -> None:
        if not self.is_current:
            # Under another screen, redrawing rows would repaint that screen too (Textual
            # composites background screens): note what changed, apply it on return.
            self._stale |= changed
            return
        _, key, reverse = SORTS[self.sort_name]
        keys, table = self._keys, self.table
        reorder = False
        for tid in changed:
            self._hay.pop(tid, None)
            view = self.records.get(tid)
            if view is None:
                continue
            if not self.listed(view):
                if keys.pop(tid, None) is not None:
                    reorder = True  # it left the list (finished while "active only", …)
                continue
            new = key(view)
            if keys.get(tid, _MISSING) != new:
                keys[tid] = new  # a new row, or one whose place changed (it ended, it moved on)
                reorder = True
        if reorder:
            # Timsort on an almost sorted list is about linear: live re-sort stays cheap at 10,000.
            table.set_rows(sorted(keys, key=keys.__getitem__, reverse=reverse), self.records)
            self.update_caption()
        else:
            table.changed(changed)

    def on_screen_resume(self) -> None:
        self.query_one(StatusLine).refresh()
        if self._stale:
            changed, self._stale = frozenset(self._stale), set()
            self.on_changed(changed)

    def on_tick(self, now: datetime) -> None:
        if not self.is_current:
            return
        moved = []
        for tid in self.table.visible_ids():  # only rows on screen cost anything to redraw
            view = self.records.get(tid)
            if view is None:
                continue
            if not finished(view):
                moved.append(tid)
            else:  # only "2m ago" moves, and only now and then: redraw when its text does
                ago = ago_short(view.get("completed_at") or view.get("updated_at"), now)
                if self._finished_ago.get(tid) != ago:
                    self._finished_ago[tid] = ago
                    moved.append(tid)
        batches = [moved[start:start + TICK_ROWS_PER_FRAME] for start in range(0, len(moved), TICK_ROWS_PER_FRAME)]
        for index, batch in enumerate(batches):
            if index == 0:
                self.table.touch(batch)
            else:  # within the second, before the next tick
                self.set_timer(0.8 * index / len(batches), partial(self._touch_if_current, batch))

    def _touch_if_current(self, ids: list[str]) -> None:
        if self.is_current:  # not under another screen, which it would repaint too (see on_changed)
            self.table.touch(ids)

    # ----- actions -----------------------------------------------------------------------------
    @on(TrainingList.Selected, "#models-table")
    def _selected(self, event: TrainingList.Selected) -> None:
        self.app.open_detail(event.training_id)

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

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self.table.action_cursor_down()
        self.update_caption()

    def action_compare(self) -> None:
        ids = self.marked_ids or ([self.current_id()] if self.current_id() else [])
        if len(ids) < 2:
            self.notify("Mark two or more trainings with space, then press C to compare them.",
                        severity="warning", markup=False)
        else:
            self.app.open_compare(ids)

    def action_filter(self) -> None:
        box = self.query_one("#models-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#models-filter", Input)
        box.value, self.needle = "", ""
        box.add_class("hidden")
        self.rebuild()
        self.table.focus()

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
        self.table.focus()

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
        yield SystemCommand("Mark training", "Mark or unmark the selected training (space)", self.action_mark)
        yield SystemCommand("Compare marked", "Compare the marked trainings (C)", self.action_compare)
        yield SystemCommand("Retry training", "Retry the selected training (asks first)", self.action_retry)
        yield SystemCommand("Cancel training", "Cancel the selected training (asks first)", self.action_cancel)
        yield SystemCommand("Open on Replicate", "Open the selected training's web page", self.action_open_web)


_MISSING = object()
