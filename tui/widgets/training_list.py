"""The models list as a line-API view: it draws only the rows on screen, and an update redraws
only the rows that changed.

Textual's DataTable keys every row's render cache on a table-wide update counter, so one cell
update throws away every row's cache and a webhook costs in proportion to the rows listed. Here
the list is an ordered sequence of training ids over the app's records; `render_line` draws row
`scroll_y + y` from the record on demand (cached per row until that row changes), and a change to
one training refreshes that one line. 10,000 rows cost what one does; all of them are reachable.

The screen owns what the rows are (sort, filter) and how a record reads as cells; the widget owns
the columns' layout for the width it has, the cursor, the marks and the drawing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

CACHE_LIMIT = 4_000  # rows kept drawn; beyond, the cache starts again (only visible rows matter)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    drop: int = 0  # 0: always shown; otherwise the higher, the sooner it goes when space is short
    flex: bool = False  # takes the width the others leave (at least `width`)
    prefer: int = 0  # flex only: columns with drop >= SPARE_FOR_FLEX go so that it gets this wide
    narrow: int = 0  # a narrower width it can take (then, if still short, for the flex column)
    narrow_label: str = ""


SPARE_FOR_FLEX = 6  # the columns that may go to give the flex column its preferred width


def layout(columns: Iterable[Column], width: int, gap: int = 1) -> list[tuple[Column, int]]:
    """The columns that fit `width` (least important dropped first, then the flex column given
    its preferred width: optional columns go, then narrowable ones narrow) and each one's width."""
    kept = list(columns)
    sizes = {c.key: c.width for c in kept}

    def fixed() -> int:
        return sum(sizes[c.key] for c in kept) + gap * max(0, len(kept) - 1)

    while fixed() > width and any(c.drop for c in kept):
        kept.remove(max((c for c in kept if c.drop), key=lambda c: c.drop))
    flex = next((c for c in kept if c.flex), None)
    while flex is not None and flex.width + max(0, width - fixed()) < flex.prefer:
        optional = [c for c in kept if c.drop >= SPARE_FOR_FLEX]
        narrowable = [c for c in kept if c.narrow and sizes[c.key] > c.narrow]
        if optional:
            kept.remove(max(optional, key=lambda c: c.drop))
        elif narrowable:
            sizes[narrowable[0].key] = narrowable[0].narrow
        else:
            break
    spare = max(0, width - fixed())
    return [(c, sizes[c.key] + (spare if c is flex else 0)) for c in kept]


Cells = Callable[[dict[str, Any], Mapping[str, int]], Mapping[str, Text]]


class TrainingList(ScrollView, can_focus=True):
    """Rows of trainings, one per id in `ids`, drawn from `records` by the `cells` function (the
    Events screen lists its requests with it too: any id → record mapping works)."""

    DEFAULT_CSS = """
    TrainingList { height: 1fr; background: $surface; overflow-x: hidden; }
    TrainingList > .training-list--header { text-style: bold; background: $panel; }
    TrainingList > .training-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    TrainingList > .training-list--cursor-blurred { background: $block-cursor-blurred-background; }
    TrainingList > .training-list--odd { background: $surface-lighten-1 10%; }
    TrainingList > .training-list--empty { color: $text-muted; }
    """
    COMPONENT_CLASSES = {
        "training-list--header", "training-list--cursor", "training-list--cursor-blurred",
        "training-list--odd", "training-list--empty",
    }
    BINDINGS = [
        Binding("down,j", "cursor_down", "Down", show=False, id="list.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="list.up"),
        Binding("home,g", "first", "First", show=False, id="list.first"),
        Binding("end,G", "last", "Last", show=False, id="list.last"),
        Binding("pagedown", "page_down", "Page down", show=False, id="list.page_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="list.page_up"),
        Binding("enter", "select", "Open", show=False, id="list.select"),
    ]

    class Selected(Message):
        """Enter (or a click on the row under the cursor) on a training."""

        def __init__(self, training_list: TrainingList, training_id: str) -> None:
            super().__init__()
            self.training_list = training_list
            self.training_id = training_id

        @property
        def control(self) -> TrainingList:
            return self.training_list

    def __init__(self, columns: Iterable[Column], cells: Cells, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self.cells = cells
        self.records: Mapping[str, dict[str, Any]] = {}
        self.ids: list[str] = []
        self.position: dict[str, int] = {}
        self.cursor = 0
        self.marked: set[str] = set()
        self.empty_text = ""
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        self._cache: dict[str, tuple[tuple[Any, ...], Strip]] = {}
        self._revision: dict[str, int] = {}
        self.drawn = 0  # rows drawn (not from the cache): what the bench and tests look at

    # ----- content -----------------------------------------------------------------------------
    def set_rows(self, ids: list[str], records: Mapping[str, dict[str, Any]], *, keep: str | None = None) -> None:
        """Show `ids` in this order; the cursor stays on `keep` (or the current training)."""
        keep = keep if keep is not None else self.current_id
        self.records = records
        self.ids = ids
        self.position = {tid: index for index, tid in enumerate(ids)}
        self.cursor = self.position.get(keep, min(self.cursor, max(0, len(ids) - 1))) if keep else min(
            self.cursor, max(0, len(ids) - 1))
        self.virtual_size = Size(0, len(ids) + 1)  # + the header line
        self._scroll_cursor_visible()
        self.refresh()

    def changed(self, ids: Iterable[str]) -> None:
        """These trainings' records changed: redraw their rows (only those on screen cost anything)."""
        for tid in ids:
            self._revision[tid] = self._revision.get(tid, 0) + 1
            self._refresh_row(self.position.get(tid))

    def touch(self, ids: Iterable[str]) -> None:
        """Redraw these rows (e.g. time moved on for running trainings) if they are on screen."""
        top, height = self.scroll_offset.y, self.view_rows
        for tid in ids:
            index = self.position.get(tid)
            if index is not None and top <= index < top + height:
                self._revision[tid] = self._revision.get(tid, 0) + 1
                self._refresh_row(index)

    def visible_ids(self) -> list[str]:
        top = self.scroll_offset.y
        return self.ids[top:top + self.view_rows]

    def row_text(self, tid: str) -> str:
        """A row as plain text, as it reads on screen now (tests and benches look at it)."""
        index = self.position.get(tid, 0)
        strip = self._draw(tid, index, False, self.column_layout(), self.view_width, Style())
        self.drawn -= 1
        return "".join(segment.text for segment in strip)

    @property
    def current_id(self) -> str | None:
        return self.ids[self.cursor] if 0 <= self.cursor < len(self.ids) else None

    def toggle_mark(self) -> None:
        tid = self.current_id
        if tid is None:
            return
        self.marked.symmetric_difference_update({tid})
        self._refresh_row(self.cursor)

    @property
    def view_width(self) -> int:
        return self.scrollable_content_region.width  # the scrollbar's columns are not ours

    @property
    def view_rows(self) -> int:
        """Rows of trainings on screen (the header line takes one)."""
        return max(0, self.scrollable_content_region.height - 1)

    def _refresh_row(self, index: int | None) -> None:
        if index is None:
            return
        y = index - self.scroll_offset.y + 1
        if 1 <= y <= self.view_rows:
            self.refresh(Region(0, y, self.size.width, 1))

    # ----- cursor ------------------------------------------------------------------------------
    def move_cursor(self, index: int) -> None:
        if not self.ids:
            return
        index = max(0, min(len(self.ids) - 1, index))
        if index != self.cursor:
            before, self.cursor = self.cursor, index
            self._refresh_row(before)
            self._refresh_row(index)
        self._scroll_cursor_visible()

    def _scroll_cursor_visible(self) -> None:
        rows = max(1, self.view_rows)
        top = self.scroll_offset.y
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self.ids) - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + max(1, self.view_rows - 1))

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - max(1, self.view_rows - 1))

    def action_select(self) -> None:
        if tid := self.current_id:
            self.post_message(self.Selected(self, tid))

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        index = self.scroll_offset.y + event.y - 1
        if 0 <= index < len(self.ids):
            if index == self.cursor and event.chain > 1:
                self.action_select()
            self.move_cursor(index)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, len(self.ids) + 1)
        self._scroll_cursor_visible()

    def on_focus(self) -> None:
        self._refresh_row(self.cursor)

    def on_blur(self) -> None:
        self._refresh_row(self.cursor)

    # ----- drawing -----------------------------------------------------------------------------
    def column_layout(self) -> list[tuple[Column, int]]:
        width = self.view_width - 1  # one cell of left margin (the mark)
        if width != self._layout_width:
            self._layout, self._layout_width = layout(self.columns, width), width
            self._cache.clear()
        return self._layout

    def render_line(self, y: int) -> Strip:
        width = self.view_width
        base = self.rich_style
        columns = self.column_layout()
        if y == 0:
            style = base + self.get_component_rich_style("training-list--header")
            text = Text(" ")
            for column, size in columns:
                label = column.narrow_label if size < column.width and column.narrow_label else column.label
                text.append(label[:size].ljust(size) + " ")
            return Strip(text.render(self.app.console), text.cell_len).adjust_cell_length(width, style).apply_style(style)
        index = self.scroll_offset.y + y - 1
        if index >= len(self.ids):
            if index == 0 and self.empty_text:
                style = base + self.get_component_rich_style("training-list--empty")
                return Strip([Segment("  " + self.empty_text, style)]).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        tid = self.ids[index]
        selected = index == self.cursor
        key = (self._revision.get(tid, 0), selected, selected and self.has_focus, tid in self.marked,
               index % 2, width)
        cached = self._cache.get(tid)
        if cached is not None and cached[0] == key:
            return cached[1]
        strip = self._draw(tid, index, selected, columns, width, base)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[tid] = (key, strip)
        return strip

    def _draw(self, tid: str, index: int, selected: bool, columns: list[tuple[Column, int]], width: int,
              base: Style) -> Strip:
        self.drawn += 1
        record = self.records.get(tid) or {"id": tid}
        widths = {column.key: size for column, size in columns}
        cells = self.cells(record, widths)
        text = Text("●" if tid in self.marked else " ", style="bold yellow")
        for column, size in columns:
            cell = cells.get(column.key) or Text("")
            if cell.cell_len > size:
                cell = cell.copy()
                cell.truncate(size, overflow="ellipsis")
            text.append_text(cell)
            text.append(" " * (size - cell.cell_len + 1))
        if selected:
            row_style = self.get_component_rich_style(
                "training-list--cursor" if self.has_focus else "training-list--cursor-blurred")
        elif index % 2:
            row_style = self.get_component_rich_style("training-list--odd")
        else:
            row_style = Style()
        style = base + row_style
        # The row's style goes under each cell's own (a status keeps its colour on the cursor).
        return Strip(text.render(self.app.console), text.cell_len).adjust_cell_length(width, style).apply_style(style)
