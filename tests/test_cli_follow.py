"""`logs` (with --follow and --tail) and `watch`, as subprocesses polling the simulated Replicate:
what they print and the exit codes scripts rely on (0 succeeded, 1 failed, 2 canceled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cli_helpers import Result, cli_env, run, start
from core.views import LOGS_KEYS, STATUS_KEYS
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
IMAGES = "https://example.invalid/portraits.zip"
FAST = ("--interval", "0.1")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=1500.0, seed=5)
    await simulator.start()
    simulator.add_model("demo-user/portraits")
    yield simulator
    await simulator.stop()


def env_for(sim: Simulator) -> dict[str, str]:
    return cli_env(sim.base_url, sim.token)


async def new_training(sim: Simulator, *, steps: int = 30, script: str | None = None) -> str:
    created = await sim.create_training(FLUX, "demo-user/portraits", {"input_images": IMAGES, "steps": steps},
                                        script=script)
    return created["id"]


def whole_log(sim: Simulator, training_id: str) -> str:
    logs = sim.training(training_id)["logs"] or ""
    return logs if logs.endswith("\n") else logs + "\n"


async def test_follow_streams_the_whole_log_and_exits_0_on_success(sim: Simulator) -> None:
    tid = await new_training(sim)
    result = await run("logs", tid, "--follow", *FAST, env=env_for(sim))
    assert result.code == 0, result.err
    assert sim.training(tid)["status"] == "succeeded"
    assert result.out == whole_log(sim, tid), "every line once, in order, nothing else on stdout"
    assert "flux_train_replicate:" in result.out
    assert f"training {tid} succeeded" in result.err


async def test_follow_exits_1_on_failure_and_says_why(sim: Simulator) -> None:
    tid = await new_training(sim, script="flux-fail-load")
    result = await run("logs", tid, "-f", *FAST, env=env_for(sim))
    assert result.code == 1
    assert "Traceback (most recent call last):" in result.out
    assert f"training {tid} failed: " in result.err and "config.json" in result.err


async def test_follow_exits_2_when_canceled_midway(sim: Simulator) -> None:
    tid = await new_training(sim, steps=30)
    sim.hold(tid, at="end")  # it cannot end before the follower has started
    process = await start("logs", tid, "--follow", *FAST, env=env_for(sim))
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 20)  # it is streaming
    assert first.strip()
    sim.cancel_training(tid)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2, err.decode()
    assert f"training {tid} canceled" in err.decode()
    assert "Traceback" not in err.decode()


async def test_logs_tail_and_json(sim: Simulator) -> None:
    tid = await new_training(sim, steps=5)
    assert (await run("logs", tid, "-f", *FAST, env=env_for(sim))).code == 0
    full = sim.training(tid)["logs"]

    tail = await run("logs", tid, "--tail", "3", env=env_for(sim))
    assert tail.code == 0
    assert tail.out.splitlines() == full.splitlines()[-3:]

    view = (await run("logs", tid, "--json", env=env_for(sim))).json()
    assert list(view) == list(LOGS_KEYS)
    assert view["logs"] == full and view["offset"] == 0 and view["next_offset"] == len(full)
    assert view["status"] == "succeeded" and view["terminal"] is True


async def test_follow_json_lines_rebuild_the_log(sim: Simulator) -> None:
    tid = await new_training(sim, steps=10)
    result = await run("logs", tid, "--follow", "--json", *FAST, env=env_for(sim))
    assert result.code == 0
    chunks = result.json_lines()
    assert all(list(chunk) == list(LOGS_KEYS) for chunk in chunks)
    assert "".join(chunk["logs"] for chunk in chunks) == sim.training(tid)["logs"]
    for before, after in zip(chunks, chunks[1:]):
        assert after["offset"] == before["next_offset"], "chunks are contiguous"
    assert chunks[-1]["terminal"] is True and chunks[-1]["status"] == "succeeded"


async def test_watch_piped_prints_lines_and_exits_like_logs(sim: Simulator) -> None:
    ok, bad = await new_training(sim, steps=200), await new_training(sim, script="flux-fail-load")
    # Held as its steps begin, then let 30 events (bar lines) further: running, with an ETA, and
    # kept there until watch has seen it so (however the trainer spaces its bar lines).
    hold = sim.hold(ok, at="flux_train_replicate:")
    await hold.reached()
    hold.step(30)
    process = await start("watch", ok, bad, *FAST, env=env_for(sim))
    assert process.stdout is not None
    seen: list[str] = []
    while not any(ok in line and "processing" in line and "ETA" in line for line in seen):
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line, f"watch ended before {ok} did: {seen}"
        seen.append(line.decode())
    hold.release()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    result = Result(process.returncode or 0, "".join(seen) + out.decode(), err.decode())
    assert result.code == 1, "any failure makes watch exit 1"
    lines = result.out.splitlines()
    assert any(ok in line and "succeeded" in line and "100%" in line for line in lines)
    assert any(ok in line and "processing" in line and "ETA" in line for line in lines), "seen while running"
    assert any(bad in line and "failed" in line for line in lines)
    assert "\x1b" not in result.out, "piped: no bars, no colour"
    assert "config.json" in result.err


async def test_watch_json_lines_are_status_views(sim: Simulator) -> None:
    tid = await new_training(sim, steps=20)
    result = await run("watch", tid, "--json", *FAST, env=env_for(sim))
    assert result.code == 0
    views = result.json_lines()
    assert views and all(list(view) == list(STATUS_KEYS) for view in views)
    percents = [view["overall_percent"] or 0 for view in views]
    assert percents == sorted(percents), "progress only moves forward"
    assert views[-1]["status"] == "succeeded" and views[-1]["overall_percent"] == 100


async def test_watch_exit_2_when_canceled(sim: Simulator) -> None:
    tid = await new_training(sim, steps=30)
    sim.hold(tid, at="end")
    process = await start("watch", tid, "--json", *FAST, env=env_for(sim))
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readline(), 20)
    sim.cancel_training(tid)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2, err.decode()


async def test_follow_unknown_training_is_a_clear_error(sim: Simulator) -> None:
    result = await run("logs", "aaaaaaaaaaaaaaaaaaaaaaaaaa", "--follow", *FAST, env=env_for(sim))
    assert result.code == 1
    assert "404: training aaaaaaaaaaaaaaaaaaaaaaaaaa not found on Replicate" in result.err
    result = await run("watch", "someone/unknown-model", *FAST, env=env_for(sim))
    assert result.code == 1 and "no training 'someone/unknown-model'" in result.err


async def test_follow_rides_out_a_rate_limit(sim: Simulator) -> None:
    tid = await new_training(sim, steps=30)
    await run("logs", tid, *FAST, env=env_for(sim))  # stored once: later failures are not fatal
    sim.faults.throttle_next = 3
    sim.faults.throttle_reset = 1
    result = await run("logs", tid, "--follow", *FAST, env=env_for(sim))
    assert result.code == 0
    assert result.out.endswith(whole_log(sim, tid)[-200:])
