"""Locks and secrets: a follower never holds the store while it waits for Replicate, the lock
message names what really holds it, and a token with control characters is refused unseen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli_helpers import cli_env, run, start
from core.errors import StoreInUseError
from core.store import Store
from simulator import Simulator
from test_listener_helpers import SECRET
from test_listener_listen import ListenProcess

FLUX = "ostris/flux-dev-lora-trainer"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=1.0, seed=21)
    await simulator.start()
    simulator.add_model("demo-user/portraits")
    yield simulator
    await simulator.stop()


async def test_a_follower_leaves_the_store_free_while_replicate_is_slow(sim: Simulator) -> None:
    created = await sim.create_training(FLUX, "demo-user/portraits",
                                        {"input_images": "https://example.invalid/i.zip", "steps": 5000})
    env = cli_env(sim.base_url, sim.token)
    assert (await run("status", created["id"], env=env)).code == 0  # stored
    sim.faults.slow_seconds = 2.0  # every answer from Replicate now takes 2 s
    follower = await start("logs", created["id"], "--follow", "--interval", "0.1", env=env)
    try:
        await asyncio.sleep(0.8)  # it is waiting for its first answer
        taken = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                Store(wait=0).close()  # what a TUI starting now does
                taken += 1
            except StoreInUseError:
                pass
            await asyncio.sleep(0.1)
        assert taken >= 25, f"the store was free only {taken} of ~30 times while the follower waited"
    finally:
        follower.terminate()
        await follower.communicate()


async def test_the_lock_message_names_what_holds_the_store(isolated_home: Path) -> None:
    listen = await ListenProcess.start("--no-tunnel", "--json", "--no-poll", "--webhook-secret", SECRET)
    try:
        await listen.next("ready")
        with pytest.raises(StoreInUseError) as caught:
            Store(wait=0)
        assert f"PID {listen.process.pid} (`replitrack listen`)" in str(caught.value)
    finally:
        await listen.stop()


@pytest.mark.parametrize("token", ["r8_abc\x1b]0;pwned\x07def", "r8_abc\ndef", "r8_abc def"])
async def test_a_token_with_control_characters_is_refused_and_never_echoed(token: str) -> None:
    result = await run("status", "zz4ibbonubfz7carwiefibzgga",
                       env={**cli_env("http://127.0.0.1:9"), "REPLICATE_API_TOKEN": token})
    assert result.code != 0
    assert "REPLICATE_API_TOKEN contains a control character or a space" in result.err
    assert "abc" not in result.err and "def" not in result.err and "pwned" not in result.err
    assert "Traceback" not in result.err
