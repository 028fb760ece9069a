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

    def __init__(self, home: str, pid: int | None, api_url: str | None = None, *,
                 what: str | None = None) -> None:
        self.home, self.pid, self.api_url = home, pid, api_url
        who = f"PID {pid}" if pid else "another process"
        if what and isinstance(what, str):
            who = f"PID {pid} ({what})" if pid else what
        super().__init__(
            f"the store at {home} is already in use by {who} (another replitrack?). "
            "Stop it, or set REPLITRACK_HOME to use a different store."
        )


class StoreWriteError(StoreError):
    """A write failed (disk full, permissions); the previous state on disk is intact."""


class BadArgumentError(ReplitrackError):
    """A value given to replitrack is unusable before anything is sent (bad id, name, file)."""

    exit_code = 64  # sysexits' EX_USAGE, as for a bad command line: 2 means "canceled" to scripts


class ApiError(ReplitrackError):
    """Replicate answered with an error (or could not be reached). RFC 7807 fields when present."""

    def __init__(
        self, message: str, *, status: int | None = None, title: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.title, self.detail = status, title, detail


class AuthError(ApiError):
    """401: the token is missing, wrong or revoked."""


class NotFoundError(ApiError):
    """404: `kind` says what was missing ("training", "destination", "model", ...), `name` which one."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        name: str = "",
        status: int | None = 404,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, status=status, title=title, detail=detail)
        self.kind, self.name = kind, name


class RateLimitError(ApiError):
    """429 still after the retries; `retry_after` is Replicate's hint in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, status=status, title=title, detail=detail)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx still after the retries (or at once for a request that is not safe to repeat)."""


class NetworkError(ApiError):
    """No answer at all: connection refused, DNS failure, timeout."""


class ValidationError(ApiError):
    """400/422: Replicate rejected what was sent; `detail` is its explanation."""
