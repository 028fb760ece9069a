"""The small things a new user hits on the command line, through the real `replitrack` process:
--version, a bad option answered with that command's usage, `listen` without an ngrok authtoken,
Ctrl+C (130), output piped into a reader that goes away (a real closed pipe), and commands run
beside a running demo."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator

import pytest

from cli_helpers import cli_env, run, start
from core.store import Store
from core.updates import Updater
from sample_data import bulk_records
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=500.0, seed=31)
    await simulator.start()
    simulator.add_model("demo-user/portraits")
    yield simulator
    await simulator.stop()


async def test_version() -> None:
    result = await run("--version")
    assert result.code == 0 and result.out.startswith("replitrack ") and result.out.split()[1][0].isdigit()


async def test_a_bad_option_prints_that_commands_usage() -> None:
    result = await run("logs", "someid", "--bogus")
    assert result.code == 64
    assert result.err.startswith("usage: replitrack logs ") and "unrecognized arguments: --bogus" in result.err
    result = await run("import", "--all")
    assert result.code == 64 and result.err.startswith("usage: replitrack import ")


async def test_listen_without_an_ngrok_authtoken_polls_and_says_how_to_get_a_tunnel(sim: Simulator) -> None:
    env = cli_env(sim.base_url, sim.token)
    assert "NGROK_AUTHTOKEN" not in env
    process = await start("listen", env=env)
    assert process.stdout is not None
    seen = ""
    while "Local API" not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line, f"listen ended: {seen}"
        seen += line.decode()
    assert "polling only, no tunnel: set NGROK_AUTHTOKEN or pass --public-url" in seen
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()  # Ctrl+C is how `listen` is stopped
    assert "ngrok" not in err.decode().lower().replace("ngrok_authtoken", ""), "no attempt to fetch or run ngrok"

    process = await start("listen", "--json", env=env)
    assert process.stdout is not None
    ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
    assert ready["type"] == "ready" and ready["webhook_url"] is None and "NGROK_AUTHTOKEN" in ready["tunnel"]
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), 20)


async def test_ctrl_c_in_watch_exits_130_quietly(sim: Simulator) -> None:
    sim.hold(at="end")
    created = await sim.create_training(FLUX, "demo-user/portraits",
                                        {"input_images": "https://example.invalid/i.zip", "steps": 30})
    process = await start("watch", created["id"], "--interval", "0.1", env=cli_env(sim.base_url, sim.token))
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readline(), 20)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 130 and b"Traceback" not in err


async def closed_early(*args: str) -> tuple[int, str]:
    """Run the command with stdout into a pipe whose reader takes one line and goes away."""
    process = await start(*args)
    assert process.stdout is not None and process.stderr is not None
    assert await asyncio.wait_for(process.stdout.readline(), 20)
    process.stdout.feed_eof()
    transport = process._transport.get_pipe_transport(1)  # type: ignore[attr-defined]
    transport.close()  # the read end is closed for real: the next writes get EPIPE
    err = await asyncio.wait_for(process.stderr.read(), 30)
    return await asyncio.wait_for(process.wait(), 30), err.decode()


async def test_output_into_a_reader_that_goes_away_ends_quietly() -> None:
    with Store() as store:
        for record in bulk_records(1500):  # ~200 KB as a table: more than a pipe holds
            store.put(record)
        Updater(store).apply({"id": "biglog000000000000000000aa", "status": "succeeded", "model": FLUX,
                              "version": "v1", "logs": "".join(f"line {n} of a long log\n" for n in range(20_000)),
                              "created_at": "2026-11-20T10:00:00Z", "completed_at": "2026-11-20T10:30:00Z"},
                             source="import")
        store.flush()
    for args in (("list", "--no-refresh"), ("list", "--no-refresh", "--json"), ("logs", "biglog000000000000000000aa")):
        code, err = await closed_early(*args)
        assert code in (0, 141), (args, code, err)
        assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, (args, err)
