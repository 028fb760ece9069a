"""The training records: a TinyDB file that is only ever replaced whole, held in memory between
checkpoints. Loading checks its shape: a file that is not what replitrack writes is moved aside
with a message (its usable records kept), never a traceback and never an empty store in silence."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from tinydb.storages import Storage
from tinydb.table import Table

from core.errors import StoreError
from core.store.codec import decode, encode
from core.store.files import check_id

DB_FILE = "replitrack.json"
_YIELD_EVERY = 8  # records encoded between explicit GIL hand-overs (~0.2 ms of work)


class KeyedTable(Table):
    """A table whose document ids are the training ids, and whose documents are replaced whole.

    Never mutating a stored document in place is what lets a checkpoint serialise a shallow
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


class MemoryFirstStorage(Storage):
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


def usable_record(record: object) -> bool:
    """A training record the rest of replitrack can rely on: a dict with a valid id."""
    if not isinstance(record, dict):
        return False
    try:
        check_id(record.get("id"))
    except ValueError:
        return False
    return True


def encode_database(snapshot: dict[str, Any]) -> Iterator[bytes]:
    """The database file, record by record. Run in a worker thread, this lets the event loop take
    the GIL between records: one dump of 10,000 trainings would hold it for tens of ms. Every
    few records it also gives the GIL away at once (rather than after the 5 ms switch interval)."""
    yield b"{"
    for t, (name, table) in enumerate(snapshot.items()):
        yield (b"," if t else b"") + encode(name) + b":"
        if name == "meta" or not isinstance(table, dict):
            yield encode(table)
            continue
        yield b"{"
        for i, (key, document) in enumerate(table.items()):
            yield (b"," if i else b"") + encode(key) + b":" + encode(document)
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                time.sleep(0)  # let a waiting event loop run now
        yield b"}"
    yield b"}"


def load_database(path: Path, *, readonly: bool, notices: list[str]) -> tuple[dict[str, Any] | None, bool]:
    """The database file's content, or None if there is none. Returns (data, salvaged): salvaged
    means the file was moved aside and `data` holds what of it was usable (to be written anew)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, False
    except OSError as error:
        raise StoreError(f"cannot read the store {path}: {error.strerror}") from error
    problem, data = _check(raw)
    if problem is None:
        return data, False
    if readonly:
        raise StoreError(f"the store {path} is unreadable ({problem}); "
                         "open replitrack once to move it aside")
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now():%Y%m%dT%H%M%S%f}")
    try:
        path.rename(aside)
    except OSError as error:
        raise StoreError(f"the store {path} is unreadable ({problem}) and could not be moved aside "
                         f"({error.strerror}); move it away yourself and start replitrack again") from error
    kept = len((data or {}).get("trainings", {}))
    notices.append(
        f"The store file {path} was unreadable ({problem}); it was moved to {aside} and "
        + (f"the {kept} usable trainings in it were kept. " if kept else "a clean store started. ")
        + "Import your trainings again from Replicate (`replitrack import`, or the sync screen)."
    )
    return data, True


def _check(raw: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """(None, data) for a sound file; else (what is wrong, what of it is usable)."""
    if not raw.strip():
        return f"it is empty ({len(raw)} bytes)", None
    try:
        data = decode(raw)
    except ValueError as error:
        return f"not JSON: {error}", None
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        return "not a TinyDB document", None
    seq = data.get("meta", {}).get("journal", {"seq": 0})
    if not isinstance(seq, dict) or not isinstance(seq.get("seq", 0), int):
        return "its journal position is not a number", None
    trainings = data.get("trainings", {})
    bad = [key for key, record in trainings.items() if not usable_record(record) or record["id"] != key]
    if bad:
        for key in bad:
            del trainings[key]
        return f"{len(bad)} record(s) of the wrong shape, e.g. {bad[0][:40]!r}", data
    return None, data
