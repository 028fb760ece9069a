"""The CLI beside a running `replitrack listen` (which owns the store): reading commands read its
store, changing commands go through its local API, `logs --follow` follows what its webhooks
bring, and `events` lists and replays what it received. All real processes on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from cli_helpers import Result, cli_env, run, start
from core.views import STATUS_KEYS
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
IMAGES = "https://example.invalid/portraits.zip"
DEST = "demo-user/portraits"


@dataclass
class Listening:
    process: asyncio.subprocess.Process
    api: str  # the local API's URL
    webhook_url: str
    env: dict[str, str]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=1500.0, seed=11)
    await simulator.start()
    simulator.add_model(DEST)
    yield simulator
    await simulator.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def listening(sim: Simulator) -> AsyncIterator[Listening]:
    """`replitrack listen` with its public face reachable at a URL of our own (no ngrok): the
    simulator delivers its signed webhooks there."""
    env = cli_env(sim.base_url, sim.token)
    port = free_port()
    process = await start("listen", "--port", str(port), "--public-url", f"http://127.0.0.1:{port}", "--json",
                          env=env)
    assert process.stdout is not None
    ready = None
    while ready is None:
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line, f"listen ended early: {(await process.stderr.read()).decode() if process.stderr else ''}"
        event = json.loads(line)
        if event.get("type") == "ready":
            ready = event
    drain = asyncio.create_task(process.stdout.read())  # keep its pipe from filling up
    yield Listening(process, ready["local_api"], ready["webhook_url"], env)
    if process.returncode is None:  # some tests stop it themselves
        process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 20) == 0, "listen stops cleanly on Ctrl+C"
    await drain


async def finish(process: asyncio.subprocess.Process, already_read: bytes = b"") -> Result:
    out, err = await asyncio.wait_for(process.communicate(), 40)
    assert b"Traceback" not in err, err.decode()
    return Result(process.returncode or 0, (already_read + out).decode(), err.decode())


async def local(listening: Listening, path: str) -> object:
    async with httpx.AsyncClient() as http:
        response = await http.get(listening.api + path)
        response.raise_for_status()
        return response.json()


async def test_config_names_the_owner(listening: Listening) -> None:
    owner = (await run("config", "--json", env=listening.env)).json()["owner"]
    assert owner == {"pid": listening.process.pid, "api": listening.api}


async def test_sync_goes_through_the_owner_and_reads_match_its_api(sim: Simulator, listening: Listening) -> None:
    done = sim.add_finished_training(FLUX, DEST, {"input_images": IMAGES, "steps": 10})
    env = listening.env

    preview = (await run("sync", "--json", env=env)).json()
    assert [d["id"] for d in preview["differences"]] == [done["id"]]
    synced = await run("sync", "--all", "--json", env=env)
    assert synced.code == 0, synced.err
    entry = synced.json()["synced"][0]
    assert entry["id"] == done["id"] and entry["outcome"] == "created"
    assert entry["training"]["status"] == "succeeded"

    # the owner wrote it; we read its store (read-only) and answer what its API answers
    status = (await run("status", done["id"], "--json", env=env)).json()
    assert status == await local(listening, f"/api/models/{done['id']}/status")
    assert list(status) == list(STATUS_KEYS)
    listing = (await run("list", "--json", env=env)).json()
    assert [view["id"] for view in listing] == [done["id"]]

    again = await run("sync", done["id"], "--version", done["output"]["version"], env=env)
    assert again.code == 0, again.err

    imported = await run("import", "--json", env=env)  # through the owner's local API
    assert imported.code == 0, imported.err
    assert imported.json()["stored"] >= 1


async def test_train_listen_then_follow_what_webhooks_bring(sim: Simulator, listening: Listening) -> None:
    env = listening.env
    hold = sim.hold(at="end")  # it does not end before both followers are following
    started = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", "steps=300", "--listen", env=env)
    assert started.code == 0, started.err
    tid = started.out.strip()
    assert sim.training(tid)["status"] in ("starting", "processing")

    following = []
    for args in (("logs", tid, "--follow"), ("watch", tid, "--json")):
        process = await start(*args, env=env)
        assert process.stdout is not None
        following.append((process, await asyncio.wait_for(process.stdout.readline(), 20)))  # it follows
    hold.release()
    follow, watch = [await finish(process, first) for process, first in following]
    assert follow.code == 0, follow.err
    assert watch.code == 0, watch.err
    views = watch.json_lines()
    assert views[-1]["status"] == "succeeded" and views[-1]["overall_percent"] == 100
    percents = [view["overall_percent"] or 0 for view in views]
    assert percents == sorted(percents) and len(views) >= 2, "it watched the owner's store move"
    assert follow.out == sim.training(tid)["logs"] + ("" if sim.training(tid)["logs"].endswith("\n") else "\n")

    events = (await run("events", "--json", "--training", tid, env=env)).json()
    assert events["count"] >= 2, "its webhooks reached the listener"
    delivered = [d for d in sim.deliveries if d.training_id == tid and d.outcome == "delivered"]
    assert delivered and all(d.url == listening.webhook_url for d in delivered), "sent to the owner's URL"
    assert {e["verdict"] for e in events["events"]} <= {"accepted", "duplicate", "ignored"}
    assert any(e["event"] == "completed" and e["status"] == "succeeded" for e in events["events"])

    human = await run("events", "--training", tid, env=env)
    assert human.code == 0 and "VERDICT" in human.out.splitlines()[0] and "accepted" in human.out

    completed = next(e for e in events["events"] if e["event"] == "completed")
    replay = await run("events", "replay", completed["id"], "--json", env=env)
    assert replay.code == 0, replay.err
    answer = replay.json()
    assert answer["replayed"] == completed["id"] and answer["event"]["replay_of"] == completed["id"]
    assert answer["event"]["training_id"] == tid

    missing = await run("events", "replay", "ev99999999", env=env)
    assert missing.code == 1 and "no event 'ev99999999'" in missing.err


async def test_cancel_and_retry_beside_the_owner(sim: Simulator, listening: Listening) -> None:
    env = listening.env
    sim.hold(at="end")  # nothing started here ends by itself
    started = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", "steps=60", env=env)
    assert started.code == 0, started.err
    tid = started.out.strip()
    assert (await local(listening, f"/api/models/{tid}/status"))["id"] == tid, "the owner tracks it at once"

    cancel = await run("cancel", tid, env=env)
    assert cancel.code == 0, cancel.err
    assert sim.training(tid)["status"] == "canceled"
    status = (await run("status", tid, "--json", env=env)).json()
    assert status["status"] == "canceled", "the owner fetched the cancel straight away"

    # The owner started it (POST /api/trainings), so it knows the destination: retry works too.
    again = await run("retry", tid, env=env)
    assert again.code == 0, again.err
    assert sim.training(again.out.strip())["input"] == sim.training(tid)["input"]

    done = sim.add_finished_training(FLUX, DEST, {"input_images": IMAGES, "steps": 10})
    assert (await run("sync", done["id"], env=env)).code == 0
    retry = await run("retry", done["id"], env=env)
    assert retry.code == 0, retry.err
    new_id = retry.out.strip()
    assert (await local(listening, f"/api/models/{new_id}/status"))["id"] == new_id, "the owner tracks it"
    assert sim.training(new_id)["input"] == done["input"] and sim.training(new_id)["model"] == FLUX


async def test_follow_survives_the_owner_stopping(sim: Simulator, listening: Listening) -> None:
    env = listening.env
    sim.hold(at="end")
    started = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", "steps=60", env=env)
    tid = started.out.strip()
    follower = await start("logs", tid, "--follow", "--interval", "0.2", env=env)
    assert follower.stdout is not None
    await asyncio.wait_for(follower.stdout.readline(), 20)
    listening.process.send_signal(signal.SIGINT)  # the owner goes away: the follower polls itself
    await asyncio.wait_for(listening.process.wait(), 20)
    sim.cancel_training(tid)
    out, err = await asyncio.wait_for(follower.communicate(), 30)
    assert follower.returncode == 2, err.decode()
    assert "Traceback" not in err.decode()


async def test_events_without_an_owner_read_the_log_and_replay(sim: Simulator, listening: Listening) -> None:
    env = listening.env
    started = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", "steps=20", "--listen", env=env)
    tid = started.out.strip()
    assert (await run("logs", tid, "--follow", env=env, timeout=40)).code == 0
    listening.process.send_signal(signal.SIGINT)
    await asyncio.wait_for(listening.process.wait(), 20)

    events = (await run("events", "--json", "--training", tid, env=env)).json()
    assert events["count"] >= 2 and all(e["training_id"] == tid for e in events["events"])
    first = events["events"][-1]
    replay = await run("events", "replay", first["id"], env=env)
    assert replay.code == 0, replay.err
    assert f"replayed {first['id']}" in replay.err
    assert replay.out.strip().startswith("ev")


async def test_a_bare_import_opened_beside_the_owner_is_fetched_at_once(sim: Simulator, listening: Listening) -> None:
    failed = sim.add_finished_training(FLUX, DEST, {"input_images": IMAGES, "steps": 10}, script="flux-fail-load")
    env = listening.env
    assert (await run("import", "--json", env=env)).code == 0  # the owner imports the list (no logs)
    logs = await run("logs", failed["id"], env=env)
    assert logs.code == 0, logs.err
    assert logs.out == failed["logs"], "the owner fetched the whole log when it was opened"
    view = (await run("status", failed["id"], "--json", env=env)).json()
    assert view["stage"] == "failed" and view["overall_percent"] > 0 and "config.json" in view["error"]
