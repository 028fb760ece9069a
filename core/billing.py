"""Billed time and an estimated cost. Replicate bills a training (and a prediction) by the seconds
it ran on its hardware: `metrics.predict_time`. No prices are shipped (they change); a cost is
estimated only from prices the user wrote in config.json:

    {"prices_per_second": {"gpu-h100": 0.001525},
     "hardware": {"ostris/flux-dev-lora-trainer": "gpu-h100", "*": "gpu-a40-large"}}

`hardware` says which SKU a trainer runs on (`*`: any other trainer); the estimate is
billed seconds × that SKU's price, in the currency of the prices.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from core import config

RELOAD_SECONDS = 5.0  # the config is read again at most this often (views are built per update)


@dataclass(frozen=True)
class Prices:
    per_second: dict[str, float]
    hardware: dict[str, str]

    def sku(self, trainer: str | None) -> str | None:
        return self.hardware.get(trainer or "") or self.hardware.get("*")


_cache: tuple[float, Prices] | None = None


def prices() -> Prices:
    """The user's prices (empty when none are set, or the file cannot be read)."""
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < RELOAD_SECONDS:
        return _cache[1]
    try:
        data = json.loads(config.config_path().read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    raw_prices: dict[str, Any] = data.get("prices_per_second") or {}
    raw_hardware: dict[str, Any] = data.get("hardware") or {}
    raw_prices = raw_prices if isinstance(raw_prices, dict) else {}
    raw_hardware = raw_hardware if isinstance(raw_hardware, dict) else {}
    found = Prices(
        {str(k): float(v) for k, v in raw_prices.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0},
        {str(k): v for k, v in raw_hardware.items() if isinstance(v, str)},
    )
    _cache = (now, found)
    return found


def forget_prices() -> None:
    """Read the config again on next use (after it was written)."""
    global _cache
    _cache = None


def billed_seconds(record: dict[str, Any]) -> float | None:
    """`metrics.predict_time`: the seconds Replicate bills (None until it ended)."""
    value = (record.get("metrics") or {}).get("predict_time")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def estimated_cost(record: dict[str, Any], table: Prices | None = None) -> float | None:
    """Billed seconds × the user's price for the trainer's hardware; None without both."""
    seconds = billed_seconds(record)
    table = table or prices()
    sku = table.sku(record.get("trainer"))
    if seconds is None or sku is None or sku not in table.per_second:
        return None
    return round(seconds * table.per_second[sku], 4)


def billed_text(record: dict[str, Any]) -> str | None:
    """`276 s billed · ≈ 0.42 (estimate, gpu-h100 at your price)`, or None before it ended."""
    seconds = billed_seconds(record)
    if seconds is None:
        return None
    text = f"{seconds:,.1f} s billed"
    cost = estimated_cost(record)
    if cost is not None:
        text += f" · ≈ {cost:,.2f} (estimate: {prices().sku(record.get('trainer'))} at your price)"
    return text
