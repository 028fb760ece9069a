"""The simulator's webhooks, received by a real aiohttp listener on loopback and checked with
Replicate's own validator and the Standard Webhooks reference implementation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import replicate
from aiohttp import web
from replicate.webhook import InvalidSignatureError, WebhookSigningSecret
from standardwebhooks import Webhook

from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
DEST = "demo-user/faces"
QUICK_FLUX = {"input_images": "https://files.example.test/faces.zip", "steps": 20, "autocaption": False, "resolution": "512"}
ALL_EVENTS = ["start", "output", "logs", "completed"]
RANK = {"starting": 0, "processing": 1, "succeeded": 2, "failed": 2, "canceled": 2}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def training(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """A webhook listener: records every request; `respond` decides each answer's status."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.respond: Callable[[Received], int] = lambda _: 200
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        item = Received(request.path_qs, dict(request.headers), await request.read(), time.monotonic())
        self.received.append(item)
        status = self.respond(item)
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": f"{self.url}/elsewhere"})
        return web.Response(status=status)

    async def until(self, check: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while not check(self.received):
            assert time.monotonic() < deadline, f"timed out with {len(self.received)} webhooks received"
            await asyncio.sleep(0.01)
        return self.received


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    listener = Receiver()
    app = web.Application(client_max_size=64 * 1024 * 1024)  # `logs` bodies carry the whole log
    app.router.add_post("/{tail:.*}", listener.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    listener.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield listener
    finally:
        await runner.cleanup()


def event_of(sim: Simulator, item: Received) -> str:
    events = {d.message_id: d.event for d in sim.deliveries}
    return events[item.headers["webhook-id"]]


def ended(received: list[Received]) -> bool:
    return any(RANK[r.training["status"]] == 2 for r in received)


async def train(sim: Simulator, webhook: str, events: list[str] | None, **given: Any) -> dict[str, Any]:
    sim.add_model(DEST)
    return await sim.create_training(FLUX, DEST, {**QUICK_FLUX, **given}, webhook, events)


async def test_every_event_arrives_signed_and_in_order(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 110  # ~1.5 s of wall time: several 500 ms windows for `logs`
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {simulator.token}"}) as client:
        secret = (await client.get(f"{simulator.base_url}/v1/webhooks/default/secret")).json()["key"]
    created = await train(simulator, f"{receiver.url}/hooks/replicate?source=sim", ALL_EVENTS, steps=40)
    received = await receiver.until(ended)

    assert all(r.path == "/hooks/replicate?source=sim" for r in received)  # query passed through
    events = [event_of(simulator, r) for r in received]
    assert events[0] == "start" and events[-2:] == ["output", "completed"]
    assert events.count("logs") >= 2 and set(events) == set(ALL_EVENTS)
    assert received[0].training["status"] == "starting" and received[0].training["logs"] == ""
    assert received[-1].training == simulator.training(created["id"])  # the same JSON as GET
    assert received[-2].training["output"] == received[-1].training["output"]

    bodies = [r.training for r in received]
    assert all(RANK[a["status"]] <= RANK[b["status"]] for a, b in zip(bodies, bodies[1:]))
    assert all(len(a["logs"]) <= len(b["logs"]) for a, b in zip(bodies, bodies[1:]))
    logs_at = [r.at for r, e in zip(received, events) if e == "logs"]
    assert all(b - a >= 0.45 for a, b in zip(logs_at, logs_at[1:]))  # at most one per 500 ms

    ids = [r.headers["webhook-id"] for r in received]
    assert len(set(ids)) == len(ids) and all(i.startswith("msg_") and len(i) == 28 for i in ids)
    signing = WebhookSigningSecret(key=secret)
    for item in received:
        assert abs(int(item.headers["webhook-timestamp"]) - time.time()) < 60
        replicate.webhooks.validate(headers=item.headers, body=item.body.decode(), secret=signing, tolerance=300)
        assert Webhook(secret).verify(item.body, item.headers) == item.training
    with pytest.raises(InvalidSignatureError):
        replicate.webhooks.validate(headers=received[0].headers, body=received[0].body.decode() + " ",
                                    secret=signing, tolerance=300)


async def test_without_a_filter_only_output_and_completed_are_sent(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 2000
    await train(simulator, f"{receiver.url}/hook", None)
    received = await receiver.until(ended)
    await asyncio.sleep(0.05)
    assert [event_of(simulator, r) for r in received] == ["output", "completed"]
    assert received[0].training["status"] == "processing" and received[0].training["output"]["version"]
    assert received[1].training["status"] == "succeeded"


async def test_the_terminal_webhook_is_retried_with_the_same_id_after_a_500(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 2000
    refused: list[str] = []

    def respond(item: Received) -> int:
        status = item.training["status"]
        if status == "starting" or (status == "succeeded" and len(refused) < 2):
            refused.append(item.headers["webhook-id"])  # start, then the first completed
            return 500
        return 204

    receiver.respond = respond
    await train(simulator, f"{receiver.url}/hook", ["start", "completed"])
    received = await receiver.until(lambda got: sum(r.training["status"] == "succeeded" for r in got) == 2)
    await asyncio.sleep(0.05)
    assert [r.training["status"] for r in received] == ["starting", "succeeded", "succeeded"]  # start: never retried
    assert received[1].headers["webhook-id"] == received[2].headers["webhook-id"] == refused[1]
    assert received[1].body == received[2].body
    Webhook(simulator.webhook_secret).verify(received[2].body, received[2].headers)
    completed = [d for d in simulator.deliveries if d.event == "completed"]
    assert [(d.attempt, d.outcome, d.status) for d in completed] == [(1, "failed", 500), (2, "delivered", 204)]


async def test_an_unreachable_listener_gets_every_retry_then_nothing(simulator: Simulator) -> None:
    simulator.speed = 2000
    with __import__("socket").socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    created = await train(simulator, f"http://127.0.0.1:{closed}/hook", ["completed"])
    deadline = time.monotonic() + 10
    while len([d for d in simulator.deliveries if d.event == "completed"]) < 1 + len(simulator.webhook_retry_delays):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    attempts = [d for d in simulator.deliveries if d.training_id == created["id"]]
    assert [d.attempt for d in attempts] == list(range(1, 8))
    assert all(d.outcome == "failed" and d.error for d in attempts)


async def test_redirects_are_not_followed(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 2000
    receiver.respond = lambda item: 307 if len(receiver.received) == 1 else 200
    await train(simulator, f"{receiver.url}/hook", ["completed"])
    received = await receiver.until(lambda got: len(got) == 2)
    await asyncio.sleep(0.05)
    assert [r.path for r in received] == ["/hook", "/hook"]  # never /elsewhere
    assert [(d.attempt, d.status) for d in simulator.deliveries] == [(1, 307), (2, 200)]


async def test_a_duplicated_webhook_repeats_its_id_and_body(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 2000
    simulator.faults.duplicate_webhooks_next = 1
    await train(simulator, f"{receiver.url}/hook", ["start", "completed"])
    received = await receiver.until(ended)
    assert len(received) == 3
    first, again, last = received
    assert first.headers["webhook-id"] == again.headers["webhook-id"] and first.body == again.body
    assert last.headers["webhook-id"] != first.headers["webhook-id"]
    assert [d.outcome for d in simulator.deliveries] == ["delivered", "duplicate", "delivered", "delivered"]


async def test_a_dropped_webhook_never_arrives(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 2000
    simulator.faults.drop_webhooks_next = 1
    await train(simulator, f"{receiver.url}/hook", ["start", "completed"])
    received = await receiver.until(ended)
    await asyncio.sleep(0.05)
    assert [r.training["status"] for r in received] == ["succeeded"]
    assert [(d.event, d.outcome) for d in simulator.deliveries] == [("start", "dropped"), ("completed", "delivered")]


async def test_a_held_back_webhook_arrives_after_the_next_one(simulator: Simulator, receiver: Receiver) -> None:
    simulator.speed = 2000
    simulator.faults.reorder_webhooks_next = 1
    await train(simulator, f"{receiver.url}/hook", ["start", "logs", "completed"])
    received = await receiver.until(ended)
    newer, older = received[0].training, received[1].training
    assert newer["status"] == "processing" and newer["logs"]
    assert older["status"] == "starting" and older["logs"] == ""  # stale, arriving second
    assert event_of(simulator, received[1]) == "start"
    assert simulator.deliveries[0].outcome == "held"


async def test_cancel_sends_a_canceled_completed_webhook(simulator: Simulator, receiver: Receiver) -> None:
    simulator.faults.stuck_next = 1
    created = await train(simulator, f"{receiver.url}/hook", None)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {simulator.token}"}) as client:
        await client.post(f"{simulator.base_url}/v1/trainings/{created['id']}/cancel")
    received = await receiver.until(ended)
    assert [r.training["status"] for r in received] == ["canceled"]
    assert received[0].training == simulator.training(created["id"])
