"""The public face: what the tunnel forwards. It serves `POST /webhooks/replicate` and a health
check, nothing else.

A webhook is answered 2xx only once its update is durable in the store (Replicate retries the
terminal webhook on anything else), and every request, accepted or not, goes to the event log.
The raw bytes are verified and kept as received: re-encoding JSON would break the signature.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from core.bodies import LARGE_BODY, Body, BodyWorkerError, SpooledBody, is_large
from core.errors import ConfigError, ReplitrackError, StoreWriteError
from core.models import Status, format_time, utcnow
from core.observers import Observers
from core.service import TrainingService
from core.updates import Source
from core.webhooks import WebhookVerificationError, verify_webhook
from listener.events import EventLog, EventRecord

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/replicate"
HEALTH_PATH = "/health"
DEFAULT_MAX_BODY = 64 * 1024 * 1024  # a `logs` webhook carries the whole log; 1 MiB limits hit 413
SPOOL_BATCH = 1024 * 1024  # a large body goes to its file in writes of about this size
SECRET_RETRY_SECONDS = 5.0  # how long a failed secret fetch is remembered before trying again
SECRET_WAIT_SECONDS = 2.0  # how long a webhook waits for the secret to be fetched before a 503
FORWARD_TIMEOUT = 10.0
FORWARDED_HEADER = "x-replitrack-forwarded"  # marks a relayed webhook (the value is our event id)
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
               "te", "trailer", "proxy-connection"}
_JSON_TYPES = ("application/json", "text/json")

# The HTTP status for each reason a webhook is refused: a forgery is 401, a malformed request 400.
REJECT_STATUS = {
    "missing_headers": 400,
    "bad_signature": 401,
    "malformed_signature": 401,
    "stale_timestamp": 400,
    "future_timestamp": 400,
    "not_utf8": 400,
    "not_json": 400,
    "not_a_training": 400,
    "unsupported_media_type": 415,
    "payload_too_large": 413,
    "secret_unknown": 503,
    "store_write_failed": 503,
    "decoder_failed": 503,
}


def problem(status: int, reason: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 7807 problem+json answer: `detail` says what happened and what to do."""
    body = {"type": f"urn:replitrack:problem:{reason}", "title": reason.replace("_", " "),
            "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


def infer_event(payload: Mapping[str, Any]) -> str:
    """Which webhook event this body is. Replicate does not say; its docs describe the bodies:
    `start` has no logs yet, `completed` a terminal status, `output`/`logs` everything between."""
    status = Status.parse(payload.get("status") if isinstance(payload.get("status"), str) else None)
    if status.terminal:
        return "completed"
    if payload.get("output"):
        return "output"
    if payload.get("logs"):
        return "logs"
    return "start"


class WebhookSecret:
    """The signing secret and where it came from: a flag, the environment, or Replicate's API
    (fetched once and kept in memory; a failed fetch is retried after a few seconds)."""

    def __init__(self, explicit: str | None, fetch: Callable[[], Awaitable[str]] | None, *,
                 explicit_source: str = "--webhook-secret") -> None:
        env = os.environ.get("REPLICATE_WEBHOOK_SECRET", "").strip()
        self._value: str | None = (explicit or "").strip() or env or None
        if (explicit or "").strip():
            self.source = explicit_source
        elif env:
            self.source = "REPLICATE_WEBHOOK_SECRET"
        else:
            self.source = "Replicate account (GET /v1/webhooks/default/secret)"
        self._fetch = fetch
        self._failed_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = None

    @property
    def known(self) -> bool:
        return self._value is not None

    async def get(self, wait: float = SECRET_WAIT_SECONDS) -> str | None:
        """The secret, fetching it if needed but waiting at most `wait` seconds: a webhook must be
        answered quickly (a 503 makes Replicate retry), and an offline start must not hang."""
        if self._value is not None:
            return self._value
        if self._fetch is None:
            self.error = "no Replicate client to fetch it from"
            return None
        if self._task is None:
            if self._failed_at is not None and time.monotonic() - self._failed_at < SECRET_RETRY_SECONDS:
                return None
            self._task = asyncio.ensure_future(self._fetch_once())
        try:
            await asyncio.wait_for(asyncio.shield(self._task), wait)
        except asyncio.TimeoutError:
            self.error = f"Replicate did not answer within {wait:g} s (still trying)"
        return self._value

    async def _fetch_once(self) -> None:
        assert self._fetch is not None
        try:
            self._value = await self._fetch()
            self.error = None
        except ReplitrackError as error:
            self._failed_at = time.monotonic()
            self.error = str(error)
        finally:
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def describe(self) -> str:
        """One line for the user: where the secret comes from, never the secret itself."""
        if self._value:
            return f"{self.source} (whsec_…{self._value[-4:]})"
        return f"unknown: {self.error or 'not fetched yet'}"


class WebhookReceiver:
    """Verifies, applies, commits and records webhooks; the public app and replays both use it."""

    def __init__(self, service: TrainingService, secret: WebhookSecret, events: EventLog, *,
                 max_body: int = DEFAULT_MAX_BODY, forward_to: str | None = None,
                 forward_events: set[str] | None = None) -> None:
        self.service = service
        self.secret = secret
        self.events = events
        self.max_body = int(max_body)
        self.forward_to = forward_to
        self.forward_events = forward_events
        self.accepted = 0
        self.rejected = 0
        self.last_webhook_at: str | None = None
        self.last_error: str | None = None  # the last background failure (fetch, forward)
        self._forward_subscribers: Observers[EventRecord] = Observers()
        self._fetching: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: ClientSession | None = None

    # ----- the public aiohttp app --------------------------------------------------------------
    def public_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body, middlewares=[self._public_errors])
        app.router.add_post(WEBHOOK_PATH, self._handle_post)
        app.router.add_get(HEALTH_PATH, _health)
        return app

    async def _handle_post(self, request: web.Request) -> web.Response:
        headers = {key.lower(): value for key, value in request.headers.items()}
        body = await self._read_body(request)
        try:
            record = await self.receive(body, headers, method=request.method, path=request.path_qs,
                                        declared_size=request.content_length)
        finally:
            if isinstance(body, SpooledBody):
                # In a thread: freeing a 142 MB file's pages held the loop for ~50 ms.
                await asyncio.to_thread(body.close)
        return _response(record)

    async def _read_body(self, request: web.Request) -> Body | None:
        """The body as it arrives; a large one goes to a file chunk by chunk, never copied whole
        on the event loop. None: it exceeds `max_body`."""
        if request.content_length is not None and request.content_length > self.max_body:
            return None
        chunks: list[bytes] = []
        size = waiting = 0
        spooled: SpooledBody | None = None
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > self.max_body:
                    if spooled is not None:
                        spooled.close()
                    return None
                chunks.append(chunk)
                waiting += len(chunk)
                if size >= LARGE_BODY and waiting >= SPOOL_BATCH:
                    spooled = spooled or SpooledBody()
                    await spooled.write_all(chunks)
                    chunks, waiting = [], 0
            if spooled is not None and chunks:
                await spooled.write_all(chunks)
        except BaseException:
            if spooled is not None:
                spooled.close()
            raise
        return spooled if spooled is not None else b"".join(chunks)

    @web.middleware
    async def _public_errors(self, request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Anything but the two routes is a problem+json answer, and is logged like any request
        (a probe through the tunnel shows in the event log); nothing else is reachable here."""
        try:
            return await handler(request)
        except web.HTTPNotFound:
            status, reason = 404, "not_found"
            detail = f"this is replitrack's public webhook receiver: it serves only POST {WEBHOOK_PATH} and GET {HEALTH_PATH}"
        except web.HTTPMethodNotAllowed as error:
            status, reason = 405, "method_not_allowed"
            detail = f"{request.method} is not allowed here; use {', '.join(sorted(error.allowed_methods))}"
        except web.HTTPException as error:
            status, reason, detail = error.status, "http_error", error.reason or "request refused"
        record = EventRecord(
            id=self.events.new_id(), received_at=format_time(utcnow()) or "", method=request.method,
            path=request.path_qs, verdict="rejected", reason="", http_status=status,
            headers={k.lower(): v for k, v in request.headers.items()}, body_size=request.content_length or 0)
        self._reject(record, status, reason, detail)
        self.rejected += 1
        await self.events.add(record, None)
        return _response(record)

    # ----- receiving ---------------------------------------------------------------------------
    async def receive(self, body: Body | None, headers: Mapping[str, str], *, method: str = "POST",
                      path: str = WEBHOOK_PATH, replay_of: str | None = None,
                      verify_at: float | None = None, declared_size: int | None = None) -> EventRecord:
        """Handle one webhook and record it. `body` None means it exceeded `max_body`.

        A replay (`replay_of`) is verified against the time it was first received and is not
        subject to the webhook-id dedup; the update rules still keep the store consistent."""
        started = time.perf_counter()
        headers = {str(k).lower(): str(v) for k, v in headers.items()}
        record = EventRecord(
            id=self.events.new_id(), received_at=format_time(utcnow()) or "", method=method, path=path,
            verdict="rejected", reason="", http_status=500, headers=headers,
            body_size=len(body) if body is not None else int(declared_size or 0),
            webhook_id=headers.get("webhook-id"), replay_of=replay_of,
        )
        try:
            await self._process(record, body, headers, replay=replay_of is not None, verify_at=verify_at)
        except Exception as error:  # never a traceback to the sender; the event log says what broke
            log.debug("webhook handling failed", exc_info=True)  # no handler by default: not over the TUI
            self._reject(record, 500, "internal_error",
                         f"replitrack failed to handle this webhook ({type(error).__name__}: {error}); "
                         "it was not saved, so the sender should retry")
            record.verdict = "error"
        record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if record.accepted:
            self.accepted += 1
            self.last_webhook_at = record.received_at
        else:
            self.rejected += 1
        raw = body.view() if isinstance(body, SpooledBody) else body
        await self.events.add(record, raw)  # type: ignore[arg-type]  # a mapped file reads as bytes
        if self._should_forward(record):
            self._spawn(self._forward(record, bytes(raw or b""), headers))
        return record

    async def _process(self, record: EventRecord, body: Body | None, headers: dict[str, str], *,
                       replay: bool, verify_at: float | None) -> None:
        if body is None:
            limit = _size(self.max_body)
            self._reject(record, 413, "payload_too_large",
                         f"the body exceeds the listener's limit of {limit}: start the listener with a "
                         "larger --max-body")
            return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
            self._reject(record, 415, "unsupported_media_type",
                         f"webhooks must be JSON (Content-Type: application/json), not {content_type[:60]!r}")
            return
        secret = await self.secret.get()
        if secret is None:
            self._reject(record, 503, "secret_unknown",
                         "the webhook signing secret is unknown, so this webhook cannot be verified and was "
                         f"not accepted ({self.secret.error or 'not fetched yet'}). Set REPLICATE_WEBHOOK_SECRET "
                         "or --webhook-secret, or check the API token and network.")
            return
        source: Source = "replay" if replay else "webhook"
        webhook_id = None if replay else record.webhook_id
        decoded = None
        if is_large(body):  # verified, decoded and cut to its new log in a worker process
            try:
                decoded = await self.service.bodies.decode(
                    body, headers=headers, secret=secret, verify_at=verify_at,
                    log_start=lambda payload: self._log_start(payload, webhook_id))
            except BodyWorkerError as error:
                self._reject(record, 503, "decoder_failed", f"{error} (answered 503 so that Replicate retries)")
                return
            if decoded.error is not None:
                reason, detail = decoded.error
                self._reject(record, REJECT_STATUS.get(reason, 400), reason, detail)
                return
            payload = decoded.payload
            record.event = infer_event({**payload, "logs": bool(decoded.logs_length)})
        else:
            assert isinstance(body, bytes)
            try:
                payload = verify_webhook(body, headers, secret, now=verify_at)
            except WebhookVerificationError as error:
                self._reject(record, REJECT_STATUS.get(error.reason, 400), error.reason, str(error))
                return
            except ConfigError as error:  # a fetched secret that is not a whsec_ key
                self._reject(record, 503, "secret_unknown", str(error))
                return
            record.event = infer_event(payload)
        record.training_id = payload["id"]
        try:
            if decoded is not None:
                await self.service.updater.prepare(payload["id"])
                result = await self.service.updater.apply_pieces(payload, decoded.log_start, decoded.pieces,
                                                                 source=source, webhook_id=webhook_id)
            else:
                result = self.service.updater.apply(payload, source=source, webhook_id=webhook_id)
        except ValueError as error:  # e.g. an id that cannot name a file
            self._reject(record, 400, "not_a_training", f"webhook is signed but not a usable training: {error}")
            return
        except StoreWriteError as error:  # its log could not be written: nothing of it was kept
            self._reject(record, 503, "store_write_failed", f"{error} (answered 503 so that Replicate retries)")
            return
        try:
            await self.service.store.commit()  # durable before 2xx: Replicate retries otherwise
        except StoreWriteError as error:
            if webhook_id is not None and result.outcome != "duplicate":
                self.service.store.forget_webhook(webhook_id)  # its retry is applied, not a duplicate
            message = str(error) if str(error).startswith("could not save") else f"could not save: {error}"
            self._reject(record, 503, "store_write_failed", f"{message} (answered 503 so that Replicate retries)")
            return
        stored = result.record or {}
        record.status = stored.get("status") or payload.get("status")
        record.progress = (result.progress.overall_percent if result.progress is not None
                           else stored.get("overall_percent"))
        record.reason = result.outcome
        record.verdict = ("duplicate" if result.outcome == "duplicate"
                          else "ignored" if result.outcome in ("stale", "final") else "accepted")
        record.http_status = 200
        record.response = {"ok": True, "event_id": record.id, "training_id": record.training_id,
                           "outcome": result.outcome, "event": record.event, "event_inferred": True,
                           "status": record.status}
        if result.outcome == "created" and not replay:
            self._spawn(self._fetch_unknown(record.training_id))

    def _log_start(self, payload: dict[str, Any], webhook_id: str | None) -> int | None:
        """How much of this training's log the store has: the worker sends only the rest."""
        if webhook_id is not None and self.service.store.seen_webhook(webhook_id):
            return None  # a duplicate: its log is not needed
        try:
            return self.service.store.log_length(payload["id"])
        except (ValueError, TypeError):
            return None  # not a usable id: the update says so

    def _reject(self, record: EventRecord, status: int, reason: str, detail: str) -> None:
        record.verdict, record.reason, record.http_status = "rejected", reason, status
        record.response = {"type": f"urn:replitrack:problem:{reason}", "title": reason.replace("_", " "),
                           "status": status, "detail": detail, "event_id": record.id}

    # ----- background work: fetching unknown trainings, forwarding -----------------------------
    async def _fetch_unknown(self, training_id: str) -> None:
        """A training first heard of by webhook: fetch it whole (a poll would, a few seconds later)."""
        if training_id in self._fetching:
            return
        self._fetching.add(training_id)
        try:
            await self.service.refresh(training_id, source="sync")
        except ReplitrackError as error:
            self.last_error = f"could not fetch training {training_id}: {error}"
        finally:
            self._fetching.discard(training_id)

    def _should_forward(self, record: EventRecord) -> bool:
        if not self.forward_to or record.verdict not in ("accepted", "duplicate", "ignored"):
            return False
        if FORWARDED_HEADER in record.headers:
            return False  # --forward-to pointing back at a listener would loop forever
        return not self.forward_events or record.event in self.forward_events

    def subscribe_forwards(self, callback: Callable[[EventRecord], None]) -> Callable[[], None]:
        return self._forward_subscribers.subscribe(callback)

    async def _forward(self, record: EventRecord, body: bytes, headers: dict[str, str]) -> None:
        """Relay the verified webhook as received (same bytes, same signature headers)."""
        assert self.forward_to is not None
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=FORWARD_TIMEOUT))
        relayed = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        relayed[FORWARDED_HEADER] = record.id
        started = time.perf_counter()
        outcome: dict[str, Any] = {"url": self.forward_to, "status": None, "error": None}
        try:
            async with self._session.post(self.forward_to, data=body, headers=relayed,
                                          allow_redirects=False) as answer:
                await answer.read()
                outcome["status"] = answer.status
        except (ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
            outcome["error"] = (f"could not reach {self.forward_to}: {error or type(error).__name__}; "
                                "is the app running there?")
        outcome["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        record.forward = outcome
        self.events.update(record)
        self._forward_subscribers.notify(record)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout: float = 5.0) -> None:
        """Let in-flight forwards and fetches finish (briefly), then close the HTTP session."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.secret.close()


def _response(record: EventRecord) -> web.Response:
    content_type = "application/json" if record.accepted else "application/problem+json"
    return web.json_response(record.response, status=record.http_status, content_type=content_type)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "service": "replitrack listener"})


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:g} MiB" if count >= 1024 * 1024 else f"{count} bytes"
