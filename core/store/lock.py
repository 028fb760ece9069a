"""Who writes the store: an exclusive lock on `replitrack.lock`, whose content names the holder
(PID, what it is, its local API URL and the secret that API wants). The file is 0600: the secret
lets the CLI act through the holder's local API, and only its user may read it."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import StoreInUseError
from core.store.files import open_private

LOCK_FILE = "replitrack.lock"


def describe_process() -> str:
    """What this process is, for another one that finds the store held: `replitrack logs`."""
    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) != "replitrack" and not program.endswith(os.path.join("tui", "cli", "__main__.py")):
        return "a Python process"
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
    return f"`replitrack {command}`" if command else "the replitrack app"


class StoreLock:
    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, wait: float) -> None:
        """Take the lock, waiting up to `wait` seconds for a brief holder to let go."""
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
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
                owner = read_owner(self.path.parent) or {}
                raise StoreInUseError(str(self.path.parent), owner.get("pid"), owner.get("api"),
                                      what=owner.get("what")) from None
        self.fd = fd
        self.write_owner(None, None)

    def write_owner(self, api_url: str | None, api_secret: str | None) -> None:
        if self.fd is None:
            return
        owner = {"pid": os.getpid(), "what": describe_process(), "api": api_url}
        if api_secret:
            owner["secret"] = api_secret
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(owner).encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def read_owner(home: Path) -> dict[str, Any] | None:
    """What holds the store at `home` (`pid`, `what`, `api`, `secret`), or None if nothing does."""
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
                owner = json.loads(os.pread(fd, 65536, 0) or b"{}")
            except (OSError, ValueError):
                owner = {}
            return owner if isinstance(owner, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it
    finally:
        os.close(fd)
