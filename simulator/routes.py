"""The HTTP face of the simulator: Replicate's /v1 endpoints, auth, faults and error bodies."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .errors import UNAUTHENTICATED, Problem, problem

if TYPE_CHECKING:
    from .server import Simulator

SIMULATOR: web.AppKey[Simulator] = web.AppKey("simulator")
_dumps = functools.partial(json.dumps, ensure_ascii=False)
_REASONS = {400: "Bad Request", 404: "Not found", 405: "Method Not Allowed", 413: "Content Too Large",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=10 * 1024 * 1024)
    app[SIMULATOR] = sim
    app.add_routes(
        [
            web.get("/v1/account", account),
            web.get("/v1/trainings", list_trainings),
            web.get("/v1/trainings/{training_id}", get_training),
            web.post("/v1/trainings/{training_id}/cancel", cancel_training),
            web.post("/v1/models/{owner}/{name}/versions/{version_id}/trainings", create_training),
            web.get("/v1/webhooks/default/secret", webhook_secret),
            web.post("/v1/models", create_model),
            web.get("/v1/models/{owner}/{name}", get_model),
            web.get("/v1/models/{owner}/{name}/versions", list_versions),
            web.get("/v1/models/{owner}/{name}/versions/{version_id}", get_version),
            web.post("/v1/files", upload_file),
            web.get("/v1/files/{file_id}", get_file),
            web.get("/v1/files/{file_id}/download", download_file),
            # Simulator-only (not Replicate's): hold a training at a point, step it, release it.
            web.get("/simulator/holds", list_holds),
            web.post("/simulator/holds", add_hold),
            web.post("/simulator/holds/{hold_id}/step", step_hold),
            web.post("/simulator/holds/{hold_id}/release", release_hold),
        ]
    )
    return app


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=_dumps,
                             content_type="application/problem+json")


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = request.app[SIMULATOR]
    sim.requests += 1
    method = request.method
    if delay := sim.faults.take_slow(method):
        await asyncio.sleep(delay)
    if not sim.authorized(request.headers.get("Authorization")):
        return problem_response(401, dict(UNAUTHENTICATED))
    remaining, reset = sim.count_request()
    limits = {"ratelimit-remaining": str(max(0, remaining)), "ratelimit-reset": str(reset)}
    if remaining < 0 or sim.faults.take_throttle(method):
        wait = sim.faults.throttle_reset if remaining >= 0 else reset
        return problem_response(
            429,
            {"detail": f"Request was throttled. Your rate limit resets in ~{wait}s.", "status": 429},
            {"ratelimit-remaining": "0", "ratelimit-reset": str(wait), "Retry-After": str(wait)},
        )
    if sim.faults.take_error(method):
        status = sim.faults.error_status
        return problem_response(
            status,
            {"title": _REASONS.get(status, "Server Error"), "detail": "Something went wrong on our end. Try again.",
             "status": status},
            limits,
        )
    try:
        response = await handler(request)
    except Problem as error:
        response = problem_response(error.status, error.body, error.headers)
    except web.HTTPException as error:  # unknown path, wrong method
        title = _REASONS.get(error.status, error.reason)
        response = problem_response(error.status, {"title": title, "detail": f"{title}.", "status": error.status})
    response.headers.update(limits)
    return response


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise problem(400, "Bad Request", "The request body is not valid JSON.") from None


# ---- handlers -----------------------------------------------------------------------------------

async def account(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok({
        "type": "user",
        "username": sim.owner,
        "name": sim.owner.replace("-", " ").title(),
        "github_url": f"https://github.com/{sim.owner}",
        "avatar_url": f"https://avatars.githubusercontent.com/{sim.owner}",
    })


def page_answer(base_url: str, path: str, page: tuple[list[Any], str | None, str | None]) -> web.Response:
    """A list's page as Replicate answers it: the items (without logs) and cursor URLs."""
    chunk, after, before = page
    base = f"{base_url}{path}?cursor="
    return ok({
        "previous": base + before if before else None,
        "next": base + after if after else None,
        "results": [r.to_json(base_url, with_logs=False) for r in chunk],
    })


async def list_trainings(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return page_answer(sim.base_url, "/v1/trainings", sim.page(request.query.get("cursor")))


async def get_training(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok(sim.record_or_404(request.match_info["training_id"]).to_json(sim.base_url))


async def cancel_training(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok(sim.cancel_training(sim.record_or_404(request.match_info["training_id"]).id))


async def create_training(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    body = await _json_body(request)
    info = request.match_info
    # Simulator-only: pick a script (e.g. flux-fail) with a header the real API would ignore.
    script = request.headers.get("X-Simulator-Script") or None
    record = sim.create_record(info["owner"], info["name"], info["version_id"], body, script)
    return ok(record.to_json(sim.base_url, create_response=True), status=201)


async def webhook_secret(request: web.Request) -> web.Response:
    return ok({"key": request.app[SIMULATOR].webhook_secret})


async def create_model(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok(sim.create_model(await _json_body(request)).to_json(), status=201)


async def get_model(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok(sim.model_or_404(request.match_info["owner"], request.match_info["name"]).to_json())


async def list_versions(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    model = sim.model_or_404(request.match_info["owner"], request.match_info["name"])
    return ok({"next": None, "previous": None, "results": [v.to_json() for v in model.versions]})


async def get_version(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    model = sim.model_or_404(request.match_info["owner"], request.match_info["name"])
    wanted = request.match_info["version_id"]
    for version in model.versions:
        if version.id == wanted:
            return ok(version.to_json())
    raise problem(404, "Not found", f"The model {model.full_name} has no version {wanted}.")


async def upload_file(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    if not request.content_type.startswith("multipart/"):
        raise problem(400, "Bad Request", "Send the file as multipart/form-data with a `content` field.")
    reader = await request.multipart()
    content: bytes | None = None
    name, content_type, metadata = "file", "application/octet-stream", {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # nested multipart: not something Replicate accepts either
        field = part.name
        if field == "content":
            name = part.filename or name
            content_type = part.headers.get("Content-Type", content_type)
            chunks, size = [], 0
            while chunk := await part.read_chunk(1024 * 1024):
                size += len(chunk)
                if size > sim.max_file_bytes:
                    return problem_response(413, {"detail": "Files must be less than 100MB in size"})
                chunks.append(chunk)
            content = b"".join(chunks)
        elif field in ("filename", "type", "metadata"):
            text = await part.text()
            if field == "filename" and text:
                name = text[:255]
            elif field == "type" and text:
                content_type = text
            elif field == "metadata" and text:
                try:
                    parsed = json.loads(text)
                except ValueError:
                    raise problem(422, "Input validation failed", "- metadata: must be a JSON object\n") from None
                if not isinstance(parsed, dict):
                    raise problem(422, "Input validation failed", "- metadata: must be a JSON object\n")
                metadata = parsed
    if content is None:
        raise problem(422, "Input validation failed", "- content: content is required\n")
    return ok(sim.store_file(name, content_type, content, metadata).to_json(sim.base_url), status=201)


async def get_file(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok(sim.file_or_404(request.match_info["file_id"]).to_json(sim.base_url))


async def download_file(request: web.Request) -> web.Response:
    stored = request.app[SIMULATOR].file_or_404(request.match_info["file_id"])
    return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})


# ---- simulator-only controls (see holds.py) --------------------------------------------------

async def list_holds(request: web.Request) -> web.Response:
    return ok({"holds": [hold.as_json() for hold in request.app[SIMULATOR].holds]})


async def add_hold(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("at", "end"), str) or not body.get("at", "end"):
        raise problem(422, "Input validation failed", "- at: 'start', 'end' or text of a log line\n")
    training_id = body.get("training_id")
    if training_id is not None:
        sim.record_or_404(str(training_id))
    return ok(sim.hold(training_id, at=body.get("at", "end")).as_json(), status=201)


def _hold_or_404(request: web.Request):  # type: ignore[no-untyped-def]
    try:
        hold = request.app[SIMULATOR].holds.get(int(request.match_info["hold_id"]))
    except ValueError:
        hold = None
    if hold is None:
        raise problem(404, "Not found", "The requested hold does not exist (or was released).")
    return hold


async def step_hold(request: web.Request) -> web.Response:
    hold = _hold_or_404(request)
    body = await _json_body(request)
    events = body.get("events", 1) if isinstance(body, dict) else 1
    if not isinstance(events, int) or events < 1:
        raise problem(422, "Input validation failed", "- events: a positive integer\n")
    hold.step(events)
    return ok(hold.as_json())


async def release_hold(request: web.Request) -> web.Response:
    hold = _hold_or_404(request)
    hold.release()
    return ok(hold.as_json())
