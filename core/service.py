"""What replitrack does with Replicate, for every front end (TUI, CLI, local API): refresh,
import, sync, cancel, retry, start, and the adaptive poller. Everything goes through the Updater,
so a poll, a webhook and a button press obey the same rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.client import ReplicateClient
from core.errors import ReplitrackError, RateLimitError
from core.models import Status, Training, parse_time, utcnow
from core.store import Store
from core.updates import Source, UpdateResult, Updater

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
POLL_RUNNING = 5.0  # a running training with no webhooks
POLL_WITH_WEBHOOKS = 60.0  # webhooks flow: polling is only a check
WEBHOOKS_FLOWING = 90.0  # a webhook within this many seconds means webhooks flow


@dataclass(frozen=True)
class SyncItem:
    """One training whose local state differs from Replicate's."""

    training_id: str
    destination: str | None
    trainer: str
    local_status: str | None  # None: never imported
    remote_status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.training_id, "destination": self.destination, "trainer": self.trainer,
                "local_status": self.local_status, "remote_status": self.remote_status,
                "reason": self.reason}


class TrainingService:
    def __init__(self, store: Store, client: ReplicateClient, *, updater: Updater | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.client = client
        self.updater = updater or Updater(store, clock=clock)
        self.clock = clock
        self.webhook_url: str | None = None  # set while a tunnel is up; used for new trainings
        self.poll_running, self.poll_with_webhooks = POLL_RUNNING, POLL_WITH_WEBHOOKS

    async def _apply(self, training: Training, source: Source) -> UpdateResult:
        result = self.updater.apply(training, source=source)
        await self.store.commit()
        return result

    async def refresh(self, training_id: str, source: Source = "poll") -> UpdateResult:
        """Fetch one training from Replicate and merge it."""
        return await self._apply(await self.client.get_training(training_id), source)

    async def import_all(self, on_page: Callable[[int, int], None] | None = None) -> int:
        """Bring every training of the account into the store, page by page (100 each).

        `on_page(pages_done, trainings_so_far)` lets a front end show progress. Returns the count.
        """
        url: str | None = None
        pages = count = 0
        while True:
            trainings, url = await self.client.list_trainings_page(url)
            for training in trainings:
                self.updater.apply(training, source="import")
            count += len(trainings)
            pages += 1
            await self.store.commit()
            if on_page:
                on_page(pages, count)
            if not url:
                return count

    async def differences(self) -> list[SyncItem]:
        """Trainings whose local state differs from Replicate: finished remotely but not locally,
        missed updates, never imported."""
        items = []
        async for remote in self.client.list_trainings():
            local = self.store.get(remote.id)
            if local is None:
                reason = "never imported"
            elif local.get("status") == remote.status:
                continue
            elif Status.parse(local.get("status")).rank >= remote.status.rank:
                continue  # we are ahead of the (cached) list: nothing to take from it
            elif remote.status.terminal:
                reason = f"{remote.status} on Replicate, {local.get('status')} here"
            else:
                reason = f"missed updates: {remote.status} on Replicate, {local.get('status')} here"
            items.append(SyncItem(remote.id, remote.destination or (local or {}).get("destination"),
                                  remote.model, local.get("status") if local else None,
                                  str(remote.status), reason))
        return items

    async def sync(self, training_ids: Sequence[str]) -> list[UpdateResult]:
        """Fetch each training in full (with logs) and merge it."""
        return [await self.refresh(tid, source="sync") for tid in training_ids]

    async def sync_completed(self, ref: str, version: str | None = None) -> UpdateResult:
        """Sync a finished model whose completion was missed. `ref` is a training id or a
        destination `owner/name` (its latest training); `version` (`owner/name:id` or just the id)
        is checked against the training's output."""
        record = self.store.find(ref)
        if record is None:
            raise UnknownTrainingError(ref)
        result = await self.refresh(record["id"], source="sync")
        if version and result.record:
            got = result.record.get("output_version") or ""
            if got.split(":")[-1] != version.split(":")[-1]:
                raise ReplitrackError(
                    f"training {record['id']} produced version {got or '(none yet)'}, not {version}: "
                    "check the version, or sync without one"
                )
        return result

    async def cancel(self, training_id: str) -> UpdateResult:
        return await self._apply(await self.client.cancel_training(training_id), "cancel")

    async def start(self, trainer: str, destination: str, input: dict[str, Any], *,
                    version: str | None = None, webhook: str | None = None) -> UpdateResult:
        """Create a training; with a webhook URL (given, or the tunnel's) ask for every event."""
        webhook = webhook or self.webhook_url
        training = await self.client.create_training(
            trainer, version, destination, input, webhook=webhook,
            webhook_events_filter=list(WEBHOOK_EVENTS) if webhook else None,
        )
        training.destination = training.destination or destination
        return await self._apply(training, "create")

    async def retry(self, training_id: str) -> UpdateResult:
        """A new training with the same trainer, version, destination and inputs."""
        record = self.store.find(training_id)
        if record is None:
            raise UnknownTrainingError(training_id)
        if not record.get("destination") or not record.get("trainer"):
            raise ReplitrackError(
                f"cannot retry {record['id']}: its destination model is unknown (it was started "
                "elsewhere and has no output). Start it again with `replitrack train`."
            )
        return await self.start(record["trainer"], record["destination"], dict(record.get("input") or {}),
                                version=record.get("trainer_version") or None)

    # ----- polling -----------------------------------------------------------------------------
    def poll_interval(self, record: dict[str, Any], now: datetime) -> float | None:
        """How often to poll a training: often while it runs and no webhooks come, rarely when
        they flow (a safety net), never once it is finished."""
        if Status.parse(record.get("status")).terminal:
            return None
        last = self.updater.last_webhook.get(record["id"])
        if last is not None and (now - last).total_seconds() < WEBHOOKS_FLOWING:
            return self.poll_with_webhooks
        return self.poll_running

    async def poll_forever(self, on_error: Callable[[ReplitrackError], None] | None = None) -> None:
        """Poll the unfinished trainings, each at its own pace, until cancelled. Honours 429."""
        polled: dict[str, datetime] = {}
        while True:
            now = self.clock()
            due: list[str] = []
            for record in self.store.unfinished():
                interval = self.poll_interval(record, now)
                last = polled.get(record["id"]) or parse_time(record.get("updated_at"))
                if interval is not None and (last is None or (now - last).total_seconds() >= interval):
                    due.append(record["id"])
            pause = 1.0
            for tid in due:
                polled[tid] = now
                try:
                    await self.refresh(tid)
                except RateLimitError as error:
                    pause = max(pause, error.retry_after or 30.0)
                    if on_error:
                        on_error(error)
                    break
                except ReplitrackError as error:
                    if on_error:
                        on_error(error)
                except Exception as error:  # one odd training must not stop polling the others
                    log.debug("polling %s failed", tid, exc_info=True)
                    if on_error:
                        on_error(ReplitrackError(f"polling {tid} failed ({type(error).__name__}: {error}); "
                                                 "the other trainings are still polled"))
            await asyncio.sleep(pause)


class UnknownTrainingError(ReplitrackError):
    def __init__(self, ref: str) -> None:
        super().__init__(
            f"no training {ref!r} in the local store: check the id (Replicate training ids look like "
            "zz4ibbonubfz7carwiefibzgga) or run `replitrack import` to fetch your trainings"
        )
        self.ref = ref
