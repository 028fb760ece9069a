"""Every error replitrack reports to a person: each message says what happened and what to do."""

from __future__ import annotations


class ReplitrackError(Exception):
    """Base of every error shown to the user; `str(error)` is the whole message."""

    exit_code: int = 1


class ConfigError(ReplitrackError):
    """Missing or invalid configuration (no token, bad URL, unreadable config file)."""


class StoreError(ReplitrackError):
    """The local store cannot be read or written."""


class StoreInUseError(StoreError):
    """Another process holds the store."""

    def __init__(self, home: str, pid: int | None, api_url: str | None = None) -> None:
        self.home, self.pid, self.api_url = home, pid, api_url
        who = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"the store at {home} is already in use by {who} (another replitrack?). "
            "Stop it, or set REPLITRACK_HOME to use a different store."
        )


class StoreWriteError(StoreError):
    """A write failed (disk full, permissions); the previous state on disk is intact."""
