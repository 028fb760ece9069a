"""The one place where news about a training (a poll, a webhook, a create or cancel answer, an
import) is merged into the store. Whatever the source, the same rules hold:

- a webhook id seen before is a no-op (Replicate reuses the id when it retries);
- status only moves forward (starting → processing → terminal) and a terminal status is final:
  a later update may only fill in what the terminal state lacked (longer logs, output, metrics);
- a log shorter than the one stored is ignored (out-of-order delivery), a longer one appends only
  its new suffix to the training's log file;
- progress is recomputed on every update but written to the store only when it changed
  significantly (≥ 1 point, a new stage, a status change), not on every log line.

Subscribers (the TUI, `replitrack listen`) hear about every applied update.
"""

from __future__ import annotations

import asyncio
import codecs
import sys
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from core.bodies import PIECE_CHARS, decode_piece
from core.models import Outcome, Source, Status, Training, format_time, parse_time, utcnow
from core.observers import Observers
from core.predictions import PredictionBook, PredictionUpdate
from core.progress import Progress, ProgressTracker, RunRecord, epochs_from_input, run_record, steps_from_input
from core.store import Store

TRACKERS_KEPT = 512  # live trackers in memory; others are rebuilt from their log when needed
TRACKER_BYTES = 256 * 1024 * 1024  # and their estimated memory: a million-step log's series is MBs
HISTORY_KEPT = 50  # recent successful runs a trainer's typical duration is learned from



@dataclass(frozen=True)
class UpdateResult:
    training_id: str
    outcome: Outcome
    source: Source
    record: dict[str, Any] | None
    progress: Progress | None = None
    new_log: str = ""  # what this update added to the log
    written: bool = False  # the stored record changed
    became_terminal: bool = False
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field → (before, after)

    @property
    def accepted(self) -> bool:
        """The update was taken into account (a no-op for a duplicate or a stale update)."""
        return self.outcome in ("created", "updated", "unchanged")


# What `changes` reports, and what a significant change of the stored record means.
_WATCHED = ("status", "stage", "overall_percent", "output_version", "error", "destination")


class Updater:
    """Applies updates to a Store and tells subscribers. One per process that owns the store."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self._trackers: OrderedDict[str, ProgressTracker] = OrderedDict()  # most recently used last
        # Per tracker, the stored log's end that its parser has not consumed yet (an unfinished
        # line): with it the parser is fed only what each update adds, never the whole log.
        self._unparsed: dict[str, str] = {}
        self._footprints: dict[str, int] = {}  # tracker → its estimated bytes, updated as it is fed
        self._history: dict[str, list[RunRecord]] = {}  # trainer → its recent successes, measured
        self._subscribers: Observers[UpdateResult] = Observers()
        self.last_webhook: dict[str, datetime] = {}  # when webhooks last flowed, for adaptive polling
        self.predictions = PredictionBook(store, clock=clock)  # tries of trained versions

    def _parent_update(self, update: PredictionUpdate) -> UpdateResult:
        """What subscribers hear of a prediction: its parent training was updated (never "created":
        that would make the webhook receiver fetch the prediction's id as a training)."""
        outcome: Outcome = "updated" if update.outcome == "created" else update.outcome
        return UpdateResult(update.training_id, outcome, update.source,
                            self.store.get(update.training_id), written=update.accepted)

    def subscribe(self, callback: Callable[[UpdateResult], None]) -> Callable[[], None]:
        """Call `callback` after every applied update; returns a function that unsubscribes."""
        return self._subscribers.subscribe(callback)

    def tracker(self, training_id: str, training: Training | None = None) -> ProgressTracker:
        """The live progress of a training, rebuilt from its stored log on first use (in one go:
        `prepare` builds it a piece at a time instead, for a long log)."""
        if training_id in self._trackers:
            self._trackers.move_to_end(training_id)
            return self._trackers[training_id]
        record = self.store.get(training_id) or {}
        tracker = self._new_tracker(record, training)
        unparsed = ""
        if record:
            text = self.store.read_log(training_id)
            tracker.update(
                text, Status.parse(record.get("status")),
                now=self.clock(), started_at=parse_time(record.get("started_at")),
                created_at=parse_time(record.get("created_at")),
            )
            unparsed = text[tracker.state.consumed:]
        self._trackers[training_id] = tracker
        self._unparsed[training_id] = unparsed
        self._measure(training_id, tracker)
        return tracker

    def _new_tracker(self, record: dict[str, Any], training: Training | None = None) -> ProgressTracker:
        given = record.get("input") or (training.input if training else None)
        trainer = record.get("trainer") or (training.model if training else "")
        return ProgressTracker(self.history(trainer), configured_steps=steps_from_input(given),
                               configured_epochs=epochs_from_input(given))

    def _measure(self, training_id: str, tracker: ProgressTracker) -> None:
        """Note the tracker's size, then evict the least recently used ones beyond the bounds
        (count and bytes; never the one just used): rebuilding one costs a read of its log."""
        self._footprints[training_id] = _footprint(tracker) + len(self._unparsed.get(training_id, ""))
        while len(self._trackers) > 1 and (len(self._trackers) > TRACKERS_KEPT
                                           or sum(self._footprints.values()) > TRACKER_BYTES):
            evicted, _ = self._trackers.popitem(last=False)
            self._unparsed.pop(evicted, None)
            self._footprints.pop(evicted, None)

    @property
    def tracker_bytes(self) -> int:
        """The estimated memory of the live trackers."""
        return sum(self._footprints.values())

    def _feed(self, training_id: str, tracker: ProgressTracker, new_log: str, status: Status, *,
              now: datetime, started_at: datetime | None, created_at: datetime | None) -> Progress:
        """Give the tracker what the store's log just gained (see `_feed_text`)."""
        progress, self._unparsed[training_id] = _feed_text(
            tracker, self._unparsed.get(training_id, ""), new_log, status, now=now, started_at=started_at,
            created_at=created_at)
        if training_id in self._trackers:
            self._measure(training_id, tracker)
        return progress

    async def prepare(self, training_id: str) -> None:
        """Build a training's tracker from its stored log a piece at a time, a turn of the event
        loop apart, unless it is live: after a restart, a million-line log would otherwise be
        parsed in one go by the next update. Call it before applying a large body."""
        record = self.store.get(training_id)
        if training_id in self._trackers or record is None:
            return
        tracker = self._new_tracker(record)
        status = Status.parse(record.get("status"))
        times = {"started_at": parse_time(record.get("started_at")),
                 "created_at": parse_time(record.get("created_at"))}
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # as Store.read_log reads
        unparsed = ""
        try:
            with open(self.store.log_path(training_id), "rb") as file:
                while chunk := file.read(PIECE_CHARS):
                    meanwhile = Status.PROCESSING if status.terminal else status  # it ends with the end
                    _, unparsed = _feed_text(tracker, unparsed, decoder.decode(chunk), meanwhile,
                                             now=self.clock(), **times)
                    await asyncio.sleep(0)
                    if training_id in self._trackers:
                        return  # an update built it meanwhile (in one go): that one is current
        except FileNotFoundError:
            pass
        _, unparsed = _feed_text(tracker, unparsed, decoder.decode(b"", final=True), status, now=self.clock(), **times)
        if training_id not in self._trackers:
            self._trackers[training_id] = tracker
            self._unparsed[training_id] = unparsed
            self._measure(training_id, tracker)

    def _learn_duration(self, record: dict[str, Any]) -> None:
        """A success adds its measured run to the trainer's history, if that is loaded."""
        history = self._history.get(record.get("trainer", ""))
        if history is not None and (run := run_record(record)) is not None:
            history.append(run)
            del history[:-HISTORY_KEPT]

    def history(self, trainer: str) -> list[RunRecord]:
        """The trainer's most recent successful runs: durations, per-step and finishing times."""
        if trainer not in self._history:
            mine = sorted((r for r in self.store.trainings() if r.get("trainer") == trainer and r.get("completed_at")),
                          key=lambda r: str(r.get("completed_at")))
            self._history[trainer] = [run for run in map(run_record, mine) if run is not None][-HISTORY_KEPT:]
        return self._history[trainer]

    def apply(self, training: Training | dict[str, Any], *, source: Source,
              webhook_id: str | None = None) -> UpdateResult:
        if isinstance(training, dict):
            # A prediction of a stored training's version: merged into that training's record.
            if (routed := self.predictions.apply(training, source=source, webhook_id=webhook_id)) is not None:
                return self._tell(self._parent_update(routed))
            training = Training.from_api(training)
        tid = training.id
        if webhook_id is not None and self.store.seen_webhook(webhook_id):
            return self._tell(UpdateResult(tid, "duplicate", source, self.store.get(tid)))

        before = self.store.get(tid)
        now = self.clock()
        old_status = Status.parse(before["status"]) if before else None
        if old_status is not None and training.status.rank < old_status.rank:
            self._remember(webhook_id)  # nothing to write: its id alone
            return self._tell(UpdateResult(tid, "stale", source, before))
        if old_status is not None and old_status.terminal and training.status != old_status:
            self._remember(webhook_id)
            return self._tell(UpdateResult(tid, "final", source, before))

        tracker = self.tracker(tid, training)  # before the log grows: it is fed only the new part
        new_log = self.store.extend_log(tid, training.logs) if training.logs else ""
        record = _merge(before, training, now)
        progress = self._feed(tid, tracker, new_log, training.status, now=now,
                              started_at=parse_time(record.get("started_at")),
                              created_at=parse_time(record.get("created_at")))
        _record_progress(record, progress, now)
        if source == "webhook":
            self.last_webhook[tid] = now

        changes = {k: (before.get(k) if before else None, record.get(k)) for k in _WATCHED
                   if (before.get(k) if before else None) != record.get(k)}
        significant = before is None or _significant(before, record) or _details_changed(before, record)
        # Ended while we watched: a training first seen already finished (an import, a sync of an
        # old one) did not "just" end, except when its own completion webhook is the news.
        became_terminal = training.status.terminal and (
            not old_status.terminal if old_status is not None else source == "webhook")
        if significant:
            record["updated_at"] = format_time(now)
            self.store.put(record)
            self.predictions.note_training(record)
            if became_terminal or before is None:
                self._learn_duration(record)
        self._remember(webhook_id)  # only now: never durable without what the webhook carries
        outcome: Outcome = "created" if before is None else ("updated" if significant or new_log else "unchanged")
        return self._tell(UpdateResult(tid, outcome, source, record if significant else (before or record),
                                       progress, new_log, significant, became_terminal, changes))

    async def apply_pieces(self, payload: dict[str, Any], log_start: int, pieces: Sequence[bytes], *,
                           source: Source, webhook_id: str | None = None) -> UpdateResult:
        """Apply a training whose log arrives as its tail: `pieces` (UTF-8, each ending at a line
        end, see core/bodies.py) are the cumulative log from character `log_start` on, and
        `payload["logs"]` is ignored. Each piece is applied as an update of its own, with a
        turn of the event loop in between, so that a first look at a million-line log never
        holds the loop for longer than one piece takes to parse; status, output and the
        webhook id (for dedup) come with the last piece."""
        training = Training.from_api({**payload, "logs": None})
        tid = training.id
        if webhook_id is not None and self.store.seen_webhook(webhook_id):
            return self._tell(UpdateResult(tid, "duplicate", source, self.store.get(tid)))
        at, created = log_start, False
        for index, piece in enumerate(pieces):
            text = decode_piece(piece)
            tail = LogTail(text, at)
            at += len(text)
            if index == len(pieces) - 1:
                result = self.apply(replace(training, logs=tail), source=source, webhook_id=webhook_id)
                # The training is new to the caller if its first piece created it.
                return replace(result, outcome="created") if created and result.accepted else result
            before = self.store.get(tid)
            stored = Status.parse(before["status"]) if before else None
            # Meanwhile the status stays as stored (or processing): the ending comes with the end.
            status = stored if stored is not None and stored.terminal else (
                training.status if not training.status.terminal else Status.PROCESSING)
            if stored is not None and status.rank < stored.rank:
                status = stored
            result = self.apply(replace(training, status=status, logs=tail, output=None, error=None,
                                        completed_at=None, metrics={}), source=source)
            if not result.accepted:
                return result
            created = created or result.outcome == "created"
            await asyncio.sleep(0)
        return self.apply(training, source=source, webhook_id=webhook_id)
    def _remember(self, webhook_id: str | None) -> None:
        if webhook_id is not None:
            self.store.remember_webhook(webhook_id)

    def _tell(self, result: UpdateResult) -> UpdateResult:
        self._subscribers.notify(result)
        return result


def _feed_text(tracker: ProgressTracker, unparsed: str, new_log: str, status: Status, *, now: datetime,
               started_at: datetime | None, created_at: datetime | None) -> tuple[Progress, str]:
    """Feed the tracker what the log gained; return its progress and the new unparsed end.

    The parser reads a cumulative log from its `consumed` offset: it is handed the unparsed end
    of the log plus the new text, with `consumed` counted from there, so no update copies or
    rescans the whole log."""
    if not new_log:
        return tracker.update(None, status, now=now, started_at=started_at, created_at=created_at), unparsed
    text = unparsed + new_log
    state = tracker.state
    base, state.consumed = state.consumed, 0
    try:
        progress = tracker.update(text, status, now=now, started_at=started_at, created_at=created_at)
    finally:
        used, state.consumed = state.consumed, base + state.consumed
    return progress, text[used:]


def _footprint(tracker: ProgressTracker) -> int:
    """Estimated bytes of a tracker: its series dominate (a point per step; core.logparse.Series
    counts its arrays' buffers); a list of tuples about 100 bytes an item."""
    state = tracker.state
    names = [f.name for f in fields(state)] if is_dataclass(state) else list(vars(state))
    size = 4096
    for name in names:
        value = getattr(state, name, None)
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, list):
            size += sys.getsizeof(value) + 96 * len(value)
        elif isinstance(value, (array, tuple, dict)) or hasattr(value, "__len__"):
            size += sys.getsizeof(value)
    return size


class LogTail(str):
    """The cumulative log from character `start` on, standing for the whole log where only its
    length and the part after `start` are read (Store.extend_log takes the cumulative log and
    keeps only what is new): the whole log never has to exist in this process."""

    start: int

    def __new__(cls, text: str, start: int) -> LogTail:
        tail = super().__new__(cls, text)
        tail.start = start
        return tail

    def __len__(self) -> int:
        return self.start + str.__len__(self)

    def __getitem__(self, key: Any) -> str:
        if (isinstance(key, slice) and key.step is None and key.stop is None
                and (key.start or 0) >= self.start):
            return str.__getitem__(self, slice(key.start - self.start, None))
        raise IndexError(f"a log tail holds only the log from character {self.start} on, not {key!r}")


def _merge(before: dict[str, Any] | None, training: Training, now: datetime) -> dict[str, Any]:
    """The stored record after this update; values the update lacks keep what was stored."""
    record = dict(before or {})
    record.update(
        id=training.id,
        trainer=training.model or record.get("trainer", ""),
        trainer_version=training.version or record.get("trainer_version", ""),
        destination=training.destination or record.get("destination"),
        status=str(training.status),
        input=training.input or record.get("input") or {},
        error=training.error or record.get("error"),
        created_at=format_time(training.created_at) or record.get("created_at") or format_time(now),
        started_at=format_time(training.started_at) or record.get("started_at"),
        completed_at=format_time(training.completed_at) or record.get("completed_at"),
        metrics=training.metrics or record.get("metrics") or {},
        source=training.source or record.get("source"),
        web_url=training.web_url or record.get("web_url"),
        output_version=training.output_version or record.get("output_version"),
        output_weights=training.output_weights or record.get("output_weights"),
    )
    if training.status.terminal and not record.get("completed_at"):
        record["completed_at"] = format_time(now)
    return record


def _record_progress(record: dict[str, Any], progress: Progress, now: datetime) -> None:
    """Copy the progress into the record only where it moved enough to be worth a write."""
    stage = str(progress.stage)
    stages = [list(item) for item in record.get("stages") or []]
    if not stages or stages[-1][0] != stage:
        stages.append([stage, format_time(now)])
    record["stages"] = stages
    if progress.training_done and not record.get("training_done_at"):
        record["training_done_at"] = format_time(now)  # the history's finishing time starts here
    moved = (record.get("stage") != stage
             or abs(float(record.get("overall_percent") or 0) - progress.overall_percent) >= 1
             or progress.overall_percent >= 100 and record.get("overall_percent") != 100)
    if moved or "overall_percent" not in record:
        eta = progress.eta_seconds
        record.update(
            stage=stage, overall_percent=progress.overall_percent, step=progress.step,
            total_steps=progress.total_steps, train_percent=progress.train_percent,
            rate=progress.rate, loss=progress.loss, lr=progress.lr, eta_seconds=eta, estimated=progress.estimated,
            eta_at=format_time(now + timedelta(seconds=eta)) if eta is not None else None,
        )


def _significant(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return any(before.get(k) != after.get(k) for k in ("status", "stage", "overall_percent"))


def _details_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Facts that arrive once (output, error, timestamps, destination) are always written."""
    keys = ("output_version", "output_weights", "error", "started_at", "completed_at",
            "destination", "metrics", "trainer", "input", "training_done_at")
    return any(before.get(k) != after.get(k) for k in keys)
