"""What the TUI may know of the webhook listener: its state and its event log (the requests it
received, with verdicts), and replaying one. Screens use this, never the listener itself (they
import no listener and no aiohttp): the app owns one `Inspector` over whatever listener it was
given, which may come late (built after the first paint) or never (polling only).

The listener is read through the small structural interface below (`status`, `events`,
`receiver`, `subscribe`), which `listener.service.Listener` provides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from core.errors import ReplitrackError

VERDICTS = ("accepted", "duplicate", "ignored", "rejected", "error")


class EventLike(Protocol):
    """One received request, as `listener.events.EventRecord` holds it."""

    id: str
    received_at: str
    method: str
    path: str
    verdict: str
    reason: str
    http_status: int
    response: dict[str, Any]
    headers: dict[str, str]
    body_size: int
    training_id: str | None
    event: str | None
    status: str | None
    progress: float | None
    duration_ms: float
    replay_of: str | None


class Inspector:
    """The listener's state and event log for the screens; None-safe when there is no listener."""

    def __init__(self, listener: Callable[[], Any]) -> None:
        self._listener = listener  # read each time: the app's listener may be set after start
        self._unsubscribe: Callable[[], None] | None = None
        self._subscribed_to: Any = None

    @property
    def listener(self) -> Any:
        return self._listener()

    @property
    def available(self) -> bool:
        """A listener runs and keeps an event log."""
        listener = self.listener
        return listener is not None and getattr(listener, "events", None) is not None

    def attach(self, on_event: Callable[[Any], None]) -> None:
        """Call `on_event(record)` for every request the (current) listener records; idempotent."""
        listener = self.listener
        if listener is None or listener is self._subscribed_to:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = listener.subscribe(on_event)
        self._subscribed_to = listener

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self._subscribed_to = None

    def status(self) -> dict[str, Any] | None:
        """Tunnel state, URLs, counts, secret source (the local API's GET /api/listener)."""
        listener = self.listener
        if listener is None:
            return None
        return dict(listener.status.to_dict())

    def events(self, limit: int = 2_000, *, training_id: str | None = None,
               verdicts: Iterable[str] | None = None) -> list[EventLike]:
        """Newest first."""
        if not self.available:
            return []
        wanted = set(verdicts) if verdicts else None
        found: list[EventLike] = []
        for record in self.listener.events.latest(limit if wanted is None else 10**9, training_id=training_id):
            if wanted is None or record.verdict in wanted:
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def event(self, event_id: str) -> EventLike | None:
        return self.listener.events.get(event_id) if self.available else None

    def body(self, event_id: str) -> bytes | None:
        """The raw body as received, or None when it was not kept (too large, evicted)."""
        return self.listener.events.read_body(event_id) if self.available else None

    async def replay(self, event_id: str) -> EventLike:
        """Run a recorded request through the receiver again, verified as of when it was signed."""
        if not self.available or getattr(self.listener, "receiver", None) is None:
            raise ReplitrackError("no listener is running, so there is nothing to replay into")
        record = self.event(event_id)
        if record is None:
            raise ReplitrackError(f"no event {event_id} in the event log (it keeps the newest ones)")
        body = self.body(event_id)
        if body is None:
            raise ReplitrackError(f"cannot replay {event_id}: its body was not kept (too large, or evicted to "
                                  "keep the event log within its bound)")
        stamp = record.headers.get("webhook-timestamp", "")
        result: EventLike = await self.listener.receiver.receive(
            body, record.headers, method=record.method, path=record.path, replay_of=event_id,
            verify_at=float(stamp) if stamp.isdigit() else None)
        return result
