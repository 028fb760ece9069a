"""How durations, percents, numbers and stages read for a person: the one set the command line,
the app and the local API share. Unknown values read as `–`."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from core.models import Status, parse_time, utcnow

UNKNOWN = "–"


def duration(seconds: float | None) -> str:
    """`42s`, `3m 05s`, `1h 02m`, `2d 03h`."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return UNKNOWN
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def percent(value: float | None) -> str:
    """`42%`; one decimal under 10 %, where a tenth is a visible move (`7.5%`)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return UNKNOWN
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def number(value: float | None) -> str:
    """Loss and lr: short, scientific when small or large."""
    if not isinstance(value, (int, float)):
        return UNKNOWN
    if value == 0:
        return "0"
    return f"{value:.3e}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}"


def rate(value: float | None) -> str:
    """Steps per second, or seconds per step when slower than one a second (as tqdm prints)."""
    if not value:
        return UNKNOWN
    return f"{value:.2f} it/s" if value >= 1 else f"{1 / value:.2f} s/it"


def stage_label(stage: str | None) -> str:
    """The stage as a person reads it (`downloading weights`); an unknown name as it is."""
    if not stage:
        return UNKNOWN
    from core.logparse import Stage  # the parser's regexes: loaded when a label is asked for, for start-up time

    try:
        return Stage(stage).label
    except ValueError:
        return stage


def remaining_seconds(view: dict[str, Any], now: datetime | None = None) -> float | None:
    """Time left, from the absolute `eta_at` when known (so it counts down between updates; a
    stored `eta_seconds` goes stale); None once the training ended or when unknown."""
    if view.get("terminal") or Status.parse(view.get("status")).terminal:
        return None
    eta_at = parse_time(view.get("eta_at"))
    if eta_at is not None:
        return max(0.0, (eta_at - (now or utcnow())).total_seconds())
    eta = view.get("eta_seconds")
    return float(eta) if isinstance(eta, (int, float)) else None
