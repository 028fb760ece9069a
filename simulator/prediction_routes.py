"""The HTTP face of the simulated predictions: /v1/predictions and the files they produce."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from .errors import problem
from .routes import SIMULATOR, _json_body, ok, page_answer

_PREFER_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$", re.IGNORECASE)
MAX_WAIT = 60  # seconds: `Prefer: wait` holds the answer at most this long, as Replicate does


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/predictions", create_prediction),
        web.get("/v1/predictions", list_predictions),
        web.get("/v1/predictions/{prediction_id}", get_prediction),
        web.post("/v1/predictions/{prediction_id}/cancel", cancel_prediction),
        web.get("/delivery/{prediction_id}/{name}", delivery),
    ]


async def create_prediction(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    record = sim.predictions.create(await _json_body(request))
    wait = _prefer_wait(request.headers.get("Prefer"))
    if wait:
        try:
            await asyncio.wait_for(asyncio.shield(record.done.wait()), wait)
        except asyncio.TimeoutError:
            pass
    return ok(record.to_json(sim.base_url), status=201)


async def list_predictions(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return page_answer(sim.base_url, "/v1/predictions", sim.predictions.page(request.query.get("cursor")))


async def get_prediction(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return ok(sim.predictions.or_404(request.match_info["prediction_id"]).to_json(sim.base_url))


async def cancel_prediction(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    record = sim.predictions.or_404(request.match_info["prediction_id"])
    sim.predictions.cancel(record)
    return ok(record.to_json(sim.base_url))


async def delivery(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    record = sim.predictions.or_404(request.match_info["prediction_id"])
    data = record.files.get(request.match_info["name"])
    if data is None:
        raise problem(404, "Not found", "This output file does not exist (or was removed).")
    return web.Response(body=data, headers={"Content-Type": "image/png"})


def _prefer_wait(header: str | None) -> float:
    """`Prefer: wait` (60 s) or `Prefer: wait=N` (N s, at most 60); 0 when absent."""
    match = _PREFER_WAIT.match(header or "")
    if match is None:
        return 0.0
    return float(min(MAX_WAIT, int(match.group(1)))) if match.group(1) else float(MAX_WAIT)
