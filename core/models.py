"""The training as Replicate describes it, and the few rules every part of replitrack shares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Literal


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


def parse_time(value: str | None) -> datetime | None:
    """Parse Replicate's ISO-8601 timestamps (`Z` or offset, 0–9 fractional digits) as aware UTC."""
    if not value:
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
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise ValueError("not a training object: it has no 'id'")
        output = data.get("output") if isinstance(data.get("output"), dict) else None
        destination = data.get("destination") or _destination_from_output(output)
        urls = found if isinstance(found := data.get("urls"), dict) else {}
        logs = data.get("logs")
        return cls(
            id=data["id"],
            status=Status.parse(data.get("status")),
            model=str(data.get("model") or ""),
            version=str(data.get("version") or ""),
            destination=destination,
            input=given if isinstance(given := data.get("input"), dict) else {},
            logs=logs if isinstance(logs, str) else None,
            output=output,
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            created_at=parse_time(data.get("created_at")),
            started_at=parse_time(data.get("started_at")),
            completed_at=parse_time(data.get("completed_at")),
            metrics=metrics if isinstance(metrics := data.get("metrics"), dict) else {},
            source=data.get("source"),
            web_url=urls.get("web") or web_url(data["id"]),
        )

    @property
    def output_version(self) -> str | None:
        return (self.output or {}).get("version")

    @property
    def output_weights(self) -> str | None:
        return (self.output or {}).get("weights")


def _destination_from_output(output: dict[str, Any] | None) -> str | None:
    version = (output or {}).get("version")
    return version.split(":", 1)[0] if isinstance(version, str) and ":" in version else None
