"""The local store: trainings in a TinyDB file, logs in one append-only file per training.

Durability rules:
- The TinyDB file is only ever replaced whole: written to a temporary file, fsynced, renamed over
  the old one, and the directory fsynced. A kill at any moment leaves the old or the new state.
- Logs never enter the TinyDB file (a long training's log is MBs and TinyDB rewrites the whole
  file on each write): each training's log is a file that only grows by its new suffix.
- `commit()` makes every change so far durable with ONE append and fsync of a small journal
  (the changed records, the log suffixes, the seen webhook ids), never a rewrite of the database:
  that is what lets the listener answer 2xx only once an event is on disk, within milliseconds.
  Concurrent commits share one write (group commit). When the journal has grown past a few MB,
  a checkpoint folds it into the TinyDB file (and fsyncs the log files), then empties it.
- Every journal entry carries a sequence number and the database records the last one it holds,
  so replaying the journal on open (after a kill) applies exactly what the database lacks; a torn
  last line was never acknowledged and is skipped.
- One process writes a store at a time (an exclusive lock on `replitrack.lock`, holding the
  owner's PID and local API URL); others may open it read-only: they read the journal first, then
  the database, and replay what is newer, so a checkpoint in between cannot mislead them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from core import config
from core.errors import StoreError, StoreInUseError, StoreWriteError
from core.models import TERMINAL, parse_time

DB_FILE = "replitrack.json"
LOCK_FILE = "replitrack.lock"
WEBHOOK_IDS_FILE = "webhook-ids.txt"
JOURNAL_FILE = "journal.jsonl"  # the active journal; rotated ones are journal-<seq>.jsonl
LOG_DIR = "logs"
CHECKPOINT_BYTES = 4 * 1024 * 1024  # journal size that triggers folding it into the database
SEEN_WEBHOOKS_KEPT = 50_000  # Replicate retries within minutes; this covers days of traffic
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class _KeyedTable(Table):
    """A table whose document ids are the training ids, and whose documents are replaced whole.

    Never mutating a stored document in place is what lets `commit()` serialise a shallow
    snapshot in a worker thread while the event loop goes on writing.
    """

    document_id_class = str  # type: ignore[assignment]  # TinyDB types its ids as int, takes any class

    def put(self, doc_id: str, document: dict[str, Any]) -> None:
        # Straight into the storage's dict: TinyDB's own update path rebuilds the whole table on
        # every write, which makes importing 10,000 trainings quadratic.
        tables = self._storage.read() or {}
        tables.setdefault(self.name, {})[doc_id] = document
        self._storage.write(tables)
        self.clear_cache()

    def documents(self) -> list[dict[str, Any]]:
        """The stored documents themselves (callers must not change them): no copies, no Documents."""
        return list(cast("dict[str, dict[str, Any]]", self._read_table()).values())


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

    def __init__(self, home: Path | str | None = None, *, readonly: bool = False,
                 wait: float = 2.0) -> None:
        """`wait`: how long to wait for another writer to let go (a `logs --follow` holds the
        store only for a moment per poll) before saying who holds it."""
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
            self._acquire_lock(wait)
        self._log_chars: dict[str, int] = {}
        self._log_bytes: dict[str, int] = {}
        self._dirty_logs: set[str] = set()  # appended since the last checkpoint, not yet fsynced
        self._new_webhook_ids: list[str] = []  # remembered since the last checkpoint
        self._pending: list[tuple[int, bytes]] = []  # journal lines not yet on disk, with their seq
        journal = self._read_journal()  # before the database: see the module docstring
        data = self._load() or {}
        self._seq = self._durable_seq = int(data.get("meta", {}).get("journal", {}).get("seq", 0))
        self._seen_webhooks = self._load_webhook_ids()
        replayed = self._replay(journal, data)
        self._storage = _MemoryFirstStorage(data)
        self._db = TinyDB(storage=lambda: self._storage)
        self._db.table_class = _KeyedTable
        self._trainings: _KeyedTable = self._db.table("trainings", cache_size=0)  # type: ignore[assignment]
        self._journal_bytes = len(journal)
        self._commit_lock = asyncio.Lock()
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._checkpoint_io = threading.Lock()  # one checkpoint writes at a time, never an older one last
        self._db_seq = self._durable_seq
        if replayed and not readonly:
            self.flush()  # fold what a killed process left in the journal into the database

    # ----- lifecycle and ownership -------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / DB_FILE

    def _acquire_lock(self, wait: float) -> None:
        path = self.home / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
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
        self._trainings.put(_check_id(document["id"]), document)
        self._journal({"put": document})

    def find(self, ref: str) -> dict[str, Any] | None:
        """A training by id, or the latest training of a destination model `owner/name`."""
        if record := self.get(ref):
            return record
        matches = [r for r in self._trainings.documents() if r.get("destination") == ref]
        latest = max(matches, key=lambda r: r.get("created_at") or "", default=None)
        return dict(latest) if latest is not None else None

    def durations(self, trainer: str) -> list[float]:
        """Seconds from start to completion of the earlier successful trainings of a trainer,
        oldest completion first."""
        found = []
        for record in self._trainings.documents():
            if record.get("trainer") == trainer and record.get("status") == "succeeded":
                start = parse_time(record.get("started_at") or record.get("created_at"))
                end = parse_time(record.get("completed_at"))
                if start and end and end > start:
                    found.append((end, (end - start).total_seconds()))
        return [seconds for _, seconds in sorted(found)]

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
        data = suffix.encode("utf-8", errors="surrogateescape")
        at = self._log_size(training_id)
        try:
            with open(self.log_path(training_id), "ab") as file:
                file.write(data)
        except OSError as error:
            raise _write_error(self.log_path(training_id), error) from error
        self._log_chars[training_id] = len(logs)
        self._log_bytes[training_id] = at + len(data)
        self._dirty_logs.add(training_id)
        self._journal({"log": training_id, "at": at, "text": suffix})
        return suffix

    def _log_size(self, training_id: str) -> int:
        if training_id not in self._log_bytes:
            try:
                self._log_bytes[training_id] = self.log_path(training_id).stat().st_size
            except FileNotFoundError:
                self._log_bytes[training_id] = 0
        return self._log_bytes[training_id]

    # ----- webhook ids -------------------------------------------------------------------------
    def seen_webhook(self, webhook_id: str) -> bool:
        return webhook_id in self._seen_webhooks

    def remember_webhook(self, webhook_id: str) -> None:
        self._require_writable()
        if webhook_id not in self._seen_webhooks:
            self._seen_webhooks.add(webhook_id)
            self._new_webhook_ids.append(webhook_id)
            self._journal({"webhook": webhook_id})

    # ----- durability --------------------------------------------------------------------------
    def _journal(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        entry["seq"] = self._seq
        self._pending.append((self._seq, (json.dumps(entry, separators=(",", ":")) + "\n").encode()))

    @property
    def dirty(self) -> bool:
        return self._seq != self._durable_seq

    async def commit(self) -> None:
        """Make every change so far durable. Concurrent callers share one write (group commit)."""
        wanted = self._seq
        async with self._commit_lock:
            if self._durable_seq >= wanted:
                return  # the write that just finished carried this caller's changes too
            lines, upto = self._pending, self._seq
            self._pending = []
            try:
                written = await asyncio.to_thread(self._append_journal, [line for _, line in lines])
            except StoreWriteError:
                self._pending[:0] = lines
                raise
            self._journal_bytes += written
            self._durable_seq = max(self._durable_seq, upto)
            if self._journal_bytes > CHECKPOINT_BYTES and self._checkpoint_task is None:
                # Checkpoint in the background: commits go on into a fresh journal meanwhile.
                self._rotate_journal()
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
        if self.dirty or self._journal_bytes or self._rotated_journals():
            work = self._take_checkpoint()
            try:
                self._checkpoint(*work, truncate_active=True)
            except StoreWriteError:
                self._undo_checkpoint(work)
                raise
            self._durable_seq = max(self._durable_seq, work[0])
            self._pending = [(s, line) for s, line in self._pending if s > work[0]]
            self._journal_bytes = 0

    def _take_checkpoint(self) -> tuple[int, dict[str, Any], set[str], list[str]]:
        """What a checkpoint writes, taken on the event loop so that it is one consistent state."""
        seq = self._seq
        snapshot = self._storage.snapshot()
        snapshot["meta"] = {"journal": {"seq": seq}}
        logs, self._dirty_logs = self._dirty_logs, set()
        ids, self._new_webhook_ids = self._new_webhook_ids, []
        return seq, snapshot, logs, ids

    def _undo_checkpoint(self, work: tuple[int, dict[str, Any], set[str], list[str]]) -> None:
        self._dirty_logs |= work[2]
        self._new_webhook_ids[:0] = work[3]

    def _rotate_journal(self) -> None:
        active = self.home / JOURNAL_FILE
        try:
            os.rename(active, self.home / f"journal-{self._durable_seq:012d}.jsonl")
        except OSError:
            return  # keep appending to the active one; the next checkpoint folds it all
        self._journal_bytes = 0

    def _rotated_journals(self) -> list[Path]:
        return sorted(self.home.glob("journal-*.jsonl"))

    def _checkpoint(self, seq: int, snapshot: dict[str, Any], logs: set[str], ids: list[str], *,
                    truncate_active: bool = False) -> None:
        """File I/O only (it may run in a worker thread): fsync the logs, save the webhook ids and
        the database, then drop the journals the database now holds."""
        with self._checkpoint_io:
            if seq < self._db_seq:
                return  # a newer checkpoint already wrote a newer database
            try:
                for training_id in logs:
                    _fsync_path(self.log_path(training_id))
            except OSError as error:
                raise _write_error(self.home / LOG_DIR, error) from error
            if ids:
                self._append_webhook_ids(ids)
            _atomic_write(self.db_path, json.dumps(snapshot, separators=(",", ":")).encode())
            self._db_seq = seq
            for journal in self._rotated_journals():
                if int(journal.stem.split("-")[1]) <= seq:
                    journal.unlink(missing_ok=True)
            if truncate_active:
                with open(self.home / JOURNAL_FILE, "wb") as file:
                    os.fsync(file.fileno())

    def _append_journal(self, lines: list[bytes]) -> int:
        """Runs in a worker thread. Returns the bytes written."""
        path = self.home / JOURNAL_FILE
        payload = b"".join(lines)
        try:
            with open(path, "ab") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise _write_error(path, error) from error
        return len(payload)

    def _read_journal(self) -> bytes:
        """The rotated journals, oldest first, then the active one."""
        chunks = []
        for path in [*self._rotated_journals(), self.home / JOURNAL_FILE]:
            try:
                chunks.append(path.read_bytes())
            except FileNotFoundError:
                continue
            except OSError as error:
                raise StoreError(f"cannot read the journal {path}: {error.strerror}") from error
            if chunks[-1] and not chunks[-1].endswith(b"\n"):
                chunks[-1] += b"\n"  # a torn last line stays alone on its line
        return b"".join(chunks)

    def _replay(self, journal: bytes, data: dict[str, Any]) -> int:
        """Apply the journal entries newer than the database to `data` (and, when writing, to the
        log files). Returns how many were applied."""
        trainings = data.setdefault("trainings", {})
        applied = 0
        for line in journal.split(b"\n"):
            try:
                entry = json.loads(line)
                seq = int(entry["seq"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: never acknowledged
            if seq <= self._durable_seq:
                continue
            if "put" in entry:
                trainings[entry["put"]["id"]] = entry["put"]
            elif "webhook" in entry:
                self._seen_webhooks.add(entry["webhook"])
                self._new_webhook_ids.append(entry["webhook"])
            elif "log" in entry and not self.readonly:
                self._replay_log(entry["log"], int(entry["at"]), entry["text"])
            self._seq = max(self._seq, seq)
            applied += 1
        self._durable_seq = self._seq
        return applied

    def _replay_log(self, training_id: str, at: int, text: str) -> None:
        path = self.log_path(training_id)
        data = text.encode("utf-8", errors="surrogateescape")
        size = path.stat().st_size if path.exists() else 0
        if size >= at + len(data) or size < at:
            return  # already there (or a gap that cannot be mended from here)
        with open(path, "r+b" if path.exists() else "wb") as file:
            file.truncate(at)
            file.seek(at)
            file.write(data)
        self._dirty_logs.add(training_id)

    def _append_webhook_ids(self, webhook_ids: list[str]) -> None:
        path = self.home / WEBHOOK_IDS_FILE
        try:
            with open(path, "a", encoding="utf-8") as file:
                file.write("".join(f"{i.replace(chr(10), ' ')}\n" for i in webhook_ids))
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
