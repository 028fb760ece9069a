"""The local face, on 127.0.0.1 only: the debugging API users know from the web version, plus
the event log. Never reachable through the tunnel (it is a different port and app).

Routes (`{ref}` is a Replicate training id, or a destination `owner/name`, URL-encoded or not,
meaning its latest training):
  GET  /api/models/{ref}/status              status, progress, stage, ETA, output version
  GET  /api/replicate/training-logs/{ref}    the same plus the log tail (?tail=N lines, ?since=offset);
                                             fetched live from Replicate while the training runs
  POST /api/replicate/sync-completed         {"modelId": ref, "replicateModelVersion": optional}
  GET  /api/events                           newest first (?limit=, ?training=, ?verdict=)
  GET  /api/events/{id}                      one event with its headers
  GET  /api/events/{id}/body                 the raw body as received
  POST /api/events/{id}/replay               run the recorded webhook through the receiver again
  GET  /api/listener                         tunnel state, counts, URLs, secret source
  POST /api/trainings                        {"trainer", "version"?, "destination", "input", "webhook"?}:
                                             start a training here (the tunnel's webhook by default)
  POST /api/trainings/{ref}/retry            a new training with the same trainer, destination, inputs
  POST /api/trainings/{ref}/cancel           cancel a running training
  POST /api/trainings/{ref}/refresh          fetch it from Replicate now (an id not stored yet too)
  POST /api/import                           import every training of the account
The actions are how `replitrack train/retry/cancel/import/sync` act when this instance owns the store.

Local web pages must not act through it (a page on any localhost port can send a form POST
here): every changing route (POST) wants this instance's token (`Authorization: Bearer …`, from
the owner file that only its user can read, which the CLI reads) and refuses any browser Origin.
Reading routes answer only requests addressed to this computer and not from a foreign page.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.errors import ApiError, BadArgumentError, NotFoundError, ReplitrackError
from core.formats import stage_label
from core.models import Status
from core.service import TrainingService, UnknownTrainingError, VersionMismatchError
from core.views import logs_view, tracked_status_view
from listener.receiver import WebhookReceiver, problem

DEFAULT_TAIL = 200
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}



async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or the problem answer to send instead. Requiring the JSON content
    type also keeps cross-site form posts out."""
    if request.content_type != "application/json":
        return problem(415, "unsupported_media_type", "send the body with Content-Type: application/json")
    try:
        data = json.loads(await request.read() or b"null")
    except ValueError:
        return problem(400, "not_json", "the body is not JSON")
    return data if isinstance(data, dict) else problem(400, "not_an_object", "send a JSON object")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LocalApi:
    def __init__(self, service: TrainingService, receiver: WebhookReceiver,
                 listener_status: Callable[[], dict[str, Any]], *, loopback_only: bool = True,
                 token: str | None = None) -> None:
        self.service = service
        self.token = token  # None: changing routes are refused altogether
        self.receiver = receiver
        self.listener_status = listener_status
        self.loopback_only = loopback_only

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        add = app.router
        add.add_get("/api/models/{ref:.+}/status", self.model_status)
        add.add_get("/api/replicate/training-logs/{ref:.+}", self.training_logs)
        add.add_post("/api/replicate/sync-completed", self.sync_completed)
        add.add_get("/api/events", self.list_events)
        add.add_get("/api/events/{event_id}", self.get_event)
        add.add_get("/api/events/{event_id}/body", self.get_event_body)
        add.add_post("/api/events/{event_id}/replay", self.replay_event)
        add.add_get("/api/listener", self.listener)
        add.add_get("/api/health", self.health)
        add.add_post("/api/trainings", self.start_training)
        add.add_post("/api/trainings/{ref:.+}/retry", self.retry_training)
        add.add_post("/api/trainings/{ref:.+}/cancel", self.cancel_training)
        add.add_post("/api/trainings/{ref:.+}/refresh", self.refresh_training)
        add.add_post("/api/import", self.import_all)
        return app

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Only local callers: a web page must not reach this API through DNS rebinding or CSRF."""
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            refused = self._refuse_change(request)
            if refused is not None:
                return refused
        if self.loopback_only:
            host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") \
                else (request.host or "").split("]")[0] + "]"
            if host not in _LOCAL_NAMES:
                return problem(403, "forbidden_host", f"Host {request.host!r} is not this computer: the local API "
                               "answers only requests addressed to 127.0.0.1 or localhost")
        origin = request.headers.get("Origin")
        if origin:  # exposed or not, a foreign page never reads from here ("null" too: sandboxed frames)
            origin_host = origin.split("://", 1)[-1].split("/")[0]
            origin_host = origin_host.split("]")[0] + "]" if origin_host.startswith("[") \
                else origin_host.rsplit(":", 1)[0]
            if origin_host not in _LOCAL_NAMES:
                return problem(403, "forbidden_origin", f"requests from web pages ({origin}) are refused: "
                               "call the local API with curl or a script")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            served = sorted({f"{r.method} {r.resource.canonical}" for r in request.app.router.routes()
                             if r.method != "HEAD" and r.resource is not None})
            return problem(404, "not_found", "no such route on the local API; it serves: " + ", ".join(served))
        except web.HTTPMethodNotAllowed as error:
            return problem(405, "method_not_allowed",
                           f"use {', '.join(sorted(error.allowed_methods))} for {request.path}")

    def _refuse_change(self, request: web.Request) -> web.Response | None:
        """A changing route needs no browser Origin at all and this instance's token."""
        origin = request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site")
        if origin:
            return problem(403, "forbidden_origin", f"web pages cannot act on the local API (Origin {origin}): "
                           "use the replitrack CLI, or curl with the instance's token")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
            return problem(401, "token_required", "changing routes need this instance's token as "
                           "'Authorization: Bearer TOKEN'; it is the \"secret\" in the store's replitrack.lock "
                           "(readable only by you), which the replitrack CLI reads by itself")
        return None

    # ----- trainings ---------------------------------------------------------------------------
    def _find(self, ref: str) -> dict[str, Any] | None:
        try:
            return self.service.store.find(ref)
        except ValueError:
            return None

    def _status(self, record: dict[str, Any]) -> dict[str, Any]:
        return tracked_status_view(self.service.updater, record)

    async def model_status(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        record = self._find(ref)
        if record is None:
            return _unknown(ref)
        return web.json_response(self._status(record))

    async def training_logs(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        try:
            tail = _int_query(request, "tail", DEFAULT_TAIL)
            since = _int_query(request, "since", 0)
        except ValueError as error:
            return problem(400, "bad_query", str(error))
        record = self._find(ref)
        live, live_error = False, None
        if record is None and "/" not in ref:
            try:  # not imported yet: Replicate may know it
                record = (await self.service.refresh(ref, source="sync")).record
                live = True
            except NotFoundError:
                return _unknown(ref)
            except ReplitrackError as error:
                return problem(502, "replicate_unavailable", f"training {ref} is not in the local store and "
                               f"Replicate could not be asked: {error}")
        if record is None:
            return _unknown(ref)
        # running, or finished but imported without its log: fetch it now
        if not live and (not Status.parse(record.get("status")).terminal
                         or self.service.store.log_length(record["id"]) == 0):
            try:
                record = (await self.service.refresh(record["id"])).record or record
                live = True
            except ReplitrackError as error:
                live_error = f"showing the stored state: {error}"
        view = self._status(record)
        log = self.service.store.read_log(record["id"])
        logs = logs_view(record, log, since=since, tail=tail if "since" not in request.query else None)
        body = {**logs, "progress": view["overall_percent"], "stage": view["stage"],
                "stage_label": stage_label(view["stage"]) if view["stage"] else None, "step": view["step"],
                "total_steps": view["total_steps"], "loss": view["loss"], "eta_seconds": view["eta_seconds"],
                "eta_at": view["eta_at"], "output_version": view["output_version"], "error": view["error"],
                "fetched_live": live, "live_error": live_error}
        return web.json_response(body)

    async def sync_completed(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        if isinstance(data, web.Response):
            return data
        ref, version = data.get("modelId"), data.get("replicateModelVersion")
        if not isinstance(ref, str) or not ref.strip():
            return problem(400, "missing_model_id", '"modelId" is required: a destination owner/name or a '
                           "Replicate training id")
        if version is not None and not isinstance(version, str):
            return problem(400, "bad_version", '"replicateModelVersion" must be a string (owner/name:id or the id)')
        try:
            result = await self.service.sync_completed(ref.strip(), version or None)
        except UnknownTrainingError as error:
            return problem(404, "unknown_training", str(error))
        except NotFoundError as error:
            return problem(404, "not_found_on_replicate", str(error))
        except ApiError as error:
            return problem(502, "replicate_error", str(error))
        except VersionMismatchError as error:  # stored, but not the version asked about
            return problem(409, "version_mismatch", str(error))
        except BadArgumentError as error:
            return problem(400, "bad_model_id", str(error))
        except ReplitrackError as error:  # offline, no token
            return problem(502, "replicate_unavailable", f"could not ask Replicate about {ref.strip()!r}: {error}")
        record = result.record or self.service.store.find(ref.strip()) or {}
        return web.json_response({"ok": True, "id": result.training_id, "outcome": result.outcome,
                                  "status": self._status(record) if record else None})

    # ----- actions -----------------------------------------------------------------------------
    async def start_training(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        if isinstance(data, web.Response):
            return data
        trainer, destination = data.get("trainer"), data.get("destination")
        inputs, version, webhook = data.get("input") or {}, data.get("version"), data.get("webhook")
        if not (isinstance(trainer, str) and isinstance(destination, str) and isinstance(inputs, dict)):
            return problem(400, "bad_training", 'send {"trainer": "owner/name", "destination": "owner/name", '
                           '"input": {...}} (and optionally "version", "webhook")')
        return await self._act(lambda: self.service.start(trainer, destination, inputs, version=version or None,
                                                          webhook=webhook or None), status=201)

    async def retry_training(self, request: web.Request) -> web.Response:
        record = self._find(request.match_info["ref"])
        if record is None:
            return _unknown(request.match_info["ref"])
        return await self._act(lambda: self.service.retry(record["id"]), status=201)

    async def cancel_training(self, request: web.Request) -> web.Response:
        training_id = self._training_id(request.match_info["ref"])
        if training_id is None:
            return _unknown(request.match_info["ref"])
        return await self._act(lambda: self.service.cancel(training_id))

    async def refresh_training(self, request: web.Request) -> web.Response:
        """A change made beside this instance (on Replicate) into its store now, not at the next poll."""
        training_id = self._training_id(request.match_info["ref"])
        if training_id is None:
            return _unknown(request.match_info["ref"])
        return await self._act(lambda: self.service.refresh(training_id, source="sync"))

    def _training_id(self, ref: str) -> str | None:
        """The id of a stored training (by id or destination), or `ref` itself when it is an id
        not stored yet (Replicate may know it); None for a destination with no training here."""
        record = self._find(ref)
        return record["id"] if record else (None if "/" in ref else ref)

    async def _act(self, action: Callable[[], Awaitable[Any]], *, status: int = 200) -> web.Response:
        try:
            result = await action()
        except NotFoundError as error:
            return problem(404, "not_found_on_replicate", str(error))
        except ApiError as error:
            return problem(error.status if error.status in (400, 401, 422, 429) else 502, "replicate_error", str(error))
        except ReplitrackError as error:
            return problem(409, "refused", str(error))
        record = result.record or self.service.store.get(result.training_id) or {"id": result.training_id}
        return web.json_response(self._status(record), status=status)

    async def import_all(self, request: web.Request) -> web.Response:
        pages = 0

        def on_page(done: int, count: int) -> None:
            nonlocal pages
            pages = done

        try:
            imported = await self.service.import_all(on_page)
        except ApiError as error:
            return problem(502, "replicate_error", str(error))
        except ReplitrackError as error:
            return problem(409, "refused", str(error))
        return web.json_response({"imported": imported, "pages": pages, "stored": len(self.service.store)})

    # ----- events ------------------------------------------------------------------------------
    async def list_events(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(_int_query(request, "limit", 100), 10_000))
        except ValueError as error:
            return problem(400, "bad_query", str(error))
        events = self.receiver.events.latest(limit, training_id=request.query.get("training") or None,
                                             verdict=request.query.get("verdict") or None)
        return web.json_response({"events": [e.summary() for e in events], "count": len(events),
                                  "kept": len(self.receiver.events)})

    async def get_event(self, request: web.Request) -> web.Response:
        record = self.receiver.events.get(request.match_info["event_id"])
        if record is None:
            return _unknown_event(request.match_info["event_id"])
        return web.json_response(record.to_dict())

    def _event_with_body(self, event_id: str, status: int, what: str) -> tuple[Any, bytes] | web.Response:
        """The recorded event and its raw body, or the problem answer when either is gone."""
        record = self.receiver.events.get(event_id)
        if record is None:
            return _unknown_event(event_id)
        body = self.receiver.events.read_body(event_id)
        if body is None:
            return problem(status, "body_not_kept", f"{what}: its body was not kept (too large, or evicted "
                           "to keep the event log within its bound)")
        return record, body

    async def get_event_body(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        found = self._event_with_body(event_id, 410, f"no body for {event_id}")
        if isinstance(found, web.Response):
            return found
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def replay_event(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        found = self._event_with_body(event_id, 409, f"cannot replay {event_id}")
        if isinstance(found, web.Response):
            return found
        record, body = found
        stamp = record.headers.get("webhook-timestamp", "")
        verify_at = float(stamp) if stamp.isdigit() else None  # as of when it was signed
        replayed = await self.receiver.receive(body, record.headers, method=record.method, path=record.path,
                                               replay_of=event_id, verify_at=verify_at)
        return web.json_response({"replayed": event_id, "event": replayed.summary()})

    async def listener(self, request: web.Request) -> web.Response:
        return web.json_response(self.listener_status())

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"?{name}= must be a whole number, not {raw[:30]!r}") from None
    if value < 0:
        raise ValueError(f"?{name}= must not be negative")
    return value


def _unknown(ref: str) -> web.Response:
    return problem(404, "unknown_training", str(UnknownTrainingError(ref)))


def _unknown_event(event_id: str) -> web.Response:
    return problem(404, "unknown_event", f"no event {event_id!r} in the event log (it keeps the newest ones); "
                   "list them with GET /api/events")
