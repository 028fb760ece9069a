"""The reading commands (`config`, `list`, `status`, `import`) and the CLI's error contract, run as
real subprocesses against the simulated Replicate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli_helpers import cli_env, run
from core.views import STATUS_KEYS
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=500.0, seed=3)
    await simulator.start()
    simulator.add_model("demo-user/portraits")
    yield simulator
    await simulator.stop()


def env_for(sim: Simulator, **extra: str) -> dict[str, str]:
    return cli_env(sim.base_url, sim.token, **extra)


async def finished(sim: Simulator, training_id: str) -> None:
    while sim.training(training_id)["status"] != "succeeded":
        await asyncio.sleep(0.02)


async def seed_finished(sim: Simulator, count: int = 2) -> list[dict]:
    return [sim.add_finished_training(FLUX, "demo-user/portraits", {"input_images": "https://example.invalid/i.zip",
                                                                    "steps": 20 + i}, ended_ago=3600 + i)
            for i in range(count)]


# ----- config --------------------------------------------------------------------------------

async def test_config_shows_paths_and_masks_the_token(sim: Simulator, isolated_home: Path) -> None:
    result = await run("config", env=env_for(sim))
    assert result.code == 0
    assert str(isolated_home) in result.out and "REPLITRACK_HOME" in result.out
    assert sim.token not in result.out, "the token must never be printed whole"
    assert f"r8_…{sim.token[-4:]}" in result.out
    assert sim.base_url in result.out

    data = (await run("config", "--json", env=env_for(sim))).json()
    assert data["home"] == str(isolated_home)
    assert data["logs_dir"] == str(isolated_home / "logs")
    assert data["api_token"] == f"r8_…{sim.token[-4:]}" and data["api_token_source"] == "REPLICATE_API_TOKEN"
    assert data["base_url"] == sim.base_url and data["base_url_source"] == "REPLICATE_BASE_URL"
    assert data["owner"] is None


async def test_config_without_token_says_how_to_set_one() -> None:
    result = await run("config", "--json")
    assert result.json()["api_token"] is None
    assert "export REPLICATE_API_TOKEN" in (await run("config")).out


# ----- import, list, status --------------------------------------------------------------------

async def test_import_then_list_and_status(sim: Simulator) -> None:
    seeded = await seed_finished(sim, 3)
    failed = sim.add_finished_training(FLUX, "demo-user/portraits", {"input_images": "https://example.invalid/i.zip"},
                                       script="flux-fail-load", ended_ago=60)
    env = env_for(sim)

    imported = await run("import", "--json", env=env)
    assert imported.code == 0, imported.err
    assert imported.json() == {"imported": 4, "pages": 1, "stored": 4, "details": 4}

    listing = (await run("list", "--json", env=env)).json()
    newest_first = sorted([failed, *seeded], key=lambda t: t["created_at"], reverse=True)
    assert [view["id"] for view in listing] == [t["id"] for t in newest_first]
    for view in listing:
        assert list(view) == list(STATUS_KEYS)
    assert {v["status"] for v in listing} == {"succeeded", "failed"}

    human = await run("list", env=env)
    lines = human.out.splitlines()
    assert lines[0].split() == ["ID", "MODEL", "TRAINER", "STATUS", "PROGRESS", "STAGE", "ETA", "CREATED"]
    assert len(lines) == 5 and "\x1b[" not in human.out, "piped output is plain"
    status_column = lines[0].index("STATUS")
    assert all(line[status_column:].split()[0] in ("succeeded", "failed") for line in lines[1:]), "columns aligned"

    status = await run("status", failed["id"], "--json", env=env)
    view = status.json()
    assert list(view) == list(STATUS_KEYS)
    assert view["id"] == failed["id"] and view["status"] == "failed" and view["terminal"] is True
    assert "config.json" in view["error"]
    by_destination = (await run("status", "demo-user/portraits", "--json", env=env)).json()
    # the API does not echo a destination: it is known from the output of the succeeded ones
    assert by_destination["id"] == max(seeded, key=lambda t: t["created_at"])["id"], "its latest training"

    text = (await run("status", seeded[0]["id"], env=env)).out
    assert "succeeded" in text and seeded[0]["output"]["version"] in text

    assert (await run("list", "--active", "--json", env=env)).json() == []


async def test_import_pages_through_everything(sim: Simulator) -> None:
    await seed_finished(sim, 130)
    result = await run("import", "--no-details", env=env_for(sim))
    assert result.code == 0, result.err
    assert "Imported 130 training(s) in 2 page(s)" in result.out
    assert "page 1: 100" in result.err and "page 2: 130" in result.err, "progress is shown on stderr"


async def test_list_fetches_unfinished_trainings_first(sim: Simulator) -> None:
    hold = sim.hold(at="end")  # it runs, but does not finish until released
    created = await sim.create_training(FLUX, "demo-user/portraits",
                                        {"input_images": "https://example.invalid/i.zip", "steps": 5})
    env = env_for(sim)
    assert (await run("status", created["id"], env=env)).code == 0  # stored while it runs
    hold.release()
    await asyncio.wait_for(finished(sim, created["id"]), 30)
    stale = (await run("list", "--no-refresh", "--json", env=env)).json()
    assert stale[0]["status"] in ("starting", "processing")
    fresh = (await run("list", "--json", env=env)).json()
    assert fresh[0]["status"] == "succeeded" and fresh[0]["overall_percent"] == 100


async def test_empty_store() -> None:
    assert (await run("list", "--json")).json() == []
    result = await run("list")
    assert result.code == 0 and "replitrack import" in result.err


# ----- errors: message on stderr, non-zero exit, no traceback ------------------------------------

async def test_unknown_id_names_the_fix(sim: Simulator) -> None:
    result = await run("status", "zz4ibbonubfz7carwiefibzgga", env=env_for(sim))
    assert result.code == 1 and result.out == ""
    assert "404: training zz4ibbonubfz7carwiefibzgga not found on Replicate: check the id" in result.err
    result = await run("status", "someone/some-model", env=env_for(sim))
    assert result.code == 1
    assert "no training 'someone/some-model' in the local store" in result.err and "replitrack import" in result.err


async def test_status_fetches_a_training_the_store_does_not_have(sim: Simulator) -> None:
    sim.hold(at="end")
    created = await sim.create_training(FLUX, "demo-user/portraits", {"input_images": "https://example.invalid/i.zip"})
    view = (await run("status", created["id"], "--json", env=env_for(sim))).json()
    assert view["id"] == created["id"] and view["status"] in ("starting", "processing")
    assert (await run("list", "--json", env=env_for(sim))).json()[0]["id"] == created["id"], "and keeps it"


async def test_no_token() -> None:
    result = await run("import")
    assert result.code == 1
    assert "no Replicate API token: set REPLICATE_API_TOKEN" in result.err


async def test_bad_token(sim: Simulator) -> None:
    result = await run("import", env=env_for(sim, REPLICATE_API_TOKEN="r8_wrong0000000000000000000000000000000"))
    assert result.code == 1 and "401 Unauthenticated" in result.err


async def test_rate_limited_says_how_long_to_wait(sim: Simulator) -> None:
    sim.faults.throttle_next = 10
    sim.faults.throttle_reset = 90  # longer than the client sleeps through: handed to the user
    result = await run("import", env=env_for(sim))
    assert result.code == 1
    assert "429 rate limited by Replicate" in result.err and "try again in 90 s" in result.err


async def test_offline_names_the_address(sim: Simulator) -> None:
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    result = await run("import", env=cli_env(closed, sim.token))
    assert result.code == 1
    assert "cannot reach http://127.0.0.1:9" in result.err and "check your connection" in result.err


@pytest.mark.parametrize("args", [["status"], ["logs", "x", "--tail", "many"], ["watch"], ["bogus-flag", "--x"]])
async def test_usage_errors_exit_64_not_2(args: list[str]) -> None:
    # 2 means "canceled" for logs --follow and watch, so a usage error must not look like it
    result = await run(*args)
    assert result.code == 64  # an unknown command too
    assert "usage:" in result.err


async def test_bad_values_exit_64() -> None:
    result = await run("logs", "abc", "--tail", "-1")
    assert result.code == 64 and "--tail -1" in result.err
    result = await run("train", "not-a-trainer", "--destination", "me/x")
    assert result.code == 64 and "owner/name" in result.err


async def test_no_colour_when_piped_and_never_with_no_color(sim: Simulator) -> None:
    await seed_finished(sim, 1)
    await run("import", env=env_for(sim))
    for env in (env_for(sim), env_for(sim, NO_COLOR="1")):
        assert "\x1b" not in (await run("list", env=env)).out

