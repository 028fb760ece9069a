"""Large training bodies (a `logs` webhook, a poll of a running training) verified and decoded in a
worker process, so that the event loop only ever sees the part of the log that is new.

Every such body carries the WHOLE log: at a million lines that is ~100 MB, and checking its
signature and decoding its JSON costs about a second of CPU. A thread would not help: the HMAC
input is built and `json.loads` runs as single C calls that hold the GIL for hundreds of ms. So
one worker process does it in two steps:

1. verify (webhooks) and decode; the worker keeps the log and answers with the rest of the
   training and the log's length;
2. the caller says how much of the log it already has (from the store), and the worker sends
   back only what follows, UTF-8 encoded in pieces of at most `PIECE_CHARS` characters
   (unpickling bytes is a copy, unpickling a big str is a slow decode).

There is one worker, so the two steps of a body always reach the process that holds its log, and
bodies are decoded in the order they arrived. Small bodies are cheaper to decode in place than to
ship to another process: callers check `is_large` first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import mmap
import multiprocessing
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError, ReplitrackError
from core.webhooks import WebhookVerificationError, verify_webhook

LARGE_BODY = 256 * 1024  # bytes; below this, decoding in place costs less than the round trip
PIECE_CHARS = 64 * 1024  # characters of log per piece: parsing one takes a few ms on the loop
SPOOL_DIRS = ("/dev/shm",)  # memory-backed, where there is one; else the temporary directory
HELD_BODIES = 2  # decoded logs the worker keeps while their tails are asked for (one is in use)


class BodyWorkerError(ReplitrackError):
    """The decoding process died or could not start (e.g. killed by the OOM killer)."""


@dataclass
class DecodedBody:
    """A decoded training body. `payload["logs"]` is None; `pieces` hold the log from character
    `log_start` on (see `decode_piece`); `logs_length` is the whole log's (None: it had none)."""

    payload: dict[str, Any]
    logs_length: int | None = None
    log_start: int = 0
    pieces: list[bytes] = field(default_factory=list)
    error: tuple[str, str] | None = None  # (reason, message) when the body was refused


def is_large(body: Body | None) -> bool:
    return body is not None and len(body) >= LARGE_BODY


class SpooledBody:
    """A request body written to a file chunk by chunk as it arrives, so that no 64 MiB copy is
    ever made on the event loop (at that size one copy costs tens of ms: page faults included).
    `view()` maps it for whoever needs the bytes (the event log); the worker reads the file.
    The caller closes it (which deletes the file)."""

    def __init__(self) -> None:
        directory = next((d for d in SPOOL_DIRS if os.access(d, os.W_OK)), None)
        fd, self.path = tempfile.mkstemp(prefix="replitrack-body-", dir=directory)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self.size = 0
        self._map: mmap.mmap | None = None

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.size += len(chunk)

    async def write_all(self, chunks: list[bytes]) -> None:
        """Write chunks from a thread (a file write does not hold the GIL): even to memory, 64 MiB
        of writes cost tens of ms of page faults, which the event loop need not wait for."""
        data = list(chunks)
        self.size += sum(len(chunk) for chunk in data)
        await asyncio.to_thread(_write_all, self._file.fileno(), data)

    def __len__(self) -> int:
        return self.size

    def view(self) -> mmap.mmap | bytes:
        """The body's bytes, mapped from the file (read-only)."""
        if self.size == 0:
            return b""
        if self._map is None:
            self._file.flush()
            self._map = mmap.mmap(self._file.fileno(), self.size, access=mmap.ACCESS_READ)
        return self._map

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


Body = bytes | SpooledBody


class BodyDecoder:
    """The worker process, started on first use (spawned: forking a process with threads is unsafe)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._tokens = itertools.count(1)
        self._one_at_a_time: asyncio.Lock | None = None  # one held log in the worker: memory bounded

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def _call(self, function: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), function, *args)
        except BrokenProcessPool:
            self._pool = None  # the next body starts a fresh worker
            raise BodyWorkerError(
                "the process that decodes large bodies died (out of memory, or killed); this body "
                "was not applied, and the next one starts a new process") from None

    async def warm_up(self) -> None:
        """Start the worker now, so that the first large body does not wait for its start."""
        await self._call(_ping)

    async def decode(self, body: Body, *, log_start: Callable[[dict[str, Any]], int | None],
                     headers: Mapping[str, str] | None = None, secret: str | None = None,
                     verify_at: float | None = None) -> DecodedBody:
        """Decode `body`, verifying its webhook signature first when `secret` is given.

        `log_start(payload)` says from which character on the caller wants the log (what it
        already has), or None for none of it (e.g. a duplicate)."""
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        spooled = body if isinstance(body, SpooledBody) else await asyncio.to_thread(_spool, body)
        try:
            async with self._one_at_a_time:
                return await self._decode(spooled, log_start, headers, secret, verify_at)
        finally:
            if spooled is not body:
                spooled.close()

    async def _decode(self, body: SpooledBody, log_start: Callable[[dict[str, Any]], int | None],
                      headers: Mapping[str, str] | None, secret: str | None,
                      verify_at: float | None) -> DecodedBody:
        token = next(self._tokens)
        check = (dict(headers or {}), secret, verify_at) if secret is not None else None
        status, value, length = await self._call(_open, body.path, check, token)
        if status != "ok":
            return DecodedBody({}, error=(status, value))
        decoded = DecodedBody(value, length)
        if length is None:
            return decoded
        start = log_start(value)
        if start is None or start >= length:
            await self._call(_drop, token)
            decoded.log_start = length
            return decoded
        decoded.log_start = start
        decoded.pieces = await self._call(_tail, token, start)
        return decoded

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _write_all(fd: int, chunks: list[bytes]) -> None:
    while chunks:
        written = os.writev(fd, chunks[:512])  # under IOV_MAX
        while chunks and written >= len(chunks[0]):
            written -= len(chunks.pop(0))
        if chunks and written:
            chunks[0] = chunks[0][written:]


def _spool(body: bytes) -> SpooledBody:
    """(In a thread: a file write does not hold the GIL.) A body already in memory, to a file."""
    spooled = SpooledBody()
    spooled.write(body)
    return spooled


def decode_piece(piece: bytes) -> str:
    return piece.decode("utf-8", "surrogatepass")  # JSON may carry lone surrogates: keep them


# ----- in the worker process ----------------------------------------------------------------------
_held: OrderedDict[int, str] = OrderedDict()


def _ping() -> bool:
    return True


def _open(path: str, check: tuple[dict[str, str], str, float | None] | None,
          token: int) -> tuple[str, Any, int | None]:
    """("ok", payload without its log, log length) or (reason, message, None). Errors are returned,
    not raised: the project's exceptions do not survive pickling."""
    with open(path, "rb") as file:
        body = file.read()
    payload: Any  # a signed body can still be any JSON value
    try:
        if check is not None:
            headers, secret, now = check
            payload = verify_webhook(body, headers, secret, now=now)
        else:
            payload = json.loads(body)
    except WebhookVerificationError as error:
        return error.reason, str(error), None
    except ConfigError as error:
        return "secret_unknown", str(error), None
    except (ValueError, UnicodeDecodeError):
        return "not_json", "the body is not JSON", None
    if not isinstance(payload, dict):
        return "not_a_training", f"the body is a JSON {type(payload).__name__}, not a training object", None
    logs = payload.get("logs")
    if not isinstance(logs, str) or not logs:
        return "ok", payload, None
    payload["logs"] = None
    _held[token] = logs
    while len(_held) > HELD_BODIES:  # a caller that never asked: do not keep its log forever
        _held.popitem(last=False)
    return "ok", payload, len(logs)


def _tail(token: int, start: int) -> list[bytes]:
    """The log from `start` on, in pieces that end at a line end where one is near enough: the
    parser may then take each piece as complete lines."""
    logs = _held.pop(token, None)
    if logs is None:
        raise LookupError(f"body {token} is no longer held")
    pieces = []
    at = max(0, start)
    while at < len(logs):
        end = min(len(logs), at + PIECE_CHARS)
        if end < len(logs):
            cut = logs.rfind("\n", at, end)
            end = cut + 1 if cut >= 0 else end
        pieces.append(logs[at:end].encode("utf-8", "surrogatepass"))
        at = end
    return pieces


def _drop(token: int) -> None:
    _held.pop(token, None)
