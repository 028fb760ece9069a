"""How the scriptable commands print: aligned tables, JSON, colour only on a terminal, untrusted
text made safe for one, and the short forms of percentages, durations and times."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from core.models import parse_time
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
    from rich.cells import cell_len  # wide characters count double; rich: loaded when used, for start-up time

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


def short_time(iso: str | None, now: datetime | None = None) -> str:
    """`2026-11-24 00:12` in local time, or `-`."""
    when = parse_time(iso)
    return when.astimezone().strftime("%Y-%m-%d %H:%M") if when else "-"
