"""The Store: trainings, their logs and the seen webhook ids, under one directory.

Durability rules:
- The TinyDB file is only ever replaced whole (records.py); each log is an append-only file
  (logs.py); a failed append of any file is cut back, leaving no fragment (files.py).
- `commit()` makes every change so far durable with ONE append and fsync of a small journal
  (journal.py): the changed records, the log suffixes, the seen webhook ids. That is what lets
  the listener answer 2xx only once an event is on disk, within milliseconds. Concurrent commits
  share one write (group commit). When the journal has grown past a few MB, a background
  checkpoint folds it into the TinyDB file (and fsyncs the log files), then drops it.
- Every journal entry carries a sequence number and the database records the last one it holds,
  so replaying the journal on open (after a kill) applies exactly what the database lacks.
- One process writes a store at a time (lock.py); others may open it read-only: they read the
  journal first, then the database, and replay what is newer, so a checkpoint in between cannot
  mislead them.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from core import config
from core.errors import StoreError, StoreWriteError
from core.models import TERMINAL, parse_time
from core.store import journal as journal_mod
from core.store import webhook_ids
from core.store.files import atomic_write, check_id, private_dir
from core.store.journal import Journal
from core.store.lock import StoreLock
from core.store.logs import LOG_DIR, LogFiles
from core.store.records import DB_FILE, KeyedTable, MemoryFirstStorage, encode_database, load_database

_Checkpoint = tuple[int, dict[str, Any], set[str], list[str]]


class Store:
    """Trainings, their logs and the seen webhook ids, under one directory."""

    checkpoint_bytes = 4 * 1024 * 1024  # journal size that triggers folding it into the database

    def __init__(self, home: Path | str | None = None, *, readonly: bool = False,
                 wait: float = 2.0) -> None:
        """`wait`: how long to wait for another writer to let go (a `logs --follow` holds the
        store only for a moment per poll) before saying who holds it."""
        self.home = Path(home) if home is not None else config.home()
        self.readonly = readonly
        self.notices: list[str] = []  # things the user should be told (e.g. a corrupt file moved aside)
        self._lock = StoreLock(self.home)
        try:
            private_dir(self.home)
            private_dir(self.home / LOG_DIR)
        except OSError as error:
            raise StoreError(f"cannot create the store directory {self.home}: {error.strerror}. "
                             "Set REPLITRACK_HOME to a writable directory.") from error
        if not readonly:
            self._lock.acquire(wait)
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> None:
        self._logs = LogFiles(self.home)
        self._journal_file = Journal(self.home)
        self._new_webhook_ids: list[str] = []  # remembered since the last checkpoint
        raw_journal = self._journal_file.read()  # before the database: see the module docstring
        data, salvaged = load_database(self.db_path, readonly=self.readonly, notices=self.notices)
        data = data or {}
        self._seq = self._durable_seq = int(data.get("meta", {}).get("journal", {}).get("seq", 0))
        self._seen_webhooks = webhook_ids.load(self.home)
        replayed = self._replay(raw_journal, data)
        self._storage = MemoryFirstStorage(data)
        self._db = TinyDB(storage=lambda: self._storage)
        self._db.table_class = KeyedTable
        self._trainings: KeyedTable = self._db.table("trainings", cache_size=0)  # type: ignore[assignment]
        self._journal_file.bytes = len(raw_journal)
        self._commit_lock = asyncio.Lock()
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._checkpoint_io = threading.Lock()  # one checkpoint writes at a time, never an older one last
        self._db_seq = self._durable_seq
        if (replayed or salvaged) and not self.readonly:
            self.flush()  # fold what a killed process left in the journal into the database

    # ----- lifecycle and ownership -------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / DB_FILE

    @property
    def _lock_fd(self) -> int | None:
        return self._lock.fd

    def announce_api(self, api_url: str | None, secret: str | None = None) -> None:
        """Record the local API of the process that owns this store (and the secret its changing
        routes want), for the CLI to route through."""
        self._lock.write_owner(api_url, secret)

    def close(self) -> None:
        if not self.readonly:
            self.flush()
        self._db.close()
        self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- trainings ---------------------------------------------------------------------------
    def get(self, training_id: str) -> dict[str, Any] | None:
        document = self._trainings.get(doc_id=training_id)  # type: ignore[call-overload]  # str ids
        return dict(document) if document is not None else None

    def trainings(self) -> list[dict[str, Any]]:
        return [dict(document) for document in self._trainings.documents()]

    def unfinished(self) -> list[dict[str, Any]]:
        """Trainings that have not ended, without copying the (many) finished ones."""
        return [dict(d) for d in self._trainings.documents() if d.get("status") not in TERMINAL]

    def __len__(self) -> int:
        return len(self._trainings)

    def put(self, record: dict[str, Any]) -> None:
        """Store a training record whole (a fresh dict, never shared with the caller)."""
        self._require_writable()
        document = dict(record)
        self._trainings.put(check_id(document["id"]), document)
        self._journal({"put": document})

    def find(self, ref: str) -> dict[str, Any] | None:
        """A training by id, or the latest training of a destination model `owner/name`."""
        if record := self.get(ref):
            return record
        matches = [r for r in self._trainings.documents() if r.get("destination") == ref]
        latest = max(matches, key=lambda r: str(r.get("created_at") or ""), default=None)
        return dict(latest) if latest is not None else None

    def durations(self, trainer: str) -> list[float]:
        """Seconds from start to completion of the earlier successful trainings of a trainer,
        oldest completion first."""
        found = []
        for record in self._trainings.documents():
            if record.get("trainer") == trainer and record.get("status") == "succeeded":
                start = _time(record.get("started_at") or record.get("created_at"))
                end = _time(record.get("completed_at"))
                if start and end and end > start:
                    found.append((end, (end - start).total_seconds()))
        return [seconds for _, seconds in sorted(found)]

    # ----- logs --------------------------------------------------------------------------------
    def log_path(self, training_id: str) -> Path:
        return self._logs.path(training_id)

    def read_log(self, training_id: str) -> str:
        return self._logs.read(training_id)

    def log_length(self, training_id: str) -> int:
        """How many characters of the training's cumulative log are stored."""
        return self._logs.length(training_id)

    def extend_log(self, training_id: str, logs: str) -> str:
        """Store what `logs` (the cumulative log) adds to what is stored; return that suffix.
        A failed write raises StoreWriteError and changes nothing."""
        self._require_writable()
        suffix, at = self._logs.extend(training_id, logs)
        if suffix:
            self._journal({"log": training_id, "at": at, "text": suffix})
        return suffix

    # ----- webhook ids -------------------------------------------------------------------------
    def seen_webhook(self, webhook_id: str) -> bool:
        return webhook_id in self._seen_webhooks

    def remember_webhook(self, webhook_id: str) -> None:
        """Call this after storing everything the webhook carries: its id reaches the journal
        after (or with) its content, so it is never durable without it."""
        self._require_writable()
        if webhook_id not in self._seen_webhooks:
            self._seen_webhooks.add(webhook_id)
            self._new_webhook_ids.append(webhook_id)
            self._journal({"webhook": webhook_id})

    def forget_webhook(self, webhook_id: str) -> None:
        """Its answer said it was not saved (a failed commit): Replicate's retry must be applied
        again, not taken for a duplicate. What it carried stays pending for the next commit."""
        self._seen_webhooks.discard(webhook_id)

    # ----- durability --------------------------------------------------------------------------
    def _journal(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        self._journal_file.add(self._seq, entry)

    @property
    def _pending(self) -> list[tuple[int, bytes]]:
        return self._journal_file.pending

    @property
    def dirty(self) -> bool:
        return self._seq != self._durable_seq

    def _append_journal(self, lines: list[bytes]) -> int:
        """Runs in a worker thread. Returns the bytes written."""
        return self._journal_file.append(lines)

    async def commit(self) -> None:
        """Make every change so far durable. Concurrent callers share one write (group commit).
        On a failed write (StoreWriteError) the changes stay pending for the next commit."""
        wanted = self._seq
        async with self._commit_lock:
            if self._durable_seq >= wanted:
                return  # the write that just finished carried this caller's changes too
            journal = self._journal_file
            lines, upto = journal.pending, self._seq
            journal.pending = []
            try:
                written = await asyncio.to_thread(self._append_journal, [line for _, line in lines])
            except StoreWriteError:
                journal.pending[:0] = lines
                raise
            journal.bytes += written
            self._durable_seq = max(self._durable_seq, upto)
            if journal.bytes > self.checkpoint_bytes and self._checkpoint_task is None:
                # Checkpoint in the background: commits go on into a fresh journal meanwhile.
                journal.rotate(self._durable_seq)
                self._checkpoint_task = asyncio.create_task(self._background_checkpoint())

    async def _background_checkpoint(self) -> None:
        work = self._take_checkpoint()
        try:
            await asyncio.to_thread(self._checkpoint, *work)
        except StoreWriteError as error:
            self._undo_checkpoint(work)
            self.notices.append(str(error))  # the journals still hold everything: nothing is lost
        finally:
            self._checkpoint_task = None

    def flush(self) -> None:
        """Make every change so far durable and fold the journals into the database, synchronously."""
        journal = self._journal_file
        if self.dirty or journal.bytes or journal.rotated():
            work = self._take_checkpoint()
            try:
                self._checkpoint(*work, truncate_active=True)
            except StoreWriteError:
                self._undo_checkpoint(work)
                raise
            self._durable_seq = max(self._durable_seq, work[0])
            journal.pending = [(s, line) for s, line in journal.pending if s > work[0]]
            journal.bytes = 0

    def _take_checkpoint(self) -> _Checkpoint:
        """What a checkpoint writes, taken on the event loop so that it is one consistent state."""
        seq = self._seq
        snapshot = self._storage.snapshot()
        snapshot["meta"] = {"journal": {"seq": seq}}
        logs, self._logs.dirty = self._logs.dirty, set()
        ids, self._new_webhook_ids = self._new_webhook_ids, []
        return seq, snapshot, logs, ids

    def _undo_checkpoint(self, work: _Checkpoint) -> None:
        self._logs.dirty |= work[2]
        self._new_webhook_ids[:0] = work[3]

    def _checkpoint(self, seq: int, snapshot: dict[str, Any], logs: set[str], ids: list[str], *,
                    truncate_active: bool = False) -> None:
        """File I/O only (it may run in a worker thread): fsync the logs, save the webhook ids and
        the database, then drop the journals the database now holds."""
        with self._checkpoint_io:
            if seq < self._db_seq:
                return  # a newer checkpoint already wrote a newer database
            self._logs.fsync(logs)
            if ids:
                webhook_ids.append(self.home, ids)
            atomic_write(self.db_path, encode_database(snapshot))  # streamed: never one 10 MB join
            self._db_seq = seq
            self._journal_file.drop_folded(seq, truncate_active=truncate_active)

    def _replay(self, raw: bytes, data: dict[str, Any]) -> int:
        """Apply the journal entries newer than the database to `data` (and, when writing, to the
        log files). Returns how many were applied."""
        found = journal_mod.replay(raw, self._durable_seq)
        data.setdefault("trainings", {}).update(found.puts)
        for webhook_id in found.webhooks:
            self._seen_webhooks.add(webhook_id)
            self._new_webhook_ids.append(webhook_id)
        if not self.readonly:
            for training_id, at, text in found.logs:
                self._logs.replay(training_id, at, text)
        self._seq = self._durable_seq = found.last_seq
        if found.bad:
            where = "" if self.readonly else self._journal_file.move_aside()
            self.notices.append(
                f"The journal in {self.home} had {found.bad} entr{'y' if found.bad == 1 else 'ies'} of the "
                "wrong shape (not written by replitrack); they were skipped"
                + (f" and the journal was moved to {where}" if where else "")
                + ". Everything else was kept; `replitrack sync --all` fetches anything missing from Replicate."
            )
            return found.applied + 1  # fold now, so that the bad lines are not read again
        return found.applied

    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError("this store was opened read-only")


def _time(value: object) -> Any:
    return parse_time(value) if isinstance(value, str) else None
