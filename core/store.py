"""The local store: trainings in a TinyDB file, logs in one append-only file per training.

Durability rules:
- The TinyDB file is only ever replaced whole: written to a temporary file, fsynced, renamed over
  the old one, and the directory fsynced. A kill at any moment leaves the old or the new state.
- Logs never enter the TinyDB file (a long training's log is MBs and TinyDB rewrites the whole
  file on each write): each training's log is a file that only grows by its new suffix.
- Seen webhook ids go to an append-only file too, so deduplication costs no database rewrite.
- `commit()` makes everything changed so far durable; concurrent commits share one write
  (group commit), which is what lets the listener answer 2xx only once an event is on disk.
- One process writes a store at a time (an exclusive lock on `replitrack.lock`, holding the
  owner's PID and local API URL); others may open it read-only, since every write is a rename.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from core import config
from core.errors import StoreError, StoreInUseError, StoreWriteError

DB_FILE = "replitrack.json"
LOCK_FILE = "replitrack.lock"
WEBHOOK_IDS_FILE = "webhook-ids.txt"
LOG_DIR = "logs"
SEEN_WEBHOOKS_KEPT = 50_000  # Replicate retries within minutes; this covers days of traffic
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class _KeyedTable(Table):
    """A table whose document ids are the training ids, and whose documents are replaced whole.

    Never mutating a stored document in place is what lets `commit()` serialise a shallow
    snapshot in a worker thread while the event loop goes on writing.
    """

    document_id_class = str

    def put(self, doc_id: str, document: dict[str, Any]) -> None:
        def replace(table: dict[str, Any]) -> None:
            table[doc_id] = document

        self._update_table(replace)


class _MemoryFirstStorage(Storage):
    """TinyDB storage that keeps the data in memory; the Store decides when it reaches disk."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        self.data = data
        self.changes = 0

    def read(self) -> dict[str, Any] | None:
        return self.data

    def write(self, data: dict[str, Any]) -> None:
        self.data = data
        self.changes += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: dict(table) for name, table in (self.data or {}).items()}


class Store:
    """Trainings, their logs and the seen webhook ids, under one directory."""

    def __init__(self, home: Path | str | None = None, *, readonly: bool = False) -> None:
        self.home = Path(home) if home is not None else config.home()
        self.readonly = readonly
        self.notices: list[str] = []  # things the user should be told (e.g. a corrupt file moved aside)
        self._lock_fd: int | None = None
        try:
            (self.home / LOG_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the store directory {self.home}: {error.strerror}. "
                             "Set REPLITRACK_HOME to a writable directory.") from error
        if not readonly:
            self._acquire_lock()
        self._storage = _MemoryFirstStorage(self._load())
        self._db = TinyDB(storage=lambda: self._storage)  # type: ignore[arg-type]
        self._db.table_class = _KeyedTable
        self._trainings: _KeyedTable = self._db.table("trainings", cache_size=0)  # type: ignore[assignment]
        self._seen_webhooks, self._pending_webhooks = self._load_webhook_ids(), []
        self._other_changes = 0
        self._db_written = self._durable_version = self._storage.changes
        self._log_chars: dict[str, int] = {}
        self._dirty_logs: set[str] = set()
        self._commit_lock = asyncio.Lock()

    # ----- lifecycle and ownership -------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / DB_FILE

    def _acquire_lock(self) -> None:
        path = self.home / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = read_owner(self.home) or {}
            raise StoreInUseError(str(self.home), owner.get("pid"), owner.get("api")) from None
        self._lock_fd = fd
        self._write_owner(None)

    def _write_owner(self, api_url: str | None) -> None:
        if self._lock_fd is None:
            return
        payload = json.dumps({"pid": os.getpid(), "api": api_url}).encode()
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, payload, 0)

    def announce_api(self, api_url: str | None) -> None:
        """Record the local API of the process that owns this store, for the CLI to route through."""
        self._write_owner(api_url)

    def close(self) -> None:
        if not self.readonly:
            self.flush()
        self._db.close()
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- loading -----------------------------------------------------------------------------
    def _load(self) -> dict[str, Any] | None:
        try:
            text = self.db_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read the store {self.db_path}: {error.strerror}") from error
        try:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
                raise ValueError("not a TinyDB document")
            return data
        except ValueError as error:
            if self.readonly:
                raise StoreError(f"the store {self.db_path} is unreadable ({error}); "
                                 "open replitrack once to move it aside") from error
            aside = self.db_path.with_name(f"{DB_FILE}.corrupt-{datetime.now():%Y%m%dT%H%M%S}")
            self.db_path.rename(aside)
            self.notices.append(
                f"The store file {self.db_path} was unreadable ({error}); it was moved to {aside} "
                "and a clean store started. Import your trainings again from Replicate "
                "(`replitrack import`, or the sync screen)."
            )
            return None

    def _load_webhook_ids(self) -> set[str]:
        try:
            lines = (self.home / WEBHOOK_IDS_FILE).read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            return set()
        except (OSError, UnicodeDecodeError):
            return set()  # dedup is a convenience; status rules still keep the store right
        return {line for line in lines[-SEEN_WEBHOOKS_KEPT:] if line}

    # ----- trainings ---------------------------------------------------------------------------
    def get(self, training_id: str) -> dict[str, Any] | None:
        document = self._trainings.get(doc_id=training_id)
        return dict(document) if document is not None else None

    def trainings(self) -> list[dict[str, Any]]:
        return [dict(document) for document in self._trainings.all()]

    def __len__(self) -> int:
        return len(self._trainings)

    def put(self, record: dict[str, Any]) -> None:
        """Store a training record whole (a fresh dict, never shared with the caller)."""
        self._require_writable()
        self._trainings.put(_check_id(record["id"]), dict(record))

    def find(self, ref: str) -> dict[str, Any] | None:
        """A training by id, or the latest training of a destination model `owner/name`."""
        if record := self.get(ref):
            return record
        matches = [r for r in self._trainings.all() if r.get("destination") == ref]
        return dict(max(matches, key=lambda r: r.get("created_at") or "")) if matches else None

    def durations(self, trainer: str) -> list[float]:
        """Seconds from start to completion of the earlier successful trainings of a trainer."""
        from core.models import parse_time

        found = []
        for record in self._trainings.all():
            if record.get("trainer") == trainer and record.get("status") == "succeeded":
                start = parse_time(record.get("started_at") or record.get("created_at"))
                end = parse_time(record.get("completed_at"))
                if start and end and end > start:
                    found.append((end - start).total_seconds())
        return found

    # ----- logs --------------------------------------------------------------------------------
    def log_path(self, training_id: str) -> Path:
        return self.home / LOG_DIR / f"{_check_id(training_id)}.log"

    def read_log(self, training_id: str) -> str:
        try:
            return self.log_path(training_id).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_length(self, training_id: str) -> int:
        """How many characters of the training's cumulative log are stored."""
        if training_id not in self._log_chars:
            self._log_chars[training_id] = len(self.read_log(training_id))
        return self._log_chars[training_id]

    def extend_log(self, training_id: str, logs: str) -> str:
        """Store what `logs` (the cumulative log) adds to what is stored; return that suffix."""
        self._require_writable()
        known = self.log_length(training_id)
        if len(logs) <= known:
            return ""
        suffix = logs[known:]
        try:
            with open(self.log_path(training_id), "a", encoding="utf-8", newline="") as file:
                file.write(suffix)
        except OSError as error:
            raise _write_error(self.log_path(training_id), error) from error
        self._log_chars[training_id] = len(logs)
        self._dirty_logs.add(training_id)
        self._other_changes += 1
        return suffix

    # ----- webhook ids -------------------------------------------------------------------------
    def seen_webhook(self, webhook_id: str) -> bool:
        return webhook_id in self._seen_webhooks

    def remember_webhook(self, webhook_id: str) -> None:
        self._require_writable()
        if webhook_id not in self._seen_webhooks:
            self._seen_webhooks.add(webhook_id)
            self._pending_webhooks.append(webhook_id.replace("\n", " "))
            self._other_changes += 1

    # ----- durability --------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self._version() != self._durable_version

    def _version(self) -> int:
        """Counts every change: database writes, log appends and remembered webhook ids."""
        return self._storage.changes + self._other_changes

    def flush(self) -> None:
        """Make every change so far durable, synchronously."""
        if self.dirty:
            version, work = self._take_work()
            self._write(*work)
            self._durable_version = version

    async def commit(self) -> None:
        """Make every change so far durable. Concurrent callers share one write (group commit)."""
        wanted = self._version()
        async with self._commit_lock:
            if self._durable_version >= wanted:
                return  # the write that just finished carried this caller's changes too
            version, work = self._take_work()
            try:
                await asyncio.to_thread(self._write, *work)
            except StoreWriteError:
                self._dirty_logs |= work[1]
                self._pending_webhooks[:0] = work[2]
                raise
            self._durable_version = version

    def _take_work(self) -> tuple[int, tuple[dict[str, Any] | None, set[str], list[str]]]:
        version = self._version()
        snapshot = None
        if self._storage.changes != self._db_written:
            snapshot, self._db_written = self._storage.snapshot(), self._storage.changes
        logs, self._dirty_logs = self._dirty_logs, set()
        webhook_ids, self._pending_webhooks = self._pending_webhooks, []
        return version, (snapshot, logs, webhook_ids)

    def _write(self, snapshot: dict[str, Any] | None, logs: set[str], webhook_ids: list[str]) -> None:
        for training_id in logs:
            _fsync_path(self.log_path(training_id))
        if webhook_ids:
            self._append_webhook_ids(webhook_ids)
        if snapshot is not None:
            try:
                _atomic_write(self.db_path, json.dumps(snapshot, separators=(",", ":")).encode())
            except StoreWriteError:
                self._db_written = -1  # write the database again next time
                raise

    def _append_webhook_ids(self, webhook_ids: list[str]) -> None:
        path = self.home / WEBHOOK_IDS_FILE
        try:
            with open(path, "a", encoding="utf-8") as file:
                file.write("".join(f"{i}\n" for i in webhook_ids))
                file.flush()
                os.fsync(file.fileno())
            if path.stat().st_size > SEEN_WEBHOOKS_KEPT * 80:  # compact: keep only the newest ids
                kept = path.read_text(encoding="utf-8").split("\n")[-SEEN_WEBHOOKS_KEPT - 1:]
                _atomic_write(path, "\n".join(kept).encode())
        except OSError as error:
            raise _write_error(path, error) from error

    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError("this store was opened read-only")


def read_owner(home: Path) -> dict[str, Any] | None:
    """The PID and local API URL of the process holding the store at `home`, if any holds it."""
    path = home / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            return owner if isinstance(owner, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it
    finally:
        os.close(fd)


def _check_id(training_id: str) -> str:
    if not isinstance(training_id, str) or not _SAFE_ID.match(training_id):
        raise ValueError(f"not a valid training id: {training_id!r}")
    return training_id


def _atomic_write(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload`: temp file in the same directory, fsync, rename, fsync dir."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_path(path.parent)
    except OSError as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _write_error(path, error) from error


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, error: OSError) -> StoreWriteError:
    reason = "the disk is full" if error.errno == 28 else (error.strerror or str(error))
    return StoreWriteError(
        f"could not save to {path}: {reason}. The previous saved state is intact and the changes "
        "are kept in memory; free some space (or fix the permissions) and replitrack saves them "
        "on its next write."
    )
