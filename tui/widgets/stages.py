"""The stage timeline: stages done (with how long each took), the current one, and those to come."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widget import Widget

from core.logparse import Stage
from core.models import Status, parse_time
from tui.format import duration


def timeline(view: dict[str, Any], now: datetime) -> list[tuple[str, str, str]]:
    """(state, label, duration) rows; state is done, current, next, or the outcome's name."""
    seen: list[tuple[str, datetime | None]] = [(str(s), parse_time(t)) for s, t in view.get("stages") or []]
    status = Status.parse(view.get("status"))
    end = parse_time(view.get("completed_at")) if status.terminal else None
    rows: list[tuple[str, str, str]] = []
    for index, (name, began) in enumerate(seen):
        try:
            stage = Stage(name)
        except ValueError:
            continue
        if stage.terminal:
            rows.append((stage.value, stage.label, ""))
            continue
        following = seen[index + 1][1] if index + 1 < len(seen) else (end or now)
        took = duration((following - began).total_seconds()) if began and following else "–"
        last = index == len(seen) - 1
        state = "current" if last and not status.terminal else ("stopped" if last else "done")
        rows.append((state, stage.label, took))
    if not status.terminal:
        current = Stage(seen[-1][0]) if seen and seen[-1][0] in Stage._value2member_map_ else Stage.QUEUED
        if not seen:
            rows.append(("current", Stage.QUEUED.label, ""))
        rows += [("next", s.label, "") for s in Stage.timeline() if s.order > current.order]
    elif status is not Status.SUCCEEDED and not any(r[0] in ("failed", "canceled") for r in rows):
        rows.append(("canceled" if status is not Status.FAILED else "failed", str(status), ""))
    return rows


_MARK = {
    "done": ("✔", "green"), "current": ("▶", "bold dodger_blue2"), "next": ("·", "dim"),
    "stopped": ("✘", "red"), "succeeded": ("★", "bold green"), "failed": ("✘", "bold red"),
    "canceled": ("■", "bold magenta"),
}


class StageTimeline(Widget):
    DEFAULT_CSS = """
    StageTimeline { height: auto; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, str, str]] = []

    def show(self, view: dict[str, Any], now: datetime) -> None:
        rows = timeline(view, now)
        if rows != self.rows:
            resize = len(rows) != len(self.rows)
            self.rows = rows
            self.refresh(layout=resize)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(1, len(self.rows))

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        width = max(20, self.size.width - 2)
        for index, (state, label, took) in enumerate(self.rows):
            mark, style = _MARK.get(state, ("·", "dim"))
            text.append(f"{mark} ", style=style)
            room = max(4, width - 12)  # the label never runs into the duration column
            label = label if len(label) <= room else label[:room - 1] + "…"
            text.append(label.ljust(room), style=style if state != "done" else "")
            text.append(took.rjust(9), style="dim" if state != "current" else "bold")
            if index < len(self.rows) - 1:
                text.append("\n")
        return text
