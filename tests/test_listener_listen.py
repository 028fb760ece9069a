"""`replitrack listen` as a real process against the simulated Replicate, and the crash test:
kill -9 during a stream of webhooks; after a restart every webhook that got a 2xx is in the store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.client import ReplicateClient
from core.models import Status
from core.service import TrainingService
from core.store import Store
from core.webhooks import verify_webhook
from listener.service import Listener
from simulator import Simulator
from test_listener_helpers import SECRET, bars, signed, training

ROOT = Path(__file__).resolve().parent.parent
TRAINER = "ostris/flux-dev-lora-trainer"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=3000, seed=7)
    await simulator.start()
    simulator.add_model("me/lora")
    yield simulator
    await simulator.stop()


class ListenProcess:
    """`replitrack listen` in a child process; stdout read line by line (JSON with --json)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> ListenProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui.cli", "listen", *args, cwd=ROOT, env={**os.environ, **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(process)

    async def next(self, kind: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {kind} line {match} in time; got {self.lines[-5:]}"
            raw = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            assert raw, f"listen exited: {(await self.process.stderr.read()).decode()}"
            line = json.loads(raw)
            self.lines.append(line)
            if line["type"] == kind and all(line.get(k) == v for k, v in match.items()):
                return line

    async def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, err = await asyncio.wait_for(self.process.communicate(), 15)
        return self.process.returncode, err.decode()


async def test_listen_prints_each_webhook_forwards_it_and_stops_cleanly(isolated_home: Path, sim: Simulator) -> None:
    forwarded: list[tuple[bytes, dict[str, str]]] = []

    async def web_app_hook(request: web.Request) -> web.Response:
        forwarded.append((await request.read(), dict(request.headers)))
        return web.json_response({"received": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/webhooks/replicate", web_app_hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    web_app = f"http://127.0.0.1:{runner.addresses[0][1]}/api/webhooks/replicate"
    env = {"REPLICATE_BASE_URL": sim.base_url, "REPLICATE_API_TOKEN": sim.token}
    listen = await ListenProcess.start("--no-tunnel", "--json", "--forward-to", web_app,
                                       "--events", "start,completed", env=env)
    try:
        ready = await listen.next("ready")
        assert ready["secret_source"].startswith("Replicate account") and ready["tunnel"] == "off (polling only)"
        assert ready["receiver"].endswith("/webhooks/replicate") and ready["local_api"].startswith("http://127.0.0.1:")
        created = await sim.create_training(TRAINER, "me/lora", {"input_images": "https://x/i.zip", "steps": 60},
                                            webhook=ready["receiver"],
                                            webhook_events_filter=["start", "logs", "completed"])
        done = await listen.next("webhook", timeout=30, training_id=created["id"], event="completed")
        assert done["verdict"] in ("accepted", "ignored") and done["http_status"] == 200
        assert done["status"] == "succeeded"
        answer = await listen.next("forward", training_id=created["id"])
        assert answer["status"] == 200 and answer["url"] == web_app
        # --events start,completed: the logs webhooks were saved but not printed.
        assert {line["event"] for line in listen.lines if line["type"] == "webhook"} <= {"start", "completed"}
        # The web app got Replicate's exact bytes and signature headers: it can verify them itself.
        body, headers = forwarded[-1]
        assert verify_webhook(body, headers, sim.webhook_secret)["id"] == created["id"]
        marker = {k.lower(): v for k, v in headers.items()}["x-replitrack-forwarded"]
        assert marker == answer["id"]  # a relayed webhook is never relayed again (no loops)

        second = await ListenProcess.start("--no-tunnel", env=env)  # the store is taken
        code, err = await asyncio.wait_for(second.process.communicate(), 15)
        assert second.process.returncode == 1
        assert b"already in use by PID" in err and b"Traceback" not in err
    finally:
        code, err = await listen.stop()
        await runner.cleanup()
    assert code == 0 and "Traceback" not in err
    with Store(readonly=True) as store:
        record = store.get(created["id"])
        assert record["status"] == "succeeded" and record["overall_percent"] == 100
        assert store.read_log(created["id"]) == sim.training(created["id"])["logs"]


async def test_an_unknown_training_is_recorded_and_fetched(isolated_home: Path, sim: Simulator) -> None:
    finished = sim.add_finished_training(TRAINER, "me/lora", {"input_images": "https://x/i.zip", "steps": 40})
    store = Store()
    client = ReplicateClient(token=sim.token, base_url=sim.base_url)
    listener = Listener(TrainingService(store, client), secret=SECRET)
    await listener.start()
    try:
        # A late `start` webhook for a training this store never saw: kept, then fetched whole.
        body, headers = signed(training("starting", None, tid=finished["id"]), "msg_start")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{listener.public_bind_url}/webhooks/replicate", data=body,
                                    headers=headers) as answer:
                assert answer.status == 200 and (await answer.json())["outcome"] == "created"
        deadline = time.monotonic() + 10
        while store.get(finished["id"])["status"] != "succeeded":
            assert time.monotonic() < deadline, "the unknown training was not fetched"
            await asyncio.sleep(0.05)
        assert store.read_log(finished["id"]) == finished["logs"]
    finally:
        await listener.stop()
        await client.aclose()
        store.close()


async def test_kill_9_during_a_stream_loses_no_acknowledged_webhook(isolated_home: Path) -> None:
    listen = await ListenProcess.start("--no-tunnel", "--json", "--no-poll", "--webhook-secret", SECRET)
    ready = await listen.next("ready")
    url = ready["receiver"]
    acked: dict[str, tuple[str, int]] = {}  # training id → (highest acknowledged status, log length)
    acked_ids: list[str] = []
    steps = list(range(10, 1001, 10))

    async def stream(session: aiohttp.ClientSession, n: int) -> None:
        tid = f"crash{n:02d}aaaaaaaaaaaaaaaaaaaa"
        for i, step in enumerate(steps):
            status = "succeeded" if step == steps[-1] else "processing"
            log = bars(*steps[: i + 1])
            body, headers = signed(training(status, log, tid=tid), f"msg_{n}_{i}")
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    if answer.status == 200:
                        acked[tid] = (status, len(log))
                        acked_ids.append(f"msg_{n}_{i}")
            except (aiohttp.ClientError, OSError):
                return  # the listener is gone

    async with aiohttp.ClientSession() as session:
        senders = [asyncio.create_task(stream(session, n)) for n in range(8)]
        while len(acked_ids) < 150:
            await asyncio.sleep(0.01)
        listen.process.kill()  # SIGKILL, mid-stream
        await asyncio.gather(*senders)
        await listen.process.wait()
    assert len(acked_ids) >= 150

    with Store(readonly=True) as store:  # what a restart finds on disk
        for tid, (status, log_length) in acked.items():
            record = store.get(tid)
            assert record is not None, tid
            assert Status.parse(record["status"]).rank >= Status.parse(status).rank
            assert store.log_length(tid) >= log_length
        assert all(store.seen_webhook(msg) for msg in acked_ids)

    # The restarted listener knows every acknowledged webhook id: Replicate's retries are no-ops.
    again = await ListenProcess.start("--no-tunnel", "--json", "--no-poll", "--webhook-secret", SECRET)
    ready = await again.next("ready")
    try:
        async with aiohttp.ClientSession() as session:
            n, i = map(int, acked_ids[-1].split("_")[1:])
            tid = f"crash{n:02d}aaaaaaaaaaaaaaaaaaaa"
            body, headers = signed(training("processing", bars(*steps[: i + 1]), tid=tid), acked_ids[-1])
            async with session.post(ready["receiver"], data=body, headers=headers) as answer:
                assert answer.status == 200 and (await answer.json())["outcome"] == "duplicate"
    finally:
        code, err = await again.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--events", "start,bogus"], "unknown event bogus"),
    (["--max-body", "lots"], "is not a size"),
    (["--port", "70000"], "is not a port"),
    (["--forward-to", "localhost:3000/hook"], "is not an http(s) URL"),
    (["--public-url", "hooks.example.org"], "is not an http(s) URL"),
    (["--api-host", "0.0.0.0", "--no-tunnel"], "--expose-local-api"),
])
def test_bad_arguments_are_clear_messages(isolated_home: Path, capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    from tui.cli.main import main

    assert main(["listen", *args]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    Store().close()  # whatever failed, the store was released (no StoreInUseError)


def test_sizes_and_event_lists_parse() -> None:
    from tui.cli.listen import parse_events, parse_size

    assert parse_size("64MiB") == 64 * 1024 * 1024 and parse_size("500k") == 500 * 1024
    assert parse_size("1048576") == 1048576 and parse_size("1.5 GB") == int(1.5 * 1024 ** 3)
    assert parse_events("Start, completed") == {"start", "completed"} and parse_events(None) is None
