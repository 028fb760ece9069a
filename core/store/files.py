"""File primitives the whole store uses: private modes, appends that are whole or nothing, and
whole-file replacement. Everything under the store is private (directories 0700, files 0600)
whatever the umask: it holds training inputs, logs and webhook bodies."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from core.errors import StoreWriteError

DIR_MODE = 0o700
FILE_MODE = 0o600
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700 even if it already existed wider."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        try:
            os.chmod(path, DIR_MODE)
        except PermissionError:
            pass  # not ours to narrow (a reader of someone else's store)


def open_private(path: Path, flags: int) -> int:
    """os.open with mode 0600; a file created earlier with a wider mode is narrowed."""
    fd = os.open(path, flags, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def append_whole(path: Path, payload: bytes, *, fsync: bool, line_aligned: bool = False) -> int:
    """Append `payload` entirely or not at all; returns the offset it starts at.

    A failed write (disk full, file-size limit) may have written part of it: the file is cut back
    to its length before, so the next append does not glue onto a fragment. `line_aligned`: if
    the file does not end with a newline (a cut that itself failed, or an older torn write), start
    on a fresh line so that readers resynchronise on line boundaries.
    """
    try:
        fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        start = os.fstat(fd).st_size
        prefix = b"\n" if line_aligned and start and os.pread(fd, 1, start - 1) != b"\n" else b""
        payload = prefix + payload
        try:
            view, done = memoryview(payload), 0
            while done < len(payload):
                done += os.write(fd, view[done:])
            if fsync:
                os.fsync(fd)
        except OSError as error:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass  # line_aligned appends still resynchronise after it
            raise write_error(path, error) from error
        return start + len(prefix)
    finally:
        os.close(fd)


def atomic_write(path: Path, payload: bytes | Iterable[bytes]) -> None:
    """Replace `path` with `payload` (bytes, or chunks written as they come): temp file in the same
    directory (0600), fsync, rename, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 18) as file:
            for chunk in [payload] if isinstance(payload, bytes) else payload:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        raise


def fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_id(training_id: object) -> str:
    """A training id that can name a file under the store (never a path outside it)."""
    if not isinstance(training_id, str) or not _SAFE_ID.match(training_id) or training_id in (".", ".."):
        raise ValueError(f"not a valid training id: {training_id!r}")
    return training_id


def write_error(path: Path, error: OSError) -> StoreWriteError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full"
    elif error.errno == errno.EFBIG:
        reason = "the file has reached the size limit set for this process"
    else:
        reason = error.strerror or str(error)
    return StoreWriteError(
        f"could not save to {path}: {reason}. The previous saved state is intact and the changes "
        "are kept in memory; free some space (or fix the permissions) and replitrack saves them "
        "on its next write."
    )
