"""The JSON shapes replitrack shows to scripts, shared by the CLI (`--json`) and the local API.

Both front ends call these functions, so `replitrack status ID --json` and
`GET /api/models/{id}/status` answer the same bytes for the same state. The keys are a public
contract (documented in the README): add keys if needed, never rename or remove one.

status_view keys, in order:
  id, trainer, trainer_version, destination, status, terminal, stage, overall_percent, step,
  total_steps, train_percent, rate, loss, lr, eta_seconds, eta_at, created_at, started_at,
  completed_at, updated_at, output_version, output_weights, error, input, metrics, source,
  web_url, stages, billed_seconds, estimated_cost, estimated
Every key is always present (null when unknown). `terminal` is true once the status is
succeeded, failed, canceled or aborted. `stages` is [[stage, first_seen_iso], ...]. `estimated` is
true while overall_percent is a guess from the clock alone (a trainer that prints nothing readable
and no history to go by).

logs_view keys: id, status, terminal, offset, next_offset, total_chars, logs
  `logs` is the text from character `offset` of the cumulative log; pass `next_offset` back as
  `since` to get only what came after (that is how `logs --follow` and the local API page).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from core.billing import billed_seconds, estimated_cost
from core.models import Status, format_time, utcnow

STATUS_KEYS: tuple[str, ...] = (
    "id", "trainer", "trainer_version", "destination", "status", "terminal", "stage",
    "overall_percent", "step", "total_steps", "train_percent", "rate", "loss", "lr",
    "eta_seconds", "eta_at", "created_at", "started_at", "completed_at", "updated_at",
    "output_version", "output_weights", "error", "input", "metrics", "source", "web_url", "stages",
    "billed_seconds", "estimated_cost", "estimated",
)
LOGS_KEYS: tuple[str, ...] = ("id", "status", "terminal", "offset", "next_offset", "total_chars", "logs")

# Fields a live Progress knows better than the stored record (the record is only rewritten
# when progress moved ≥ 1 point, so its step/loss/ETA lag behind).
_LIVE_KEYS = ("stage", "overall_percent", "step", "total_steps", "train_percent", "rate", "loss",
              "lr", "eta_seconds", "estimated")


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def is_terminal(record: dict[str, Any]) -> bool:
    return Status.parse(record.get("status")).terminal


def status_view(record: dict[str, Any], progress: _HasToDict | dict[str, Any] | None = None, *,
                now: datetime | None = None) -> dict[str, Any]:
    """One training as scripts see it: the stored record, with live progress when given.

    `progress` is a `core.progress.Progress` (or its `to_dict()`), e.g. from
    `Updater.tracker(id).estimate(now)`; omit it to show what the store holds.
    """
    source = with_progress(record, progress, now=now)
    view: dict[str, Any] = {key: source.get(key) for key in STATUS_KEYS}
    view["terminal"] = is_terminal(record)
    view["input"] = dict(record.get("input") or {})
    view["metrics"] = dict(record.get("metrics") or {})
    view["stages"] = [list(item) for item in record.get("stages") or []]
    # metrics.predict_time, and an estimate only from prices the user set (core/billing.py)
    view["billed_seconds"], view["estimated_cost"] = billed_seconds(record), estimated_cost(record)
    view["estimated"] = bool(view["estimated"]) and not view["terminal"]  # a guess from the clock alone
    if view["terminal"]:
        view["eta_seconds"], view["eta_at"] = None, None  # nothing left to wait for
    return view


def with_progress(record: dict[str, Any], progress: _HasToDict | dict[str, Any] | None = None, *,
                  now: datetime | None = None) -> dict[str, Any]:
    """The stored record (a copy) with the fresher figures of a live estimate merged in, as the
    app keeps every training: the record is rewritten only when progress moved ≥ 1 point."""
    merged = dict(record)
    if progress is not None and not is_terminal(record):
        live = progress if isinstance(progress, dict) else progress.to_dict()
        for key in _LIVE_KEYS:
            if key in live:
                merged[key] = str(live[key]) if key == "stage" and live[key] is not None else live[key]
        eta = merged.get("eta_seconds")
        merged["eta_at"] = format_time((now or utcnow()) + timedelta(seconds=eta)) if eta is not None else None
    return merged


def tracked_status_view(updater: Any, record: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """`status_view` with the live estimate of the training's tracker (`Updater.tracker(id)`,
    rebuilt from the stored log on first use). The CLI and the local API both answer this."""
    if is_terminal(record):
        return status_view(record)
    now = now or utcnow()
    progress = updater.tracker(record["id"]).estimate(now)
    return status_view(record, progress, now=now)


def logs_view(record: dict[str, Any], log: str, *, since: int = 0, tail: int | None = None) -> dict[str, Any]:
    """The log of a training from character `since` on, or only its last `tail` lines."""
    total = len(log)
    offset = min(max(0, since), total)
    if tail is not None:
        offset = max(offset, tail_offset(log, tail))
    return {
        "id": record.get("id"),
        "status": record.get("status"),
        "terminal": is_terminal(record),
        "offset": offset,
        "next_offset": total,
        "total_chars": total,
        "logs": log[offset:],
    }


def tail_offset(log: str, lines: int) -> int:
    """Where the last `lines` lines of `log` start (a trailing newline does not count as a line)."""
    if lines <= 0:
        return len(log)
    end = len(log) - 1 if log.endswith("\n") else len(log)
    position = end
    for _ in range(lines):
        position = log.rfind("\n", 0, position)
        if position < 0:
            return 0
    return position + 1
