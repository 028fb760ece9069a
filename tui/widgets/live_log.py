"""The live log tail: incoming text is buffered and written ~10 times a second in one call.

`Log.write_lines` of 100k lines costs about as much as 100 single `write_line` calls, so a burst
of thousands of lines per second becomes a handful of writes and the UI never stalls. `max_lines`
bounds memory; the whole history is a separate view (`LogHistoryScreen`) that reads the file.
"""

from __future__ import annotations

import re

from textual.binding import Binding
from textual.widgets import Log

from core.text import terminal_safe

FLUSH_EVERY = 0.1  # seconds
TAIL_LINES = 2_000  # the live tail; the whole log is one key away (h)
# A burst longer than this many characters per tail line is split from its end only: splitting a
# million-line log's 3.5 MB suffix to keep its last 2,000 lines held a frame for ~100 ms.
TAIL_CHARS_PER_LINE = 400
BACKGROUND_RETRY = 0.5  # seconds between flush attempts while another screen is on top
_NEWLINES = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    return _NEWLINES.split(text)


class LiveLog(Log):
    """A `Log` fed with raw chunks of the cumulative log; it keeps the unfinished last line aside.
    Lines are never cut: longer ones scroll sideways (←/→), and `cut_lines` says there are some."""

    BINDINGS = [
        Binding("j", "scroll_down", "Down", show=False, id="log.down"),
        Binding("k", "scroll_up", "Up", show=False, id="log.up"),
        Binding("g", "scroll_home", "Top", show=False, id="log.top"),
        Binding("G", "scroll_end", "End", show=False, key_display="G", id="log.end"),
    ]

    def __init__(self, *, max_lines: int = TAIL_LINES, id: str | None = None) -> None:
        # highlight=False: a log is shown exactly as the trainer printed it (never markup).
        super().__init__(highlight=False, max_lines=max_lines, auto_scroll=True, id=id)
        self._pending: list[str] = []
        self._partial = ""
        self._scheduled = False

    def feed(self, chunk: str) -> None:
        """Queue text (any size, any line breaks); it appears within FLUSH_EVERY seconds."""
        if not chunk:
            return
        self._pending.append(chunk)
        if not self._scheduled and self.is_attached:
            self._scheduled = True
            self.set_timer(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        if not self.screen.is_current:  # under another screen: keep buffering, try again later
            self._scheduled = True
            self.set_timer(BACKGROUND_RETRY, self.flush)
            return
        text = self._partial + "".join(self._pending)
        self._pending.clear()
        if self.max_lines and len(text) > self.max_lines * TAIL_CHARS_PER_LINE:
            cut = _NEWLINES.search(text, len(text) - self.max_lines * TAIL_CHARS_PER_LINE)
            if cut is not None:  # else one giant line: kept whole
                text = text[cut.end():]
        lines = split_lines(text)
        self._partial = lines.pop()  # the line still being written (may be "")
        if self.max_lines and len(lines) > self.max_lines:
            lines = lines[-self.max_lines:]  # older ones would be dropped at once anyway
        lines = [terminal_safe(line) for line in lines]  # Log lets ESC through: an OSC retitles the terminal
        if lines:
            # Log only follows when the view already sits at the end, which it does not after
            # lines written before the first layout; following here means always the end (f pauses).
            self.write_lines(lines, scroll_end=False)
            if self.auto_scroll:
                self.scroll_end(animate=False, immediate=True, x_axis=False)

    @property
    def cut_lines(self) -> bool:
        """Some line is wider than the view (the rest is one ← → away)."""
        return self.virtual_size.width > self.scrollable_content_region.width

    @property
    def following(self) -> bool:
        return self.auto_scroll

    def set_following(self, follow: bool) -> None:
        self.auto_scroll = follow
        if follow:
            self.scroll_end(animate=False)
