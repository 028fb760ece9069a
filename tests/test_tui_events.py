"""The webhook inspector on screen: real signed (and forged) webhooks POSTed over loopback to the
real listener, seen live on the Events screen, inspected, filtered and replayed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from core.webhooks import sign_webhook
from listener.service import Listener
from listener.tunnel import TunnelConfig
from tui.app import ReplitrackApp, create_app
from tui.cli.runtime import free_port
from tui.screens.confirm import ConfirmScreen
from tui.screens.events import EventDetailScreen, EventsScreen, body_lines, shown
from tui.screens.models import ModelsScreen
from tui_support import FLUX, SIZE, screen_text, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TID = "evnt0training0000000000000"


def payload(**extra: Any) -> dict[str, Any]:
    return {"id": TID, "model": FLUX, "version": "v", "status": "processing", "input": {"steps": 100},
            "destination": "me/inspected", "urls": {}, "error": None, "output": None, "metrics": {},
            "created_at": "2026-11-24T09:00:00Z", "started_at": "2026-11-24T09:00:05Z",
            "logs": "Starting train job\n\x1b[31mred\x1b[0m [/] [link=https://evil.example]x[/link]\n", **extra}


@asynccontextmanager
async def listening() -> AsyncIterator[tuple[ReplitrackApp, Listener, Any]]:
    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client)
    port = free_port()
    listener = Listener(service, secret=SECRET, public_port=port, tunnel=TunnelConfig.url(f"http://127.0.0.1:{port}"))
    await listener.start()
    app = create_app(service, listener=listener, poll=False)
    try:
        async with httpx.AsyncClient() as http:
            async def send(body: dict[str, Any], msg: str, *, forged: bool = False) -> int:
                raw = json.dumps(body).encode()
                headers = sign_webhook(raw, SECRET, msg, int(time.time()))
                if forged:
                    headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]
                answer = await http.post(listener.webhook_url, content=raw,
                                         headers={**headers, "content-type": "application/json"})
                return answer.status_code

            yield app, listener, send
    finally:
        await listener.stop()
        await client.aclose()
        store.close()


async def test_events_arrive_live_rejected_stand_out_and_filters_narrow() -> None:
    async with listening() as (app, listener, send):
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert await send(payload(), "msg_1") == 200
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), what="the events screen")
            screen = app.screen
            await wait_for(pilot, lambda: len(screen.table.ids) == 1, what="the first event")
            # The listener's full state is on the screen, with its URL and secret source.
            text = screen_text(app)
            assert listener.webhook_url in text and "--webhook-secret" in text and "1 accepted" in text
            # Live: a forged webhook arrives while the screen is open and is listed first.
            assert await send(payload(), "msg_2", forged=True) == 401
            await wait_for(pilot, lambda: len(screen.table.ids) == 2, what="the rejected event, live")
            newest = screen.records[screen.table.ids[0]]
            assert newest["verdict"] == "rejected"
            assert "1 rejected" in screen_text(app) and "rejected" in screen.table.row_text(newest["id"])
            # It stands out: its verdict is drawn on red.
            strip = screen.table.render_line(1)
            assert any(s.style and s.style.bgcolor and "red" in s.style.bgcolor.name for s in strip
                       if "rejected" in s.text)
            await pilot.press("v")  # accepted only
            assert screen.verdict == "accepted" and [screen.records[i]["verdict"] for i in screen.table.ids] == [
                "accepted"]
            await pilot.press("v", "v", "v")  # duplicate, ignored, rejected
            assert screen.verdict == "rejected" and len(screen.table.ids) == 1
            for _ in range(2):  # error, then all again
                await pilot.press("v")
            assert screen.verdict is None and len(screen.table.ids) == 2
            await pilot.press("j")  # the accepted one: it names its training
            await pilot.press("t")
            assert screen.training == TID and len(screen.table.ids) == 1
            await pilot.press("t")
            assert screen.training is None and len(screen.table.ids) == 2


async def test_inspect_shows_headers_and_pretty_body_safely_and_replay_asks_first() -> None:
    async with listening() as (app, listener, send):
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert await send(payload(), "msg_1") == 200
            await pilot.pause()
            # The header's "1 received" opens the inspector.
            assert "1 received" in screen_text(app)
            await pilot.click("StatusLine")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), what="the events screen")
            await wait_for(pilot, lambda: app.screen.table.ids, what="the event")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), what="the request")
            await pilot.pause()
            lines = app.screen.lines
            assert "webhook-id: msg_1" in lines and '  "status": "processing",' in lines
            shown = screen_text(app)
            assert "accepted" in shown and "webhook-signature" in shown
            # Escape characters never reach the terminal (JSON shows them escaped); markup is shown as typed.
            logs = next(line for line in lines if '"logs"' in line)
            assert "\x1b" not in logs and "\\u001b[31mred" in logs and "[link=https://evil.example]" in logs
            await pilot.press("G")  # the end of the body: the logs line, markup as typed
            await pilot.pause()
            assert "[link=https://evil.example]x[/link]" in screen_text(app)
            before = len(listener.events)
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), what="back, unreplayed")
            assert len(listener.events) == before
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: len(listener.events) == before + 1, what="the replay")
            replayed = listener.events.latest(1)[0]
            assert replayed.replay_of is not None and replayed.verdict in ("accepted", "ignored")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), what="the list")
            await wait_for(pilot, lambda: len(app.screen.table.ids) == 2, what="the replay listed")
            assert "replay of" in app.screen.table.row_text(replayed.id)


async def test_without_a_listener_the_screen_says_so() -> None:
    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    app = create_app(TrainingService(store, client), poll=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ModelsScreen)
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), what="the events screen")
            await pilot.pause()
            text = screen_text(app)
            assert "No listener" in text and "polling only" in text
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="back")
    finally:
        await client.aclose()
        store.close()


def test_large_bodies_are_cut_per_line_and_paged() -> None:
    body = json.dumps({"logs": "x" * 10_000, "items": list(range(3_000))}).encode()
    lines = body_lines(body, len(body))
    assert len(lines) > 3_000 and lines[0] == "{"
    assert any(line.endswith("(6,013 more characters)") for line in lines)
    assert body_lines(None, 70 << 20) == ["(the body, 70.0 MiB, was not kept: too large, or evicted from the event log)"]
    assert body_lines(b"not json \x1b]0;title\x07", 20) == ["not json ·"]
    assert shown("a\x9bb\tc") == "a·\tc"  # 8-bit CSI: "b" is its final byte, as a terminal reads it
