"""How numbers, times and statuses read on screen. Pure functions, shared by every screen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from core.formats import remaining_seconds
from core.formats import duration as duration, number as number, percent as percent, rate as rate  # the screens' too
from core.models import Status, parse_time

# One colour per status, from Textual's theme variables where the widget allows it.
STATUS_STYLE: dict[str, str] = {
    "starting": "yellow",
    "processing": "bold dodger_blue2",
    "succeeded": "bold green",
    "failed": "bold red",
    "canceled": "magenta",
    "aborted": "magenta",
}
STATUS_ICON: dict[str, str] = {
    "starting": "◌", "processing": "●", "succeeded": "✔", "failed": "✘", "canceled": "■", "aborted": "■",
}
_EIGHTHS = " ▏▎▍▌▋▊▉"


def ago(when: str | datetime | None, now: datetime) -> str:
    moment = parse_time(when) if isinstance(when, str) or when is None else when
    if moment is None:
        return "–"
    seconds = (now - moment).total_seconds()
    return "just now" if seconds < 2 else f"{duration(seconds)} ago"


def ago_short(when: str | None, now: datetime) -> str:
    """`12s`, `5m`, `3h`, `2d`: for narrow columns."""
    moment = parse_time(when)
    if moment is None:
        return "–"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def elapsed_seconds(record: dict[str, Any], now: datetime) -> float | None:
    start = parse_time(record.get("started_at")) or parse_time(record.get("created_at"))
    if start is None:
        return None
    end = parse_time(record.get("completed_at")) if Status.parse(record.get("status")).terminal else None
    return max(0.0, ((end or now) - start).total_seconds())


def eta_text(record: dict[str, Any], now: datetime) -> str:
    """Time left, counted down from `eta_at` between updates so the tick needs no new data."""
    if Status.parse(record.get("status")).terminal:
        return "done" if record.get("status") == "succeeded" else "–"
    return duration(remaining_seconds(record, now))


def status_text(status: str | None) -> Text:
    name = str(Status.parse(status)) if status else "unknown"
    return Text(f"{STATUS_ICON.get(name, '?')} {name}", style=STATUS_STYLE.get(name, ""))


def bar(fraction: float, width: int, *, style: str = "dodger_blue2", empty_style: str = "grey35") -> Text:
    """A bar drawn with eighth blocks, `width` cells wide."""
    fraction = min(1.0, max(0.0, fraction))
    cells = fraction * width
    full = int(cells)
    partial = _EIGHTHS[int((cells - full) * 8)] if full < width else ""
    filled = "█" * full + (partial if partial.strip() else "")
    text = Text(filled, style=style)
    text.append("░" * (width - len(filled)), style=empty_style)
    return text


def progress_cell(record: dict[str, Any], width: int = 12) -> Text:
    """Bar + percent for the models table."""
    value = float(record.get("overall_percent") or 0)
    status = str(record.get("status") or "")
    style = {"succeeded": "green", "failed": "red", "canceled": "magenta", "aborted": "magenta"}.get(
        status, "dodger_blue2")
    text = bar(value / 100, width, style=style)
    text.append(f" {value:3.0f}%")
    return text


def safe(value: Any) -> Text:
    """Untrusted text (names, logs, errors) as-is: never parsed as markup."""
    return Text("" if value is None else str(value))
