"""Hostile clients on loopback: local web pages cannot act through the local API, and stalled or
dropped connections (real sockets that stop mid-request) never starve a real webhook."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import aiohttp

from core.store import LOCK_FILE, read_owner
from listener.connections import Limits
from test_listener_helpers import SECRET, TID, bars, get, post, running_listener, signed, training
from test_listener_listen import ListenProcess

FAST = Limits(header_timeout=0.5, body_idle_timeout=0.5, body_timeout=2.0, keepalive_timeout=2.0, check_every=0.1)


def hook_url(listener) -> str:
    return f"{listener.public_bind_url}/webhooks/replicate"


def token_of(listener) -> str:
    return (read_owner(listener.service.store.home) or {})["secret"]


# ----- local pages cannot act ------------------------------------------------------------------

async def test_a_local_web_page_cannot_act_through_the_local_api(isolated_home: Path) -> None:
    async with running_listener() as listener:
        assert (await post(hook_url(listener), *signed(training("processing", bars(10)), "msg_1")))[0] == 200
        cancel = f"{listener.local_url}/api/trainings/{TID}/cancel"
        replay = f"{listener.local_url}/api/events/ev00000001/replay"
        form = {"content-type": "application/x-www-form-urlencoded"}
        # What a page on http://localhost:3000 can send: a form POST (no preflight).
        for url in (cancel, replay, f"{listener.local_url}/api/import"):
            code, data, _ = await post(url, b"x=1", {**form, "Origin": "http://localhost:3000"})
            assert code == 403 and "forbidden_origin" in data["type"], (url, data)
            code, data, _ = await post(url, b"", {"Sec-Fetch-Site": "same-site"})  # browsers send it too
            assert code == 403, url
            code, data, _ = await post(url, b"", {})  # curl without the token
            assert code == 401 and "replitrack.lock" in data["detail"], url
            code, data, _ = await post(url, b"", {"Authorization": "Bearer wrong"})
            assert code == 401, url
        token = token_of(listener)
        code, data, _ = await post(replay, b"", {"Authorization": f"Bearer {token}", "Origin": "http://localhost:3000"})
        assert code == 403, "the token does not make a page trusted"
        assert listener.service.store.get(TID)["status"] == "processing", "nothing was done"
        code, data, _ = await post(replay, b"", {"Authorization": f"Bearer {token}"})
        assert code == 200 and data["event"]["verdict"] in ("accepted", "ignored")
        # Reading stays open to local callers, never to foreign pages.
        assert (await get(f"{listener.local_url}/api/events"))[0] == 200
        assert (await get(f"{listener.local_url}/api/events", headers={"Origin": "https://evil.example"}))[0] == 403
    # The token lives in the owner file, readable only by its user, and goes with the instance.
    assert (isolated_home / LOCK_FILE).stat().st_mode & 0o777 == 0o600
    assert read_owner(isolated_home) is None


async def test_an_exposed_local_api_keeps_the_protection_and_says_what_it_exposes(isolated_home: Path) -> None:
    async with running_listener(local_host="0.0.0.0", expose_local=True) as listener:
        url = f"http://127.0.0.1:{listener.local_port}"
        code, data, _ = await post(f"{url}/api/import", b"", {"Host": "lan-box:1234"})
        assert code == 401
        code, data = await get(f"{url}/api/listener", headers={"Host": "lan-box:1234"})
        assert code == 200  # exposed: reachable by name from the network, as asked
    listen = await ListenProcess.start("--no-tunnel", "--no-poll", "--webhook-secret", SECRET,
                                       "--api-host", "0.0.0.0", "--expose-local-api")
    try:
        line = ""
        while "WARNING" not in line:
            line = (await asyncio.wait_for(listen.process.stderr.readline(), 20)).decode()
    finally:
        await listen.stop()
    assert "inputs and logs" in line and "webhooks received" in line and "need the token" in line


# ----- floods and slow clients -----------------------------------------------------------------

def stalled(port: int, count: int, payload: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(payload)
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True  # reset


async def timed_webhook(listener, msg: str) -> tuple[int, float]:
    started = time.perf_counter()
    code = (await post(hook_url(listener), *signed(training("processing", bars(10, 20)), msg)))[0]
    return code, time.perf_counter() - started


async def test_hundreds_of_stalled_connections_do_not_starve_a_webhook_or_the_local_api(isolated_home: Path) -> None:
    async with running_listener(limits=FAST) as listener:
        public, local = listener.public_port, listener.local_port
        half_headers = b"POST /webhooks/replicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"
        flood = await asyncio.to_thread(stalled, public, 300, half_headers)
        flood += await asyncio.to_thread(stalled, local, 100, b"GET /api/listener HTTP/1.1\r\nHo")
        try:
            code, took = await timed_webhook(listener, "msg_1")
            assert code == 200 and took < 1.0, took
            assert (await get(f"{listener.local_url}/api/listener"))[0] == 200
            # Then the stalled ones are cut off after the header timeout.
            results = await asyncio.gather(*(asyncio.to_thread(closed_by_server, s, 5.0) for s in flood))
            assert all(results)
        finally:
            for sock in flood:
                sock.close()


async def test_a_full_connection_table_makes_room_for_a_newcomer(isolated_home: Path) -> None:
    limits = Limits(header_timeout=60, body_idle_timeout=60, body_timeout=60, max_connections=40)
    async with running_listener(limits=limits) as listener:
        flood = await asyncio.to_thread(stalled, listener.public_port, 80, b"POST /webhooks/replicate HTTP/1.1\r\n")
        try:
            code, took = await timed_webhook(listener, "msg_1")  # no timeout will help: only eviction
            assert code == 200 and took < 1.0, took
        finally:
            for sock in flood:
                sock.close()


async def test_a_stalled_body_is_cut_off_and_noted_once(isolated_home: Path) -> None:
    async with running_listener(limits=FAST) as listener:
        body, headers = signed(training("processing", bars(10)), "msg_slow")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST /webhooks/replicate HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:20]
        [sock] = await asyncio.to_thread(stalled, listener.public_port, 1, request)
        try:
            assert await asyncio.to_thread(closed_by_server, sock, 5.0)
        finally:
            sock.close()
        for _ in range(50):
            if len(listener.events):
                break
            await asyncio.sleep(0.05)
        [event] = listener.events.latest()
        assert (event.reason, event.http_status, event.webhook_id) == ("body_timeout", 408, "msg_slow")
        assert listener.service.store.get(TID) is None
        # The sender's retry, whole this time, is applied (the id was not remembered).
        assert (await post(hook_url(listener), body, headers))[0] == 200


async def test_a_sender_dropping_mid_body_is_one_quiet_line(isolated_home: Path) -> None:
    listen = await ListenProcess.start("--no-tunnel", "--json", "--no-poll", "--webhook-secret", SECRET)
    url = (await listen.next("ready"))["receiver"]
    port = int(url.split(":")[2].split("/")[0])
    body, headers = signed(training("processing", bars(10) * 50), "msg_drop")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST /webhooks/replicate HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:len(body) // 2]
    for _ in range(20):
        [sock] = await asyncio.to_thread(stalled, port, 1, request)
        sock.close()  # gone mid-body
    dropped = [await listen.next("webhook", reason="client_disconnected") for _ in range(20)]
    assert {line["http_status"] for line in dropped} == {499}
    async with aiohttp.ClientSession() as session:  # the listener is fine
        async with session.post(url, data=body, headers=headers) as answer:
            assert answer.status == 200
    code, err = await listen.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err and "Error handling request" not in err, err
    events = [json.loads(line) for line in (isolated_home / "events" / "index.jsonl").read_text().splitlines()]
    assert sum(e["reason"] == "client_disconnected" for e in events) == 20
