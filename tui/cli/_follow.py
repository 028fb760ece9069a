"""Following trainings until they end, for `logs --follow`, `watch` and `train --watch`.

Two ways to learn what happens, chosen per tick:
- a replitrack instance (TUI or `listen`) owns the store: it receives webhooks and polls, so we
  only read what it writes — the training's log file as it grows and the store's records
  (reloaded when the file changes). Nothing is sent to Replicate.
- nobody owns it: we poll Replicate ourselves (every `interval` seconds) through the
  TrainingService, taking the store's lock only for the moment of each update, so a TUI started
  meanwhile is not locked out (we then switch to reading what it writes).

Both report, per tick, the status view of each training and the log text that is new since the
last tick (by character offset into the training's cumulative log).
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config
from core.errors import (
    NetworkError,
    RateLimitError,
    ReplitrackError,
    ServerError,
    StoreInUseError,
)
from core.backoff import Backoff
from core.models import ID_PATTERN, Status, parse_time, utcnow
from core.store import DB_FILE, JOURNAL_FILE, LOG_DIR
from core.views import status_view
from tui.cli import _common as c
from tui.cli import _output as o

OWNED_TICK = 0.25  # reading local files is cheap: stay close to what the owner shows
RELOAD_EVERY = 1.0  # seconds: re-read the owner's store at least this often
MAX_BACKOFF = 60.0


@dataclass
class Tick:
    views: dict[str, dict[str, Any]]
    texts: dict[str, str] = field(default_factory=dict)  # new log text per training id
    offsets: dict[str, int] = field(default_factory=dict)  # where each text starts (characters)

    @property
    def done(self) -> bool:
        return bool(self.views) and all(view["terminal"] for view in self.views.values())


class _FileTail:
    """The growth of one log file, read by bytes and decoded incrementally (UTF-8 safe)."""

    def __init__(self, path: Path, shown: int, *, keep: bool = False) -> None:
        self.path, self.position, self.chars = path, 0, 0  # bytes read, characters decoded
        self.shown = shown  # characters already reported before this tail started
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pieces: list[str] | None = [] if keep else None  # for whole(): only when asked
        self._whole = ""

    def read(self) -> str:
        """What the file gained since the last read, minus what was already reported."""
        try:
            with open(self.path, "rb") as file:
                file.seek(self.position)
                data = file.read()
        except FileNotFoundError:
            return ""
        self.position += len(data)
        text = self.decoder.decode(data)
        if self._pieces is not None and text:
            self._pieces.append(text)
        before, self.chars = self.chars, self.chars + len(text)
        return text[max(0, self.shown - before):]

    def whole(self) -> str:
        """Everything read so far (kept with keep=True): the cumulative log a progress tracker takes."""
        if self._pieces:
            self._whole += "".join(self._pieces)
            self._pieces.clear()
        return self._whole


class Follower:
    """Yields Ticks for a set of trainings until they are all finished."""

    def __init__(self, refs: Sequence[str], *, offsets: dict[str, int] | None = None, interval: float = 5.0,
                 progress: bool = True) -> None:
        self.refs = list(refs)
        self.ids: list[str] = []  # resolved on the first tick
        self.offsets: dict[str, int] = dict(offsets or {})  # characters of each log already reported
        self.interval = interval
        self.progress = progress  # recompute live progress from the log (watch) or not (logs)
        self.home = config.home()
        self._tails: dict[str, _FileTail] = {}
        self._db_seen: tuple[tuple[int, int, int] | None, ...] | None = None
        self._loaded_at = 0.0
        self._views: dict[str, dict[str, Any]] = {}
        self._records: dict[str, dict[str, Any]] = {}  # as last read from the owner's store
        self._trackers: dict[str, Any] = {}  # ProgressTracker per training, while reading the owner's
        self._next_poll: float = 0.0
        self._backoff = Backoff(interval, max(interval, MAX_BACKOFF))
        self._warned: str | None = None
        self.polling = False  # the mode of the last tick, for the caller's messages

    async def run(self, on_tick: Callable[[Tick], None]) -> dict[str, dict[str, Any]]:
        """Call `on_tick` on each change until every training is finished; return the final views."""
        while True:
            tick = await self.tick()
            on_tick(tick)
            if tick.done:
                return tick.views
            await asyncio.sleep(OWNED_TICK if not self.polling else 0.2)

    async def tick(self) -> Tick:
        owner = c.store_owner()
        if owner is not None:
            self.polling = False
            return self._read_owned(owner)
        self.polling = True
        self._tails.clear()  # the owner's files may be rewritten by us now; re-read from offsets
        self._trackers.clear()
        self._records.clear()
        self._db_seen = None
        return await self._poll()

    # ----- reading what the owner writes -------------------------------------------------------
    def _read_owned(self, owner: c.Owner) -> Tick:
        # The owner appends each commit to the journal and now and then folds it into the database
        # file (a rename): their inodes, sizes and mtimes say something changed. Timestamps are
        # coarse (two writes in one clock tick share one) and inode numbers get reused, so the
        # store is also re-read every RELOAD_EVERY seconds regardless.
        signature = tuple(_stat(self.home / name) for name in (JOURNAL_FILE, DB_FILE))
        now = asyncio.get_running_loop().time()
        changed: set[str] = set()
        if signature != self._db_seen or not self.ids or now - self._loaded_at >= RELOAD_EVERY:
            self._db_seen, self._loaded_at = signature, now
            with c.open_store(write=False) as store:
                self._resolve(store, owner)
                for tid in self.ids:
                    record = store.get(tid)
                    if record is None:
                        continue
                    if self.progress and tid not in self._trackers:
                        from core.updates import Updater  # tinydb: loaded when used, for start-up time

                        # built once from the stored log, then fed only what the log gains
                        self._trackers[tid] = Updater(store).tracker(tid)
                    if record != self._records.get(tid):
                        self._records[tid] = record
                        changed.add(tid)
        texts, starts = {}, {}
        for tid in self.ids:
            tail = self._tails.get(tid)
            if tail is None:
                tail = self._tails[tid] = _FileTail(self.home / LOG_DIR / f"{tid}.log", self.offsets.get(tid, 0),
                                                   keep=self.progress)
            text = tail.read()
            if text:
                texts[tid], starts[tid] = text, tail.chars - len(text)
                self.offsets[tid] = tail.chars
                changed.add(tid)
        for tid in changed & set(self._records):
            self._views[tid] = self._owned_view(tid)
        return Tick(dict(self._views), texts, starts)

    def _owned_view(self, tid: str) -> dict[str, Any]:
        record = self._records[tid]
        tracker = self._trackers.get(tid)
        if tracker is None or Status.parse(record.get("status")).terminal:
            return status_view(record)
        now = utcnow()
        progress = tracker.update(self._tails[tid].whole(), Status.parse(record.get("status")), now=now,
                                  started_at=parse_time(record.get("started_at")),
                                  created_at=parse_time(record.get("created_at")))
        return status_view(record, progress, now=now)

    def _resolve(self, store: Any, owner: c.Owner | None) -> None:
        if self.ids:
            return
        for ref in self.refs:
            record = store.find(ref)
            if record is None:
                from core.service import UnknownTrainingError  # httpx: loaded when used, for start-up time

                if owner is not None:
                    raise ReplitrackError(
                        f"no training {ref!r} in the store of {owner.describe()}: check the id, or "
                        "add it from there (its sync screen) and try again"
                    )
                raise UnknownTrainingError(ref)
            self.ids.append(record["id"])

    # ----- polling Replicate ourselves ---------------------------------------------------------
    async def _poll(self) -> Tick:
        """Ask Replicate without holding the store (a 429's Retry-After or a slow answer must not
        lock out a TUI starting meanwhile), then take the store's lock only to save the answers."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_poll and self._views:
            return Tick(dict(self._views))
        from core.store import Store

        with Store(readonly=True) as reader:
            for notice in reader.notices:
                o.warn(notice)
            if not self.ids:
                self._resolve_polling(reader)
            stored = {tid: reader.get(tid) for tid in self.ids}
        fetched: dict[str, Any] = {}
        delay = self.interval
        async with c.make_client(max_retries=2) as client:
            for tid in self.ids:
                record = stored[tid]
                if record is not None and Status.parse(record.get("status")).terminal:
                    continue
                try:
                    fetched[tid] = await client.get_training(tid)
                except (RateLimitError, NetworkError, ServerError) as error:
                    delay = self._transient(error)
                    if tid not in self._views and record is None:
                        raise  # nothing to show at all: the first fetch must work
                    break
                self._recovered()
        try:
            store = Store(wait=0)  # a TUI starting now must not wait for us, nor we for it
        except StoreInUseError:
            return Tick(dict(self._views))  # someone just took it: the next tick reads from them
        texts: dict[str, str] = {}
        starts: dict[str, int] = {}
        try:
            from core.updates import Updater
            from core.views import tracked_status_view

            updater = Updater(store)
            for training in fetched.values():
                updater.apply(training, source="poll")
            await store.commit()
            for tid in self.ids:
                record = store.get(tid)
                if record is None:
                    continue
                self._views[tid] = tracked_status_view(updater, record) if self.progress else _plain_view(record)
                log = store.read_log(tid)
                shown = self.offsets.get(tid, 0)
                if len(log) > shown:
                    texts[tid], starts[tid] = log[shown:], shown
                    self.offsets[tid] = len(log)
            self._next_poll = loop.time() + delay
        finally:
            store.close()
        return Tick(dict(self._views), texts, starts)

    def _resolve_polling(self, store: Any) -> None:
        """Ids unknown here are fetched from Replicate on the first poll (an id, not a name)."""
        for ref in self.refs:
            record = store.find(ref)
            if record is not None:
                self.ids.append(record["id"])
            elif ID_PATTERN.match(ref):
                self.ids.append(ref)
            else:
                from core.service import UnknownTrainingError  # httpx: loaded when used, for start-up time

                raise UnknownTrainingError(ref)

    def _transient(self, error: ReplitrackError) -> float:
        """A passing failure while following: say so once, wait longer, keep going."""
        if isinstance(error, RateLimitError) and error.retry_after:
            wait = max(self.interval, error.retry_after)
        else:
            wait = self._backoff.next()
        message = f"{error} — still following, next try in {wait:.0f} s"
        if message != self._warned:
            o.warn(message)
            self._warned = message
        return wait

    def _recovered(self) -> None:
        if self._warned:
            o.warn("reached Replicate again; following")
        self._warned = None
        self._backoff.reset()


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _plain_view(record: dict[str, Any]) -> dict[str, Any]:
    return status_view(record)

