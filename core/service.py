"""What replitrack does with Replicate, for every front end (TUI, CLI, local API): refresh,
import, sync, cancel, retry, start, and the adaptive poller. Everything goes through the Updater,
so a poll, a webhook and a button press obey the same rules."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.bodies import BodyDecoder, is_large
from core.client import ReplicateClient
from core.errors import ApiError, NotFoundError, ReplitrackError, RateLimitError
from core.models import WEBHOOK_EVENTS, Status, Training, parse_time, utcnow
from core.store import Store
from core.models import Source
from core.updates import UpdateResult, Updater

log = logging.getLogger(__name__)

POLL_RUNNING = 5.0  # a running training with no webhooks
POLL_WITH_WEBHOOKS = 60.0  # webhooks flow: polling is only a check
WEBHOOKS_FLOWING = 90.0  # a webhook within this many seconds means webhooks flow
DETAILS_PER_SECOND = 4.0  # background fetches of imported trainings: leaves room for everything else
DESTINATION_PAGES = 20  # how far back (pages of 100) `sync owner/name` looks for a destination
POLL_QUEUED_MAX = 300.0  # a queued training while webhooks flow: its `start` webhook will come
POLL_IDLE_MAX = 60.0  # polling only: a running training whose log has not changed for a while


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
        self.poll_running: float = POLL_RUNNING
        self.poll_with_webhooks: float = POLL_WITH_WEBHOOKS
        self._details_tried: set[str] = set()  # fetched in full this session (even if the log was empty)
        self.bodies = BodyDecoder()  # large bodies (whole logs) are decoded off the event loop
        self._quiet: dict[str, int] = {}  # training → polls in a row that brought nothing new

    async def _apply(self, training: Training, source: Source) -> UpdateResult:
        result = self.updater.apply(training, source=source)
        await self.store.commit()
        return result

    async def refresh(self, training_id: str, source: Source = "poll") -> UpdateResult:
        """Fetch one training from Replicate and merge it."""
        return await self.poll(training_id, source=source)

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

    def missing_details(self) -> list[str]:
        """Finished trainings stored without their log, most recent first: an import lists
        trainings without logs, so their final stage, progress and error are not known yet."""
        records = [r for r in self.store.trainings()
                   if Status.parse(r.get("status")).terminal and r["id"] not in self._details_tried
                   and self.store.log_length(r["id"]) == 0]
        records.sort(key=lambda r: str(r.get("created_at") or ""), reverse=True)
        return [r["id"] for r in records]

    async def fetch_details(self, training_ids: Sequence[str] | None = None, *,
                            per_second: float = DETAILS_PER_SECOND,
                            on_each: Callable[[int, int], None] | None = None) -> int:
        """Fetch finished trainings in full (log, error, final stage and progress), most recent
        first, at most `per_second` a second; a 429 waits as long as Replicate says. Resumable:
        each one is stored as it comes, and the next call takes those that still lack a log.
        Other errors (offline) stop it; returns how many were fetched."""
        ids = self.missing_details() if training_ids is None else list(training_ids)
        pause = 1.0 / per_second if per_second > 0 else 0.0
        for done, tid in enumerate(ids, 1):
            while True:
                try:
                    await self.refresh(tid, source="import")
                except RateLimitError as error:
                    await asyncio.sleep(error.retry_after or 30.0)
                    continue
                except NotFoundError:
                    pass  # deleted on Replicate meanwhile: nothing more to learn
                break
            self._details_tried.add(tid)
            if on_each:
                on_each(done, len(ids))
            if pause and done < len(ids):
                await asyncio.sleep(pause)
        return len(ids)

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
        is checked against the training's output (VersionMismatchError, after storing it).
        A training the store never saw is fetched from Replicate and stored with its log and
        final progress (an id directly; a destination by its latest training on the account)."""
        record = self.store.find(ref)
        if record is not None:
            training_id = record["id"]
        elif "/" in ref:
            training_id = await self._latest_training_of(ref)
        else:
            training_id = ref
        try:
            result = await self.refresh(training_id, source="sync")
        except NotFoundError:
            if record is None:
                raise UnknownTrainingError(ref, on_replicate=True) from None
            raise
        if version and result.record:
            got = result.record.get("output_version") or ""
            if got.split(":")[-1] != version.split(":")[-1]:
                raise VersionMismatchError(
                    f"training {training_id} produced version {got or '(none yet)'}, not {version}: "
                    "check the version, or sync without one"
                )
        return result

    async def _latest_training_of(self, destination: str) -> str:
        """The newest training on the account whose destination is `destination`. Replicate names
        a training's destination only in a succeeded training's output version."""
        pages, url = 0, None
        while pages < DESTINATION_PAGES:
            trainings, url = await self.client.list_trainings_page(url)
            pages += 1
            for training in trainings:
                named = training.destination or (training.output_version or "").partition(":")[0]
                if named == destination:
                    return training.id
            if not url:
                break
        raise UnknownTrainingError(destination, on_replicate=True)

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
        """How often to poll a training, in seconds (None: never again).

        - finished: never;
        - its webhooks flow: once a minute at most, as a check (the poller counts from the last
          webhook, so while they keep coming it is not polled at all);
        - queued while other trainings' webhooks flow: backing off from a minute to five (its
          `start` webhook says when it starts);
        - otherwise (polling only, or a training whose webhooks do not come here): every 5 s,
          doubling up to a minute while polls bring nothing new (a long run whose log is still).
        """
        status = Status.parse(record.get("status"))
        if status.terminal:
            return None
        last = self.updater.last_webhook.get(record["id"])
        if last is not None and (now - last).total_seconds() < WEBHOOKS_FLOWING:
            return self.poll_with_webhooks
        quiet = min(self._quiet.get(record["id"], 0), 8)
        if status == Status.STARTING and self._webhooks_flowing(now):
            return min(POLL_QUEUED_MAX, self.poll_with_webhooks * 2.0 ** quiet)
        return min(max(POLL_IDLE_MAX, self.poll_running), self.poll_running * 2.0 ** quiet)

    def _webhooks_flowing(self, now: datetime) -> bool:
        latest = max(self.updater.last_webhook.values(), default=None)
        return latest is not None and (now - latest).total_seconds() < WEBHOOKS_FLOWING

    async def poll(self, training_id: str, *, source: Source = "poll") -> UpdateResult:
        """One poll: fetch the training and merge it. A large body (a long log) is decoded in the
        worker process, and only the part of its log the store lacks comes back to this one."""
        body = await self.client.get_training_body(training_id)
        if not is_large(body):
            try:
                training = Training.from_api(json.loads(body))
            except (ValueError, TypeError, AttributeError) as error:
                raise _not_a_training(self.client.base_url, error) from None
            return await self._apply(training, source)
        decoded = await self.bodies.decode(body, log_start=self._log_start)
        if decoded.error is not None:
            raise _not_a_training(self.client.base_url, decoded.error[1])
        try:
            await self.updater.prepare(decoded.payload["id"])
            result = await self.updater.apply_pieces(decoded.payload, decoded.log_start, decoded.pieces,
                                                     source=source)
        except (ValueError, TypeError, AttributeError) as error:
            raise _not_a_training(self.client.base_url, error) from None
        await self.store.commit()
        return result

    def _log_start(self, payload: dict[str, Any]) -> int | None:
        try:
            return self.store.log_length(payload["id"])
        except (ValueError, TypeError, KeyError):
            return None

    async def poll_forever(self, on_error: Callable[[ReplitrackError], None] | None = None) -> None:
        """Poll the unfinished trainings, each at its own pace, until cancelled. Honours 429."""
        polled: dict[str, datetime] = {}
        while True:
            now = self.clock()
            due: list[str] = []
            for record in self.store.unfinished():
                tid = record["id"]
                interval = self.poll_interval(record, now)
                # The last news counts, a webhook's as much as a poll's.
                seen = [t for t in (polled.get(tid), self.updater.last_webhook.get(tid)) if t is not None]
                last = max(seen) if seen else parse_time(record.get("updated_at"))
                if interval is not None and (last is None or (now - last).total_seconds() >= interval):
                    due.append(tid)
            pause = 1.0
            for tid in due:
                polled[tid] = now
                try:
                    result = await self.refresh(tid)
                except RateLimitError as error:
                    pause = max(pause, error.retry_after or 30.0)
                    if on_error:
                        on_error(error)
                    break
                except ReplitrackError as error:
                    if on_error:
                        on_error(error)
                    continue
                except Exception as error:  # one odd training must not stop polling the others
                    log.debug("polling %s failed", tid, exc_info=True)
                    if on_error:
                        on_error(ReplitrackError(f"polling {tid} failed ({type(error).__name__}: {error}); "
                                                 "the other trainings are still polled"))
                    continue
                self._quiet[tid] = 0 if result.new_log or result.written else self._quiet.get(tid, 0) + 1
            await asyncio.sleep(pause)


def _not_a_training(base_url: str, error: object) -> ApiError:
    return ApiError(f"Replicate answered with something that is not a training ({error}): "
                    f"check that REPLICATE_BASE_URL ({base_url}) is Replicate's API", status=200)


class UnknownTrainingError(ReplitrackError):
    def __init__(self, ref: str, *, on_replicate: bool = False) -> None:
        if on_replicate and "/" in ref:
            message = (f"no training of {ref!r} on Replicate, nor in the local store: check the name (a "
                       "destination is known from a succeeded training's output), or give the training id")
        elif on_replicate:
            message = (f"no training {ref!r} on Replicate, nor in the local store: check the id "
                       "(Replicate training ids look like zz4ibbonubfz7carwiefibzgga)")
        else:
            message = (f"no training {ref!r} in the local store: check the id (Replicate training ids look "
                       "like zz4ibbonubfz7carwiefibzgga) or run `replitrack import` to fetch your trainings")
        super().__init__(message)
        self.ref = ref


class VersionMismatchError(ReplitrackError):
    """A synced training's output is not the version the caller expected."""
