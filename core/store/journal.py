"""The write-ahead journal: every change since the last checkpoint, one JSON line each, with a
sequence number. A commit appends the pending lines with one fsync; a failed append is cut back,
so no fragment stays for the next line to glue onto. Replay reads line by line: a line that is
not JSON was never acknowledged (a torn write) and is skipped; a JSON line of the wrong shape
means someone else wrote here, and the journal is moved aside with a message."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import StoreError
from core.store.codec import decode, encode
from core.store.files import append_whole, check_id, open_private, write_error
from core.store.records import usable_record

JOURNAL_FILE = "journal.jsonl"  # the active journal; rotated ones are journal-<seq>.jsonl


@dataclass
class Replayed:
    """What a journal holds beyond the database's sequence number."""

    puts: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: list[str] = field(default_factory=list)
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    last_seq: int = 0
    applied: int = 0
    bad: int = 0


class Journal:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.active = home / JOURNAL_FILE
        self.bytes = 0  # the active journal's size, as far as this process wrote it
        self.pending: list[tuple[int, bytes]] = []  # lines not yet on disk, with their seq

    def add(self, seq: int, entry: dict[str, Any]) -> None:
        entry["seq"] = seq
        self.pending.append((seq, encode(entry) + b"\n"))

    def append(self, lines: list[bytes]) -> int:
        """Write lines durably (may run in a worker thread). Returns the bytes written."""
        payload = b"".join(lines)
        append_whole(self.active, payload, fsync=True, line_aligned=True)
        return len(payload)

    def rotated(self) -> list[Path]:
        return sorted(self.home.glob("journal-*.jsonl"))

    def rotate(self, seq: int) -> bool:
        """Start a fresh active journal (a background checkpoint folds the rotated one)."""
        try:
            os.rename(self.active, self.home / f"journal-{seq:012d}.jsonl")
        except OSError:
            return False  # keep appending to the active one; the next checkpoint folds it all
        self.bytes = 0
        return True

    def drop_folded(self, seq: int, *, truncate_active: bool) -> None:
        """Delete what a database holding everything up to `seq` made redundant."""
        for journal in self.rotated():
            if int(journal.stem.split("-")[1]) <= seq:
                journal.unlink(missing_ok=True)
        if truncate_active:
            try:
                fd = open_private(self.active, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as error:
                raise write_error(self.active, error) from error

    def read(self) -> bytes:
        """The rotated journals, oldest first, then the active one."""
        chunks = []
        for path in [*self.rotated(), self.active]:
            try:
                chunk = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as error:
                raise StoreError(f"cannot read the journal {path}: {error.strerror}") from error
            if chunk and not chunk.endswith(b"\n"):
                chunk += b"\n"  # a torn last line stays alone on its line
            chunks.append(chunk)
        return b"".join(chunks)

    def move_aside(self) -> Path | None:
        """Keep a copy of the journals for inspection (their usable entries are in the store)."""
        aside = self.home / f"journal.corrupt-{datetime.now():%Y%m%dT%H%M%S%f}.jsonl"
        try:
            with open(aside, "wb") as out:
                out.write(self.read())
            os.chmod(aside, 0o600)
        except OSError:
            return None
        return aside


def replay(journal: bytes, after: int) -> Replayed:
    """The entries with a sequence number above `after`, checked for shape."""
    found = Replayed(last_seq=after)
    for line in journal.split(b"\n"):
        if not line.strip():
            continue
        try:
            entry = decode(line)
        except ValueError:
            continue  # a torn write: never acknowledged
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or not _usable(entry):
            found.bad += 1
            continue
        if seq <= after:
            continue
        if "put" in entry:
            found.puts[entry["put"]["id"]] = entry["put"]
        elif "webhook" in entry:
            found.webhooks.append(entry["webhook"])
        else:
            found.logs.append((entry["log"], entry["at"], entry["text"]))
        found.last_seq = max(found.last_seq, seq)
        found.applied += 1
    return found


def _usable(entry: dict[str, Any]) -> bool:
    if "put" in entry:
        return usable_record(entry["put"])
    if "webhook" in entry:
        return isinstance(entry["webhook"], str)
    if "log" in entry:
        try:
            check_id(entry["log"])  # never a path outside the store
        except ValueError:
            return False
        at = entry.get("at")
        return isinstance(at, int) and not isinstance(at, bool) and at >= 0 and isinstance(entry.get("text"), str)
    return False
