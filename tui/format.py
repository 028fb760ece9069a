"""How numbers, times and statuses read on screen. Pure functions, shared by every screen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from core.formats import remaining_seconds
from core.formats import duration as duration, number as number, percent as percent, rate as rate  # the screens' too
from core.models import Status, parse_time
from core.text import terminal_safe

# Colours come from the running Textual theme ($primary, $success, ...): the app hands its
# variables to `use_theme` when it starts and whenever the theme changes; until then, these are
# textual-dark's. Rich text cannot name a theme variable, so the formatters look them up here.
THEME: dict[str, str] = {
    "primary": "#0178D4", "secondary-lighten-3": "#507BB3", "accent": "#FEA62B", "warning": "#FEA62B",
    "error": "#B93C5B", "success": "#4EBF71", "background": "#121212", "foreground-darken-3": "#A2A2A2",
    "panel-lighten-2": "#45505A",
}
# Each status in the colour of a theme variable.
STATUS_COLOUR: dict[str, str] = {
    "starting": "warning", "processing": "primary", "succeeded": "success", "failed": "error",
    "canceled": "secondary-lighten-3", "aborted": "secondary-lighten-3",
}
_BOLD = {"processing", "succeeded", "failed"}
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


def use_theme(variables: dict[str, str]) -> None:
    """Take the colours of the app's theme (`App.get_css_variables()`)."""
    THEME.update({name: value for name, value in variables.items()
                  if name in THEME and len(value) == 7 and value.startswith("#")})


def colour(variable: str) -> str:
    """The theme's colour for a variable (`primary`, `warning`, ...), as Rich takes it."""
    return THEME[variable]


def status_colour(status: str | None) -> str:
    """The colour a training's status is shown in (processing, or unknown, in primary)."""
    return colour(STATUS_COLOUR.get(str(status or ""), "primary"))


def status_text(status: str | None) -> Text:
    name = str(Status.parse(status)) if status else "unknown"
    style = f"bold {status_colour(name)}" if name in _BOLD else status_colour(name) if name in STATUS_COLOUR else ""
    return Text(f"{STATUS_ICON.get(name, '?')} {name}", style=style)


def bar(fraction: float, width: int, *, style: str | None = None, empty_style: str | None = None) -> Text:
    """A bar drawn with eighth blocks, `width` cells wide (in $primary on $panel unless told)."""
    fraction = min(1.0, max(0.0, fraction))
    cells = fraction * width
    full = int(cells)
    partial = _EIGHTHS[int((cells - full) * 8)] if full < width else ""
    filled = "█" * full + (partial if partial.strip() else "")
    text = Text(filled, style=style or colour("primary"))
    text.append("░" * (width - len(filled)), style=empty_style or colour("panel-lighten-2"))
    return text


def progress_cell(record: dict[str, Any], width: int = 12) -> Text:
    """Bar + percent for the models table."""
    value = float(record.get("overall_percent") or 0)
    text = bar(value / 100, width, style=status_colour(record.get("status")))
    text.append(f" {value:3.0f}%")
    return text


def safe(value: Any) -> Text:
    """Untrusted text (names, logs, errors): never parsed as markup, never a terminal control."""
    return Text(terminal_safe(value))
