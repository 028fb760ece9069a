"""Each training's log: its own append-only file under `logs/` (a long training's log is MBs and
TinyDB rewrites its whole file on each write). A file only grows by the log's new suffix, and a
failed append leaves no fragment."""

from __future__ import annotations

import os
from pathlib import Path

from core.store.files import append_whole, check_id, fsync_path, open_private, write_error

LOG_DIR = "logs"


class LogFiles:
    def __init__(self, home: Path) -> None:
        self.dir = home / LOG_DIR
        self._chars: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self.dirty: set[str] = set()  # appended since the last checkpoint, not yet fsynced

    def path(self, training_id: str) -> Path:
        return self.dir / f"{check_id(training_id)}.log"

    def read(self, training_id: str) -> str:
        try:
            return self.path(training_id).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def length(self, training_id: str) -> int:
        """How many characters of the training's cumulative log are stored."""
        if training_id not in self._chars:
            self._chars[training_id] = len(self.read(training_id))
        return self._chars[training_id]

    def size(self, training_id: str) -> int:
        if training_id not in self._bytes:
            try:
                self._bytes[training_id] = self.path(training_id).stat().st_size
            except FileNotFoundError:
                self._bytes[training_id] = 0
        return self._bytes[training_id]

    def extend(self, training_id: str, logs: str) -> tuple[str, int]:
        """Append what `logs` (the cumulative log) adds to what is stored. Returns the suffix and
        the byte offset it was written at; raises StoreWriteError with nothing changed."""
        known = self.length(training_id)
        if len(logs) <= known:
            return "", self.size(training_id)
        suffix = logs[known:]
        data = suffix.encode("utf-8", errors="surrogateescape")
        at = append_whole(self.path(training_id), data, fsync=False)
        self._chars[training_id] = len(logs)
        self._bytes[training_id] = at + len(data)
        self.dirty.add(training_id)
        return suffix, at

    def replay(self, training_id: str, at: int, text: str) -> None:
        """Put a journalled suffix back at its place (an unsynced append lost with the page cache)."""
        path = self.path(training_id)
        data = text.encode("utf-8", errors="surrogateescape")
        size = path.stat().st_size if path.exists() else 0
        if size >= at + len(data) or size < at:
            return  # already there (or a gap that cannot be mended from here)
        try:
            fd = open_private(path, os.O_RDWR | os.O_CREAT)
            try:
                os.ftruncate(fd, at)
                os.pwrite(fd, data, at)
            finally:
                os.close(fd)
        except OSError as error:
            raise write_error(path, error) from error
        self.dirty.add(training_id)

    def fsync(self, training_ids: set[str]) -> None:
        try:
            for training_id in training_ids:
                fsync_path(self.path(training_id))
        except OSError as error:
            raise write_error(self.dir, error) from error
