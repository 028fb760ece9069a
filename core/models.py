"""The training as Replicate describes it, and the few rules every part of replitrack shares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Literal

from core.text import terminal_safe


class Status(StrEnum):
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"  # ended before it ever ran

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def rank(self) -> int:
        """Status only moves forward: starting (0) → processing (1) → terminal (2)."""
        return 2 if self.terminal else (1 if self is Status.PROCESSING else 0)

    @classmethod
    def parse(cls, value: str | None) -> Status:
        try:
            return cls(value or "starting")
        except ValueError:
            return cls.STARTING  # an unknown future status is shown as not yet running


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.ABORTED})
# The webhook events a training can send (`webhook_events_filter`); replitrack asks for all four.
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
# Where an update came from, and what applying it did (trainings in core.updates, tries in core.predictions).
Source = Literal["webhook", "poll", "create", "cancel", "import", "sync", "replay", "download"]
Outcome = Literal["created", "updated", "unchanged", "duplicate", "stale", "final"]
# A training or version id as replitrack accepts it (it goes into URL paths).
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# A model or trainer name, `owner/name`, as Replicate allows them.
OWNER_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9][A-Za-z0-9_.-]*)$")

# Replicate sends 3, 6 or 9 fractional digits; datetime.fromisoformat takes at most 6.
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: object) -> datetime | None:
    """Parse Replicate's ISO-8601 timestamps (`Z` or offset, 0–9 fractional digits) as aware UTC."""
    if not value or not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00"), count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_time(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def web_url(training_id: str) -> str:
    return f"https://replicate.com/p/{training_id}"


@dataclass(slots=True)
class Training:
    """One training object from the API or a webhook body. Unknown fields are kept in `extra`."""

    id: str
    status: Status
    model: str = ""  # the trainer, owner/name
    version: str = ""  # the trainer's version id
    destination: str | None = None  # owner/name; not in the spec, known when we created it
    input: dict[str, Any] = field(default_factory=dict)
    logs: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    web_url: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Training:
        """Type-checked at the edge: what identifies the training (id, status, timestamps) must
        have its type or this raises ValueError (a webhook gets 400); descriptive fields of the
        wrong type are dropped, and text loses terminal control sequences (core.text)."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise ValueError("not a training object: it has no 'id'")
        status = data.get("status")
        if status is not None and not isinstance(status, str):
            raise ValueError(f"'status' must be a string, not {type(status).__name__}")
        times = {}
        for key in ("created_at", "started_at", "completed_at"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"'{key}' must be an ISO 8601 string or null, not {type(value).__name__}")
            times[key] = parse_time(value)
        output = _clean_output(data.get("output"))
        destination = _text(data.get("destination"))
        if destination is None or not OWNER_NAME.match(destination):
            destination = _destination_from_output(output)
        urls = found if isinstance(found := data.get("urls"), dict) else {}
        logs = data.get("logs")
        source = data.get("source")
        return cls(
            id=data["id"],
            status=Status.parse(status),
            model=_text(data.get("model")) or "",
            version=_text(data.get("version")) or "",
            destination=destination,
            input=given if isinstance(given := data.get("input"), dict) else {},
            logs=logs if isinstance(logs, str) else None,
            output=output,
            error=_text(data.get("error"), keep_lines=True),
            created_at=times["created_at"],
            started_at=times["started_at"],
            completed_at=times["completed_at"],
            metrics=metrics if isinstance(metrics := data.get("metrics"), dict) else {},
            source=source if source in ("web", "api") else None,
            web_url=replicate_web_url(urls.get("web"), data["id"]),
        )

    @property
    def output_version(self) -> str | None:
        return (self.output or {}).get("version")

    @property
    def output_weights(self) -> str | None:
        return (self.output or {}).get("weights")


_REPLICATE_WEB = re.compile(r"^https://replicate\.com/[^\s\\]*$")


def replicate_web_url(value: object, training_id: str) -> str:
    """The training's page: a URL from Replicate only if it is https on replicate.com (the app
    opens it in a browser), else the page Replicate uses for every training."""
    if isinstance(value, str) and _REPLICATE_WEB.match(value) and value.isprintable():
        return value
    return web_url(training_id)


def _text(value: object, *, keep_lines: bool = False) -> str | None:
    """A text field from Replicate: strings only, made terminal-safe (one line unless asked)."""
    if not isinstance(value, str):
        return None
    return terminal_safe(value, one_line=not keep_lines)


def _clean_output(output: object) -> dict[str, Any] | None:
    """A training's output (`version`, `weights`): a dict whose two fields are strings or absent."""
    if not isinstance(output, dict):
        return None
    cleaned = dict(output)
    for key in ("version", "weights"):
        if key in cleaned:
            cleaned[key] = _text(cleaned[key])
    return cleaned


def _destination_from_output(output: dict[str, Any] | None) -> str | None:
    version = (output or {}).get("version")
    return version.split(":", 1)[0] if isinstance(version, str) and ":" in version else None
