"""SVG snapshots of every screen at 120×36, deterministic: the sample trainings are built through
the real Updater with a settable clock, the app's clock is frozen, nothing is polled, and the one
screen that asks Replicate (sync) talks to a fixed in-process HTTP transport.

Refresh with `uv run pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import Input

from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from tui.app import ReplitrackApp, create_app
from sample_data import T0, SampleClock, populate

SIZE = (120, 36)
NEVER_IMPORTED = {
    "id": "w8n2c4xv6hrm80ck8km3p5tq1a", "model": "ostris/flux-dev-lora-trainer", "version": "v1",
    "status": "succeeded", "input": {"steps": 100}, "created_at": "2026-11-23T09:00:00Z",
    "started_at": "2026-11-23T09:01:00Z", "completed_at": "2026-11-23T09:20:00Z",
    "output": {"version": "zoe/flux-old:" + "c" * 64, "weights": "https://example.com/w.tar"},
    "urls": {}, "logs": None, "error": None, "metrics": {}, "source": "web",
}


def replicate_answers(store: Store) -> httpx.MockTransport:
    """GET /v1/trainings as Replicate would answer for this store, plus one never imported and
    one that finished there while the store still has it running."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/trainings":
            return httpx.Response(404, json={"detail": "not found", "status": 404})
        results: list[dict[str, Any]] = [NEVER_IMPORTED]
        for record in store.trainings():
            status = "succeeded" if record["id"].startswith("s9k") else record["status"]
            results.append({"id": record["id"], "model": record["trainer"], "version": "v1", "status": status,
                            "input": record["input"], "created_at": record["created_at"], "urls": {},
                            "logs": None, "error": None, "metrics": {}, "source": "api"})
        return httpx.Response(200, json={"results": results, "next": None, "previous": None})

    return httpx.MockTransport(handle)


@pytest.fixture
def app() -> Iterator[ReplitrackApp]:
    store = Store()
    clock = SampleClock()
    client = ReplicateClient(token="r8_snapshot", base_url="http://replicate.test",
                             transport=replicate_answers(store), max_retries=0)
    service = TrainingService(store, client, clock=clock)
    populate(service.updater, clock)
    yield create_app(service, clock=lambda: T0, poll=False, tick=False)
    store.close()


def typing(*keys: str) -> Any:
    """Press keys, then stop every text cursor blinking (a blink mid-capture is not a change)."""

    async def run(pilot: Any) -> None:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()  # e.g. the full log's indexing thread
        await pilot.pause()
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause()

    return run


def test_models_screen(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, terminal_size=SIZE)


def test_models_screen_filtered(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, run_before=typing("slash", *"alice", "enter"), terminal_size=SIZE)


def test_detail_of_a_running_training(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["down", "down", "enter"], terminal_size=SIZE)


def test_detail_of_a_failed_training(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["down", "down", "down", "down", "enter"], terminal_size=SIZE)


def test_detail_of_a_succeeded_training(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["down"] * 5 + ["enter"], terminal_size=SIZE)


def test_full_log_with_a_search(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, run_before=typing("down", "down", "enter", "h", "slash", *"Saving", "enter"),
                        terminal_size=SIZE)


def test_sync_screen(snap_compare: Any, app: ReplitrackApp) -> None:
    async def checked(pilot: Any) -> None:
        await pilot.press("y")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, run_before=checked, terminal_size=SIZE)


def test_cancel_confirmation(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["down", "down", "x"], terminal_size=SIZE)


def test_help_screen(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["question_mark"], terminal_size=SIZE)


def test_new_training_form(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, run_before=typing("n"), terminal_size=SIZE)


def test_sign_in_screen(snap_compare: Any, app: ReplitrackApp) -> None:
    app.needs_sign_in = True
    assert snap_compare(app, run_before=typing(*"r8_secret"), terminal_size=SIZE)


def test_the_sync_answer_is_what_the_screen_compares_with() -> None:
    # The fixed transport must answer like Replicate's list endpoint: a page with results.
    store = Store()
    try:
        transport = replicate_answers(store)
        response = transport.handle_request(httpx.Request("GET", "http://replicate.test/v1/trainings"))
        assert [r["id"] for r in json.loads(response.read())["results"]] == [NEVER_IMPORTED["id"]]
    finally:
        store.close()


# ----- small terminals: 80×24 -------------------------------------------------------------------
SMALL = (80, 24)


def test_models_screen_80x24(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, terminal_size=SMALL)


def test_detail_of_a_running_training_80x24(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["down", "down", "enter"], terminal_size=SMALL)


def test_detail_of_a_failed_training_80x24(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["down", "down", "down", "down", "enter"], terminal_size=SMALL)


def test_help_screen_80x24(snap_compare: Any, app: ReplitrackApp) -> None:
    assert snap_compare(app, press=["question_mark"], terminal_size=SMALL)


# ----- the webhook inspector --------------------------------------------------------------------
class RecordedListener:
    """The listener as the app sees it (status, event log, subscribe), with the real EventLog and
    ListenerStatus but fixed times, URLs and ports, so that the snapshot is the same every run
    (the behaviour through the real listener is tested in test_tui_events.py)."""

    def __init__(self, directory: Path) -> None:
        from listener.events import EventLog
        from listener.service import ListenerStatus

        self.events = EventLog(directory)
        self.receiver = None
        self.status = ListenerStatus(
            tunnel="up", public_url="https://quiet-otter-42.ngrok-free.app",
            webhook_url="https://quiet-otter-42.ngrok-free.app/webhooks/replicate",
            local_url="http://127.0.0.1:8790", accepted=3, rejected=1, last_webhook_at="2026-11-24T08:59:58Z",
            secret="fetched from the API (GET /v1/webhooks/default/secret)")

    def subscribe(self, callback: Any) -> Any:
        return self.events.subscribe(callback)


def record_events(listener: RecordedListener) -> None:
    from listener.events import EventRecord

    body = json.dumps({"id": "s9kt3vhcgnrm80ck8kg9n2ajzw", "status": "processing", "model": "ostris/flux-dev-lora-trainer",
                       "input": {"steps": 1000}, "logs": "flux_train_replicate:  68%|██████▊   | 684/1000\n",
                       "output": None, "error": None}).encode()
    headers = {"content-type": "application/json", "webhook-id": "msg_2c9Vn", "webhook-timestamp": "1795856398",
               "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=", "user-agent": "Replicate-Webhooks/1.0"}
    rows = [
        ("08:58:01", "accepted", "created", 200, "tc2m6p0fx5rm80ck8khbx8wvh8", "start", 3.1),
        ("08:58:40", "accepted", "updated", 200, "s9kt3vhcgnrm80ck8kg9n2ajzw", "logs", 12.4),
        ("08:59:02", "duplicate", "duplicate", 200, "s9kt3vhcgnrm80ck8kg9n2ajzw", "logs", 1.2),
        ("08:59:30", "rejected", "bad_signature", 401, None, None, 0.4),
        ("08:59:58", "accepted", "updated", 200, "s9kt3vhcgnrm80ck8kg9n2ajzw", "logs", 9.8),
    ]
    import asyncio

    async def add_all() -> None:
        for index, (at, verdict, reason, status, tid, event, took) in enumerate(rows):
            record = EventRecord(id=f"ev{index + 1:08d}", received_at=f"2026-11-24T{at}Z", method="POST",
                                 path="/webhooks/replicate", verdict=verdict, reason=reason, http_status=status,
                                 headers=headers, training_id=tid, event=event, webhook_id=headers["webhook-id"],
                                 status="processing" if tid else None, progress=68.4 if tid else None,
                                 duration_ms=took, response={"detail": "no valid signature: signed with another "
                                                             "secret?"} if verdict == "rejected" else {})
            await listener.events.add(record, body if verdict != "rejected" else b'{"id": "forged"}')

    asyncio.run(add_all())


@pytest.fixture
def events_app(tmp_path: Path) -> Iterator[ReplitrackApp]:
    store = Store()
    clock = SampleClock()
    client = ReplicateClient(token="r8_snapshot", base_url="http://replicate.test",
                             transport=replicate_answers(store), max_retries=0)
    service = TrainingService(store, client, clock=clock)
    populate(service.updater, clock)
    listener = RecordedListener(tmp_path / "events")
    record_events(listener)
    yield create_app(service, listener=listener, clock=lambda: T0, poll=False, tick=False)
    listener.events.close()
    store.close()


def test_events_screen(snap_compare: Any, events_app: ReplitrackApp) -> None:
    assert snap_compare(events_app, press=["e"], terminal_size=SIZE)


def test_events_screen_80x24(snap_compare: Any, events_app: ReplitrackApp) -> None:
    assert snap_compare(events_app, press=["e"], terminal_size=SMALL)


def test_event_detail(snap_compare: Any, events_app: ReplitrackApp) -> None:
    assert snap_compare(events_app, press=["e", "enter"], terminal_size=SIZE)
