"""The listener's event log: every request the public face received, accepted or rejected.

Each event keeps what is needed to inspect and replay it (headers, the raw body, the verdict and
the answer given), like ngrok's inspector. The log is bounded (a count of events and a total of
body bytes); the oldest go first. It is a debugging aid, not the source of truth (the store is),
so it is written without fsync: a crash may lose its last lines, never a training update.

Layout under `events_dir`:
- `index.jsonl`: one JSON object per line; a later line with the same id replaces an earlier one
  (e.g. when a forward's answer arrives); rewritten with only the kept events when it grows.
- `bodies/seg-NNNNNN.bin`: raw bodies appended one after another (an event knows its segment,
  offset and size). One open file per segment instead of one file per event keeps a webhook's
  cost in microseconds; bounding the bytes means deleting whole old segments.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import StoreError, StoreWriteError
from core.observers import Observers
from core.store.files import append_whole, private_dir

INDEX_FILE = "index.jsonl"
BODY_DIR = "bodies"
DEFAULT_MAX_EVENTS = 2000
DEFAULT_MAX_BODY_BYTES = 512 * 1024 * 1024
SEGMENTS_PER_BOUND = 8  # the bytes bound is kept within one segment's worth
# A body this large is written in a thread, to a segment of its own: on the event loop a 142 MB
# body (a million-line log) held every webhook and frame for over half a second.
THREAD_BODY = 1 << 20


@dataclass
class EventRecord:
    """One received request. `verdict` is accepted / duplicate / ignored / rejected / error."""

    id: str
    received_at: str  # ISO time, Z
    method: str
    path: str
    verdict: str
    reason: str  # the update outcome (created, updated, stale, ...) or why it was rejected
    http_status: int
    response: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body_size: int = 0
    body_file: str | None = None  # segment under bodies/; None when not kept (oversize, evicted)
    body_offset: int = 0
    training_id: str | None = None
    webhook_id: str | None = None
    event: str | None = None  # start / output / logs / completed, inferred from the body
    event_inferred: bool = True  # Replicate does not say which event a webhook is
    status: str | None = None
    progress: float | None = None  # overall percent after the update
    duration_ms: float = 0.0
    replay_of: str | None = None
    forward: dict[str, Any] | None = None  # {"url", "status", "error", "duration_ms"}

    @property
    def accepted(self) -> bool:
        return 200 <= self.http_status < 300

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy costs more than the rest of a webhook's handling.
        return {name: getattr(self, name) for name in _FIELDS}

    def summary(self) -> dict[str, Any]:
        """The record without headers (what lists show)."""
        data = self.to_dict()
        data.pop("headers")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventRecord:
        return cls(**{key: value for key, value in data.items() if key in _FIELDS})


_FIELDS = tuple(f.name for f in fields(EventRecord))


class EventLog:
    """The bounded on-disk log of received requests, with its kept part in memory."""

    def __init__(self, directory: Path, *, max_events: int = DEFAULT_MAX_EVENTS,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, readonly: bool = False) -> None:
        """`readonly`: only read (another process, the store's owner, may be writing it)."""
        self.directory = Path(directory)
        self.readonly = readonly
        self.max_events = max(1, int(max_events))
        self.max_body_bytes = max(0, int(max_body_bytes))
        self.segment_bytes = max(1, self.max_body_bytes // SEGMENTS_PER_BOUND)
        self._events: OrderedDict[str, EventRecord] = OrderedDict()
        self._segments: OrderedDict[str, int] = OrderedDict()  # name → bytes written, oldest first
        self._segment: str | None = None  # the segment bodies are appended to
        self._writing: set[str] = set()  # segments a thread is writing a large body to
        self._lines_in_index = 0
        self._lines: dict[str, str] = {}  # event id → its index line, so compaction re-serialises nothing
        self._next = 1
        self._subscribers: Observers[EventRecord] = Observers()
        try:
            if not readonly:
                private_dir(self.directory)  # webhook bodies hold inputs and logs: 0700/0600
                private_dir(self.directory / BODY_DIR)
        except OSError as error:
            raise StoreError(f"cannot create the event log directory {self.directory}: {error.strerror}. "
                             "Set REPLITRACK_HOME to a writable directory.") from error
        self._load()

    # ----- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._events)

    def get(self, event_id: str) -> EventRecord | None:
        return self._events.get(event_id)

    def latest(self, limit: int = 100, *, training_id: str | None = None,
               verdict: str | None = None) -> list[EventRecord]:
        """Newest first."""
        found: list[EventRecord] = []
        for record in reversed(self._events.values()):
            if training_id and record.training_id != training_id:
                continue
            if verdict and record.verdict != verdict:
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

    def read_body(self, event_id: str) -> bytes | None:
        record = self._events.get(event_id)
        if record is None or record.body_file is None or record.body_file not in self._segments:
            return None
        try:
            with open(self.directory / BODY_DIR / record.body_file, "rb") as file:
                file.seek(record.body_offset)
                body = file.read(record.body_size)
        except OSError:
            return None
        return body if len(body) == record.body_size else None

    @property
    def body_bytes(self) -> int:
        """Bytes of bodies on disk (whole segments)."""
        return sum(self._segments.values())

    # ----- writing -----------------------------------------------------------------------------
    def new_id(self) -> str:
        event_id = f"ev{self._next:08d}"
        self._next += 1
        return event_id

    async def add(self, record: EventRecord, body: bytes | None) -> EventRecord:
        """Keep `record` (and `body`, if it fits the bound), then drop the oldest beyond the bounds."""
        self._require_writable()
        if body is not None:
            record.body_size = len(body)
            if len(body) >= THREAD_BODY and len(body) <= self.max_body_bytes:
                await self._store_large_body(record, body)
            elif len(body) <= self.max_body_bytes:
                self._store_body(record, body)
        self._events[record.id] = record
        self._append(record)
        self._enforce_bounds()
        self._subscribers.notify(record)
        return record

    def update(self, record: EventRecord) -> None:
        """Persist a change to a kept record (a forward's answer arrived)."""
        self._require_writable()
        if record.id in self._events:
            self._append(record)

    def subscribe(self, callback: Callable[[EventRecord], None]) -> Callable[[], None]:
        return self._subscribers.subscribe(callback)

    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError("this event log was opened read-only (another replitrack owns it)")

    def close(self) -> None:
        self._segment = None  # every write is whole and unbuffered: nothing to flush

    def _new_segment(self) -> str:
        number = 1 + max((int(n[4:10]) for n in self._segments), default=0)
        name = f"seg-{number:06d}.bin"
        self._segments[name] = 0
        return name

    async def _store_large_body(self, record: EventRecord, body: bytes) -> None:
        name = self._new_segment()  # its own, not the current one: small bodies go on meanwhile
        self._writing.add(name)
        try:
            offset = await asyncio.to_thread(append_whole, self.directory / BODY_DIR / name, body, fsync=False)
        except StoreWriteError:
            record.body_file = None  # the log is best effort; the answer does not depend on it
            return
        finally:
            self._writing.discard(name)
        if name in self._segments:
            self._segments[name] = offset + len(body)
            record.body_file, record.body_offset = name, offset

    def _store_body(self, record: EventRecord, body: bytes) -> None:
        if self._segment is None or self._segment_full(len(body)):
            self._segment = self._new_segment()
        name = self._segment
        try:  # whole or not at all: a full disk leaves no fragment to shift later bodies
            offset = append_whole(self.directory / BODY_DIR / name, body, fsync=False)
        except StoreWriteError:
            record.body_file = None  # the log is best effort; the answer does not depend on it
            return
        self._segments[name] = offset + len(body)
        record.body_file, record.body_offset = name, offset

    def _segment_full(self, incoming: int) -> bool:
        assert self._segment is not None
        used = self._segments.get(self._segment, 0)
        return used > 0 and used + incoming > self.segment_bytes

    def _append(self, record: EventRecord) -> None:
        line = json.dumps(record.to_dict(), separators=(",", ":")) + "\n"
        try:
            append_whole(self.directory / INDEX_FILE, line.encode(), fsync=False, line_aligned=True)
        except StoreWriteError:
            return
        self._lines[record.id] = line  # compaction writes these again instead of re-serialising
        self._lines_in_index += 1
        if self._lines_in_index > 2 * self.max_events + 100:
            self._compact()

    def _enforce_bounds(self) -> None:
        while len(self._events) > self.max_events:
            self._events.popitem(last=False)
        # the oldest segments first, never one a thread is still writing
        droppable = [name for name in self._segments if name not in self._writing]
        while self.body_bytes > self.max_body_bytes and len(droppable) > 1:
            self._drop_segment(droppable.pop(0))
        if self.body_bytes > self.max_body_bytes and droppable:  # one huge segment: start over
            self._drop_segment(droppable.pop(0))

    def _drop_segment(self, name: str) -> None:
        if self._segment == name:
            self._segment = None
        self._segments.pop(name, None)
        if not self.readonly:
            try:
                (self.directory / BODY_DIR / name).unlink()
            except OSError:
                pass
        for record in self._events.values():
            if record.body_file == name:
                record.body_file = None

    def _compact(self) -> None:
        """Rewrite the index with only the kept events (atomically: a crash keeps the old one)."""
        # Serialising 2,000 records here cost 70-150 ms on the event loop every ~2,100 webhooks
        # (every 7 s at 300/s): the lines written when they came are reused instead.
        self._lines = {r.id: self._lines.get(r.id) or json.dumps(r.to_dict(), separators=(",", ":")) + "\n"
                       for r in self._events.values()}
        lines = "".join(self._lines.values())
        try:
            fd, tmp = tempfile.mkstemp(prefix=".index.", dir=self.directory)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(lines)
            os.replace(tmp, self.directory / INDEX_FILE)
            self._lines_in_index = len(self._events)
        except OSError:
            pass
        # Segments no kept event points to are only disk space.
        used = {r.body_file for r in self._events.values() if r.body_file}
        current = self._segment
        for name in [n for n in self._segments if n not in used and n != current]:
            self._drop_segment(name)

    def _load(self) -> None:
        try:
            names = sorted(n for n in os.listdir(self.directory / BODY_DIR)
                           if n.startswith("seg-") and n.endswith(".bin") and n[4:10].isdigit())
        except OSError:
            names = []
        for name in names:
            try:
                self._segments[name] = (self.directory / BODY_DIR / name).stat().st_size
            except OSError:
                pass
        try:
            text = (self.directory / INDEX_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        highest = 0
        for line in text.split("\n"):
            if not line.strip():
                continue
            try:
                record = EventRecord.from_dict(json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut short by a crash
            self._events[record.id] = record
            self._events.move_to_end(record.id)
            if record.id.startswith("ev") and record.id[2:].isdigit():
                highest = max(highest, int(record.id[2:]))
        self._next = highest + 1
        for record in self._events.values():
            if record.body_file and (record.body_file not in self._segments
                                     or record.body_offset + record.body_size > self._segments[record.body_file]):
                record.body_file = None  # its bytes did not reach the disk before a crash
        self._enforce_bounds()
        if not self.readonly:
            self._compact()
