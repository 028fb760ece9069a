"""Webhook delivery like Replicate's: signed (Standard Webhooks), throttled, terminal one retried.

Per training, messages go out one at a time in the order they were produced (a worker task per
training), unless a fault reorders, duplicates or drops them. Each message's body is the
training as GET would have shown it when the event happened.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import aiohttp
from standardwebhooks import Webhook

from .faults import Faults
from .formats import new_message_id
from .records import TrainingRecord

log = logging.getLogger(__name__)

THROTTLE_SECONDS = 0.5  # `output` and `logs`: at most one per training per 500 ms (wall clock)
# Terminal retries, in simulated seconds (divided by the speed): the last about a minute after.
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class Message:
    id: str
    event: str
    training_id: str
    url: str
    body: str
    terminal: bool


@dataclass(frozen=True)
class Delivery:
    """One line of the simulator's delivery record (what happened to one send attempt)."""

    message_id: str
    event: str
    training_id: str
    url: str
    attempt: int
    outcome: str  # delivered, failed, dropped, held, duplicate
    status: int | None = None
    error: str | None = None


@dataclass
class _Channel:
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    last_sent: dict[str, float] = field(default_factory=dict)
    pending: dict[str, asyncio.TimerHandle] = field(default_factory=dict)


class WebhookSender:
    def __init__(
        self,
        *,
        secret: str,
        faults: Callable[[], Faults],
        rng: random.Random,
        clock: Callable[[], float],
        speed: Callable[[], float],
        snapshot: Callable[[TrainingRecord], str],
    ) -> None:
        self._signer = Webhook(secret)
        self._faults = faults
        self._rng = rng
        self._clock = clock
        self._speed = speed
        self._snapshot = snapshot
        self._channels: dict[str, _Channel] = {}
        self._session: aiohttp.ClientSession | None = None
        self.retry_delays: Sequence[float] = RETRY_DELAYS
        self.deliveries: list[Delivery] = []

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT))

    async def stop(self) -> None:
        workers = []
        for channel in self._channels.values():
            for handle in channel.pending.values():
                handle.cancel()
            channel.pending.clear()
            if channel.worker and not channel.worker.done():
                channel.worker.cancel()
                workers.append(channel.worker)
        await asyncio.gather(*workers, return_exceptions=True)
        self._channels.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- producing messages --------------------------------------------------------------------

    def notify(self, training: TrainingRecord, event: str) -> None:
        """Something happened to a training; send a webhook if it asked for this event."""
        if not training.webhook or event not in training.events:
            return
        channel = self._channels.setdefault(training.id, _Channel())
        if event in ("logs", "output"):
            self._throttled(training, channel, event)
            return
        if event == "completed":
            for handle in channel.pending.values():
                handle.cancel()
            channel.pending.clear()
        self._enqueue(training, channel, event)

    def _throttled(self, training: TrainingRecord, channel: _Channel, event: str) -> None:
        if event in channel.pending:
            return  # the scheduled send will carry the latest state
        loop = asyncio.get_running_loop()
        now = loop.time()
        since = now - channel.last_sent.get(event, float("-inf"))
        if since >= THROTTLE_SECONDS:
            channel.last_sent[event] = now
            self._enqueue(training, channel, event)
        else:
            channel.pending[event] = loop.call_later(
                THROTTLE_SECONDS - since, self._send_pending, training, channel, event
            )

    def _send_pending(self, training: TrainingRecord, channel: _Channel, event: str) -> None:
        channel.pending.pop(event, None)
        if training.terminal:
            return  # the completed webhook carries everything
        channel.last_sent[event] = asyncio.get_running_loop().time()
        self._enqueue(training, channel, event)

    def _enqueue(self, training: TrainingRecord, channel: _Channel, event: str) -> None:
        assert training.webhook is not None
        message = Message(
            id=new_message_id(self._rng),
            event=event,
            training_id=training.id,
            url=training.webhook,
            body=self._snapshot(training),
            terminal=event == "completed",
        )
        channel.queue.put_nowait(message)
        if channel.worker is None or channel.worker.done():
            channel.worker = asyncio.create_task(self._work(channel), name=f"webhooks-{training.id}")

    # ---- sending -------------------------------------------------------------------------------

    async def _work(self, channel: _Channel) -> None:
        held: Message | None = None
        while True:
            message = await channel.queue.get()
            if held is None and not message.terminal and self._faults().take_reorder():
                held = message
                self._record(message, 0, "held")
                continue
            await self._deliver(message)
            if held is not None:
                await self._deliver(held)  # arrives after a newer message: out of order
                held = None
            if message.terminal and channel.queue.empty():
                return

    async def _deliver(self, message: Message) -> None:
        if self._faults().take_drop():
            self._record(message, 0, "dropped")
            return
        copies = 2 if self._faults().take_duplicate() else 1
        for copy in range(copies):
            if copy:
                self._record(message, 0, "duplicate")
            if message.terminal:
                await self._send_with_retries(message)
            else:
                await self._send(message, 1)

    async def _send_with_retries(self, message: Message) -> None:
        delays = list(self.retry_delays)
        attempt = 1
        while not await self._send(message, attempt):
            if not delays:
                return
            await asyncio.sleep(delays.pop(0) / self._speed())
            attempt += 1

    async def _send(self, message: Message, attempt: int) -> bool:
        """One POST; True on a 2xx answer. Signed afresh each attempt with the same id."""
        if self._session is None:
            return False
        timestamp = int(self._clock())
        signature = self._signer.sign(
            message.id, datetime.fromtimestamp(timestamp, timezone.utc), message.body
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Replicate-Webhook/1.0",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        try:
            async with self._session.post(
                message.url, data=message.body.encode("utf-8"), headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
            self._record(message, attempt, "failed", error=f"{type(error).__name__}: {error}")
            return False
        ok = 200 <= status < 300
        self._record(message, attempt, "delivered" if ok else "failed", status=status)
        return ok

    def _record(self, message: Message, attempt: int, outcome: str, *, status: int | None = None,
                error: str | None = None) -> None:
        self.deliveries.append(
            Delivery(message.id, message.event, message.training_id, message.url, attempt, outcome, status, error)
        )
        if outcome == "failed":
            log.info("webhook %s (%s) to %s failed: %s", message.id, message.event, message.url, error or status)
