"""A view of a whole log file of any size: only line offsets are kept, only visible lines are read.

The file is mapped (mmap) and indexed once (byte offset of each line start, in an array: 8 bytes
per line, so a 1,000,000-line log costs 8 MB); `render_line` decodes just the lines on screen.
Search runs a compiled regex over the mapped bytes, so finding a word in 100 MB takes a fraction
of a second and never copies the file into Python strings.
"""

from __future__ import annotations

import asyncio
import bisect
import mmap
import os
import re
from array import array
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.text import terminal_safe
from tui.format import colour

MAX_WIDTH = 2_000  # horizontal scroll range; longer lines are cut there
_NEWLINE = re.compile(b"\n")


def read_tail(path: Path, lines: int, *, block: int = 1 << 16) -> str:
    """The last `lines` lines of a file, read from its end (never the whole file)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            end = position = file.tell()
            data = b""
            while position > 0 and data.count(b"\n") <= lines:
                step = min(block, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
            del end
    except FileNotFoundError:
        return ""
    parts = data.split(b"\n")
    if position > 0:
        parts = parts[1:]  # the first piece is the cut end of an earlier line
    return b"\n".join(parts[-(lines + 1):]).decode("utf-8", errors="replace")


def display(raw: bytes) -> str:
    """A stored line as a terminal would show it: the last `\\r` segment, no control characters."""
    text = raw.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    return terminal_safe(text.expandtabs(4), one_line=True)


@dataclass(frozen=True)
class _Growth:
    """What a file gained since `base` bytes: a fresh map over all of it and the new line starts."""

    base: int
    map: mmap.mmap
    size: int
    starts: list[int]
    longest: int


class LogFile:
    """Line index over a growing file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.starts = array("q", [0])
        self.indexed = 0  # bytes indexed so far
        self.longest = 0
        self._map: mmap.mmap | None = None
        self._size = 0

    def update(self) -> bool:
        """Index what was appended since the last call; True if there are new lines."""
        growth = self.scan()
        return self.apply(growth) if growth is not None else False

    def scan(self) -> _Growth | None:
        """Map and index what the file gained, without touching what readers use: this may run in
        a worker thread while the UI thread reads lines; `apply` (on the UI thread) swaps it in."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None
        base = self.indexed
        if size <= base:
            return None
        with open(self.path, "rb") as file:
            new_map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        size = len(new_map)
        # finditer runs in C; only the list of offsets is built in Python (≈ 0.25 s per 10⁶ lines).
        starts = [match.end() for match in _NEWLINE.finditer(new_map, base, size)]
        longest = self.longest
        if starts:
            # The widest line in a sample of the new ones is enough for the horizontal scroll range.
            new = [self.starts[-1], *starts]
            sample = range(1, len(new), max(1, len(new) // 2_000))
            longest = max([longest, *(new[i] - new[i - 1] for i in sample)])
        last_start = starts[-1] if starts else self.starts[-1]
        return _Growth(base, new_map, size, starts, min(MAX_WIDTH, max(longest, size - last_start)))

    def apply(self, growth: _Growth) -> bool:
        """Swap in what `scan` built (UI thread only); a scan made from an older state is dropped."""
        if growth.base != self.indexed:
            growth.map.close()
            return False
        old, self._map = self._map, growth.map
        if old is not None:
            old.close()  # no reader holds it: readers run on this thread
        self._size = growth.size
        self.starts.extend(growth.starts)
        self.longest = growth.longest
        self.indexed = growth.size
        return bool(growth.starts) or growth.size > 0

    @property
    def line_count(self) -> int:
        """Lines, counting a last unfinished line; an empty file has none."""
        if self._size == 0:
            return 0
        return len(self.starts) if self.starts[-1] < self._size else len(self.starts) - 1

    def line(self, index: int) -> str:
        if self._map is None or not 0 <= index < self.line_count:
            return ""
        start = self.starts[index]
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else self._size
        return display(self._map[start:min(end, start + MAX_WIDTH * 4)])

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def find(self, pattern: re.Pattern[bytes], after_line: int, *, backwards: bool = False) -> int | None:
        """The next (or previous) line holding a match, wrapping around the file."""
        if self._map is None or self.line_count == 0:
            return None
        data = self._map
        if not backwards:
            begin = self.starts[after_line + 1] if after_line + 1 < len(self.starts) else self._size
            match = pattern.search(data, begin) or pattern.search(data, 0, begin)
            return self.line_of(match.start()) if match else None
        limit = self.starts[max(0, after_line)]
        last = None
        for match in pattern.finditer(data, 0, limit):
            last = match
        if last is None:
            for match in pattern.finditer(data, limit):
                last = match
        return self.line_of(last.start()) if last else None

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


class LogFileView(ScrollView, can_focus=True):
    """Scrollable, searchable view over a LogFile; draws only the visible lines."""

    DEFAULT_CSS = """
    LogFileView { height: 1fr; }
    """
    BINDINGS = [  # the usual scrolling keys; not in the footer, which keeps the screen's own
        Binding(key, action, description, show=False)
        for key, action, description in (
            ("up", "scroll_up", "Up"), ("down", "scroll_down", "Down"),
            ("pageup", "page_up", "Page up"), ("pagedown", "page_down", "Page down"),
            ("home", "scroll_home", "Top"), ("end", "scroll_end", "End"),
            ("left", "scroll_left", "Left"), ("right", "scroll_right", "Right"),
        )
    ]

    def __init__(self, path: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.file = LogFile(path)
        self.pattern: re.Pattern[str] | None = None
        self.current: int | None = None  # the line of the current match

    def reload(self) -> None:
        """Index what the file gained, then show it (following the end if we were there)."""
        at_end = self.scroll_offset.y >= self.max_scroll_y - 1
        if self.file.update():
            self.shown(at_end)

    async def reload_in_thread(self) -> None:
        """The same, indexing in a worker thread (a 10⁶-line log never freezes the screen); the
        result is swapped in here, on the UI thread, never under a reader's feet."""
        at_end = self.scroll_offset.y >= self.max_scroll_y - 1
        growth = await asyncio.to_thread(self.file.scan)
        if growth is not None and self.file.apply(growth):
            self.shown(at_end)

    def shown(self, at_end: bool) -> None:
        self.virtual_size = Size(self.file.longest + 2, self.file.line_count)
        if at_end:
            self.scroll_end(animate=False)
        self.refresh()

    def on_unmount(self) -> None:
        self.file.close()

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        if index >= self.file.line_count:
            return Strip.blank(self.size.width)
        number = f"{index + 1:>8} "
        text = self.file.line(index)
        segments = [Segment(number, Style(dim=True))]
        x = self.scroll_offset.x
        visible = text[x:x + max(0, self.size.width - len(number))]
        if self.pattern is not None and self.pattern.search(text):
            # search hits in the theme's colours: $warning, the current one $primary
            style = Style(bgcolor=colour("primary" if index == self.current else "warning"),
                          color=colour("background"), bold=True)
            cursor = 0
            for match in self.pattern.finditer(visible):
                segments.append(Segment(visible[cursor:match.start()]))
                segments.append(Segment(match.group(), style))
                cursor = match.end()
            segments.append(Segment(visible[cursor:]))
        else:
            segments.append(Segment(visible))
        return Strip(segments).adjust_cell_length(self.size.width)

    def search(self, query: str, *, backwards: bool = False) -> int | None:
        """Go to the next line matching `query` (case-insensitive, plain text). None: not found."""
        if not query:
            self.pattern, self.current = None, None
            self.refresh()
            return None
        self.pattern = re.compile(re.escape(query), re.IGNORECASE)
        needle = re.compile(re.escape(query.encode()), re.IGNORECASE)
        start = self.current if self.current is not None else self.scroll_offset.y - 1
        found = self.file.find(needle, start, backwards=backwards)
        self.current = found
        if found is not None:
            self.scroll_to(y=max(0, found - self.size.height // 2), animate=False)
        self.refresh()
        return found
