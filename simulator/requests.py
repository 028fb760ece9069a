"""What a create request (a training, a prediction) must hold, checked as Replicate's API checks
it: every problem is collected, then answered as one 422 with `invalid_fields`."""

from __future__ import annotations

import re
from typing import Any

from .errors import problem
from .records import DEFAULT_EVENTS, EVENTS

_WEBHOOK_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


class Invalid:
    """The problems found in one request body."""

    def __init__(self) -> None:
        self.fields: list[dict[str, str]] = []

    def bad(self, kind: str, field: str, description: str) -> None:
        self.fields.append({"type": kind, "field": field, "description": description})

    def delivery(self, body: dict[str, Any]) -> tuple[Any, Any, frozenset[str]]:
        """`input` (an object, required), `webhook` and `webhook_events_filter`, as both creates
        take them: the input, the webhook URL or None, and the events it is sent for."""
        given = body.get("input")
        if given is None:
            self.bad("required", "(root)", "input is required")
        elif not isinstance(given, dict):
            self.bad("type", "input", "Invalid type. Expected: object")
        webhook = body.get("webhook")
        if webhook is not None and (not isinstance(webhook, str) or not _WEBHOOK_URL.match(webhook)):
            self.bad("format", "webhook", "Does not match format 'uri'")
        events = body.get("webhook_events_filter")
        if events is not None and (not isinstance(events, list) or not all(e in EVENTS for e in events)):
            self.bad("enum", "webhook_events_filter", f"Each item must be one of: {', '.join(EVENTS)}")
        chosen = frozenset(events) if isinstance(events, list) and events else DEFAULT_EVENTS
        return given, webhook or None, chosen

    def answer(self) -> None:
        """Raise the 422 that names every problem, if there are any."""
        if self.fields:
            raise problem(422, "Input validation failed",
                          "".join(f"- {i['field']}: {i['description']}\n" for i in self.fields),
                          invalid_fields=self.fields)
