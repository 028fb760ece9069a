"""How the scriptable commands print: aligned tables, JSON, colour only on a terminal, untrusted
text made safe for one, and the short forms of percentages, durations and times."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from core.models import Status, parse_time, utcnow
from core.text import terminal_safe


def use_colour(stream: IO[str] | None = None) -> bool:
    """Colour only on a terminal, never when NO_COLOR is set or TERM is dumb."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34",
           "magenta": "35", "cyan": "36"}
STATUS_STYLE = {"succeeded": "green", "failed": "red", "aborted": "red", "canceled": "yellow",
                "processing": "cyan", "starting": "blue"}


def paint(text: str, style: str | None, *, colour: bool) -> str:
    if not colour or not style or not text:
        return text
    codes = ";".join(_STYLES[s] for s in style.split() if s in _STYLES)
    return f"\033[{codes}m{text}\033[0m" if codes else text


def safe_text(text: str, *, terminal: bool) -> str:
    """Log text for `logs`: made safe (core.text) when it goes to a terminal, whether colour is on
    or not; passed on byte for byte when piped."""
    return terminal_safe(text) if terminal else text


def print_json(data: Any, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    stream.flush()


def warn(message: str) -> None:
    print(f"replitrack: {terminal_safe(message)}", file=sys.stderr, flush=True)


def say(message: str) -> None:
    """Human chatter that is not the command's data: stderr, so stdout stays scriptable."""
    print(terminal_safe(message), file=sys.stderr, flush=True)  # messages quote errors from Replicate


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[Sequence[str | None]] | None = None,
                stream: IO[str] | None = None, *, right: Sequence[int] = ()) -> None:
    """Columns aligned on their widest cell; styles (per cell) only on a terminal."""
    from rich.cells import cell_len  # wide characters (CJK, emoji) count double

    stream = stream or sys.stdout
    colour = use_colour(stream)
    widths = [cell_len(h) for h in headers]
    rows = [[terminal_safe(cell, one_line=True) for cell in row] for row in rows]  # untrusted, colour or not
    for row in rows:
        widths = [max(w, cell_len(cell)) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str], cell_styles: Sequence[str | None]) -> str:
        parts = []
        for index, (cell, width) in enumerate(zip(cells, widths)):
            pad = " " * (width - cell_len(cell))
            text = paint(cell, cell_styles[index] if index < len(cell_styles) else None, colour=colour)
            parts.append(pad + text if index in right else text + pad)
        return "  ".join(parts).rstrip()

    stream.write(line(headers, ["bold"] * len(headers)) + "\n")
    for index, row in enumerate(rows):
        stream.write(line(row, styles[index] if styles else []) + "\n")
    stream.flush()


def fmt_percent(value: Any) -> str:
    return f"{float(value):.0f}%" if isinstance(value, (int, float)) else "-"


def fmt_duration(seconds: float | None) -> str:
    """`45s`, `12m05s`, `3h04m`: short and fixed in form."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def remaining_seconds(view: dict[str, Any], now: datetime | None = None) -> float | None:
    """What is left, from the absolute `eta_at` when known (a stored `eta_seconds` goes stale)."""
    if view.get("terminal") or Status.parse(view.get("status")).terminal:
        return None
    eta_at = parse_time(view.get("eta_at"))
    if eta_at is not None:
        return max(0.0, (eta_at - (now or utcnow())).total_seconds())
    eta = view.get("eta_seconds")
    return float(eta) if isinstance(eta, (int, float)) else None


def fmt_loss(value: Any) -> str:
    return f"{float(value):.4g}" if isinstance(value, (int, float)) else "-"


def stage_label(stage: str | None) -> str:
    if not stage:
        return "-"
    from core.logparse import Stage

    try:
        return Stage(stage).label
    except ValueError:
        return stage


def short_time(iso: str | None, now: datetime | None = None) -> str:
    """`2026-11-24 00:12` in local time, or `-`."""
    when = parse_time(iso)
    return when.astimezone().strftime("%Y-%m-%d %H:%M") if when else "-"
