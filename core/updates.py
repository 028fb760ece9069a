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

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from core.models import Status, Training, format_time, parse_time, utcnow
from core.progress import Progress, ProgressTracker, steps_from_input
from core.store import Store

TRACKERS_KEPT = 512  # live trackers in memory; others are rebuilt from their log when needed
HISTORY_KEPT = 50  # recent successful runs a trainer's typical duration is learned from

Source = Literal["webhook", "poll", "create", "cancel", "import", "sync", "replay"]
Outcome = Literal["created", "updated", "unchanged", "duplicate", "stale", "final"]


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
        self._history: dict[str, list[float]] = {}  # trainer → durations of its recent successes
        self._subscribers: list[Callable[[UpdateResult], None]] = []
        self.last_webhook: dict[str, datetime] = {}  # when webhooks last flowed, for adaptive polling

    def subscribe(self, callback: Callable[[UpdateResult], None]) -> Callable[[], None]:
        """Call `callback` after every applied update; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def tracker(self, training_id: str, training: Training | None = None) -> ProgressTracker:
        """The live progress of a training, rebuilt from its stored log on first use."""
        if training_id in self._trackers:
            self._trackers.move_to_end(training_id)
            return self._trackers[training_id]
        return self.adopt_tracker(training_id, self.build_tracker(training_id, training))

    def build_tracker(self, training_id: str, training: Training | None = None) -> ProgressTracker:
        """A tracker rebuilt from the stored log, not registered: this may run in a worker thread
        (a long log takes a while to parse); `adopt_tracker` then registers it on the event loop."""
        record = self.store.get(training_id) or {}
        trainer = record.get("trainer") or (training.model if training else "")
        steps = steps_from_input(record.get("input") or (training.input if training else None))
        tracker = ProgressTracker(self.history(trainer), configured_steps=steps)
        if record:
            tracker.update(
                self.store.read_log(training_id), Status.parse(record.get("status")),
                now=self.clock(), started_at=parse_time(record.get("started_at")),
                created_at=parse_time(record.get("created_at")),
            )
        return tracker

    def adopt_tracker(self, training_id: str, tracker: ProgressTracker) -> ProgressTracker:
        """Register a built tracker (on the event loop only), unless one was registered meanwhile:
        that one has seen the updates that arrived during the build."""
        if training_id in self._trackers:
            self._trackers.move_to_end(training_id)
            return self._trackers[training_id]
        self._trackers[training_id] = tracker
        if len(self._trackers) > TRACKERS_KEPT:  # an import of thousands: keep memory bounded
            self._trackers.popitem(last=False)
        return tracker

    def _learn_duration(self, record: dict[str, Any]) -> None:
        """A success adds its duration to the trainer's history, if that is loaded."""
        history = self._history.get(record.get("trainer", ""))
        start = parse_time(record.get("started_at") or record.get("created_at"))
        end = parse_time(record.get("completed_at"))
        if history is not None and record["status"] == Status.SUCCEEDED and start and end and end > start:
            history.append((end - start).total_seconds())
            del history[:-HISTORY_KEPT]

    def history(self, trainer: str) -> list[float]:
        """Durations of the trainer's most recent successful runs (for ETAs with nothing to parse)."""
        if trainer not in self._history:
            self._history[trainer] = self.store.durations(trainer)[-HISTORY_KEPT:]
        return self._history[trainer]

    def apply(self, training: Training | dict[str, Any], *, source: Source,
              webhook_id: str | None = None) -> UpdateResult:
        if isinstance(training, dict):
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

        new_log = self.store.extend_log(tid, training.logs) if training.logs else ""
        record = _merge(before, training, now)
        tracker = self.tracker(tid, training)
        progress = tracker.update(
            training.logs if new_log else None, training.status, now=now, started_at=parse_time(record.get("started_at")),
            created_at=parse_time(record.get("created_at")),
        )
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
            if became_terminal or before is None:
                self._learn_duration(record)
        self._remember(webhook_id)  # only now: never durable without what the webhook carries
        outcome: Outcome = "created" if before is None else ("updated" if significant or new_log else "unchanged")
        return self._tell(UpdateResult(tid, outcome, source, record if significant else (before or record),
                                       progress, new_log, significant, became_terminal, changes))

    def _remember(self, webhook_id: str | None) -> None:
        if webhook_id is not None:
            self.store.remember_webhook(webhook_id)

    def _tell(self, result: UpdateResult) -> UpdateResult:
        for callback in list(self._subscribers):
            callback(result)
        return result


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
    moved = (record.get("stage") != stage
             or abs(float(record.get("overall_percent") or 0) - progress.overall_percent) >= 1
             or progress.overall_percent >= 100 and record.get("overall_percent") != 100)
    if moved or "overall_percent" not in record:
        eta = progress.eta_seconds
        record.update(
            stage=stage, overall_percent=progress.overall_percent, step=progress.step,
            total_steps=progress.total_steps, train_percent=progress.train_percent,
            rate=progress.rate, loss=progress.loss, lr=progress.lr, eta_seconds=eta,
            eta_at=format_time(now + timedelta(seconds=eta)) if eta is not None else None,
        )


def _significant(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return any(before.get(k) != after.get(k) for k in ("status", "stage", "overall_percent"))


def _details_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Facts that arrive once (output, error, timestamps, destination) are always written."""
    keys = ("output_version", "output_weights", "error", "started_at", "completed_at",
            "destination", "metrics", "trainer", "input")
    return any(before.get(k) != after.get(k) for k in keys)
