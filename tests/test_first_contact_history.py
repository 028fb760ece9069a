"""Imported history is complete and sync finds what the store never saw: an import brings each
finished training's log, error and final progress (in the background in the app, most recent
first, resumable; at once when one is opened), and `sync`/`sync-completed` fetch an id or a
destination the store does not have. Real simulator, real store, real listener and CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cli_helpers import cli_env, run
from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store, read_owner
from listener.service import Listener
from listener.tunnel import TunnelConfig
from simulator import Simulator
from tui.cli.runtime import free_port

FLUX = "ostris/flux-dev-lora-trainer"
DEST = "demo-user/portraits"
IMAGES = {"input_images": "https://example.invalid/i.zip"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=500.0, seed=21)
    await simulator.start()
    simulator.add_model(DEST)
    yield simulator
    await simulator.stop()


def seed(sim: Simulator) -> tuple[dict, dict]:
    """A succeeded training and, more recent, one that failed while loading the model."""
    ok = sim.add_finished_training(FLUX, DEST, {**IMAGES, "steps": 20}, ended_ago=7200)
    failed = sim.add_finished_training(FLUX, DEST, {**IMAGES, "steps": 20}, script="flux-fail-load", ended_ago=60)
    return ok, failed


async def test_import_brings_each_finished_training_in_full(sim: Simulator) -> None:
    ok, failed = seed(sim)
    env = cli_env(sim.base_url, sim.token)
    imported = await run("import", "--json", env=env)
    assert imported.code == 0, imported.err
    assert imported.json() == {"imported": 2, "pages": 1, "stored": 2, "details": 2}

    view = (await run("status", failed["id"], "--json", env=env)).json()
    assert view["status"] == "failed" and view["stage"] == "failed"
    assert view["overall_percent"] > 0, "how far it got, from its log"
    assert "config.json" in view["error"]
    logs = await run("logs", failed["id"], env=env)
    assert logs.code == 0 and logs.out == failed["logs"], "the whole log, as Replicate has it"
    done = (await run("status", ok["id"], "--json", env=env)).json()
    assert done["overall_percent"] == 100 and done["total_steps"] == 20


async def test_opening_a_bare_import_fetches_it_at_once(sim: Simulator) -> None:
    _, failed = seed(sim)
    env = cli_env(sim.base_url, sim.token)
    assert (await run("import", "--no-details", "--json", env=env)).json()["details"] == 0
    with Store(readonly=True) as store:
        assert store.log_length(failed["id"]) == 0, "the list carries no logs"
    logs = await run("logs", failed["id"], env=env)
    assert logs.code == 0 and "Traceback" in logs.out and logs.out == failed["logs"]
    view = (await run("status", failed["id"], "--json", env=env)).json()
    assert view["stage"] == "failed" and view["overall_percent"] > 0


async def test_details_most_recent_first_resumable_and_patient_with_429(sim: Simulator) -> None:
    made = [sim.add_finished_training(FLUX, DEST, {**IMAGES, "steps": 10 + i}, ended_ago=3600 - i * 60)
            for i in range(4)]
    newest_first = [t["id"] for t in sorted(made, key=lambda t: t["created_at"], reverse=True)]
    async with ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0) as client:
        with Store() as store:
            service = TrainingService(store, client)
            await service.import_all()
            assert service.missing_details() == newest_first
            await service.fetch_details(newest_first[:1], per_second=0)
            store.flush()
        with Store() as store:  # a later run (a restart) goes on where the first stopped
            service = TrainingService(store, client)
            assert service.missing_details() == newest_first[1:]
            sim.faults.throttle_next = 1
            sim.faults.throttle_reset = 1
            assert await service.fetch_details(per_second=50) == 3, "a 429 is waited out, not an end"
            assert service.missing_details() == []
            assert all(store.log_length(tid) > 0 for tid in newest_first)


async def test_the_app_fetches_imported_details_in_the_background(sim: Simulator) -> None:
    from tui.app import create_app
    from tui_support import SIZE, wait_for

    ok, failed = seed(sim)
    async with ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0) as client:
        with Store() as store:
            service = TrainingService(store, client)
            app = create_app(service, mode="live", import_on_start=True, poll=True)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, lambda: store.get(failed["id"]) is not None, timeout=10, what="the import")
                await wait_for(pilot, lambda: store.log_length(ok["id"]) > 0 and store.log_length(failed["id"]) > 0,
                               timeout=10, what="both logs, without opening either")
                await wait_for(pilot, lambda: (app.records[failed["id"]].get("overall_percent") or 0) > 0,
                               what="the failed one's progress in the list")
                assert app.records[failed["id"]]["stage"] == "failed"


async def test_sync_completed_fetches_what_the_store_never_saw(sim: Simulator) -> None:
    ok, failed = seed(sim)
    async with ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0) as client:
        with Store() as store:
            service = TrainingService(store, client)
            listener = Listener(service, secret=sim.webhook_secret, public_port=free_port(), tunnel=TunnelConfig.off())
            await listener.start()
            try:
                owner = read_owner(store.home) or {}  # changing routes want the instance's token, as the CLI sends it
                async with httpx.AsyncClient(base_url=listener.local_url,
                                             headers={"Authorization": f"Bearer {owner['secret']}"}) as http:
                    answer = await http.post("/api/replicate/sync-completed", json={"modelId": failed["id"]})
                    assert answer.status_code == 200, answer.text
                    body = answer.json()
                    assert body["id"] == failed["id"] and body["outcome"] == "created"
                    assert body["status"]["status"] == "failed" and body["status"]["overall_percent"] > 0
                    assert store.read_log(failed["id"]) == failed["logs"], "stored with its log"

                    # A destination the store does not know: its latest training on Replicate.
                    by_name = await http.post("/api/replicate/sync-completed",
                                              json={"modelId": DEST, "replicateModelVersion": ok["output"]["version"]})
                    assert by_name.status_code == 200, by_name.text
                    assert by_name.json()["id"] == ok["id"] and store.get(ok["id"])["overall_percent"] == 100

                    wrong = await http.post("/api/replicate/sync-completed",
                                            json={"modelId": ok["id"], "replicateModelVersion": f"{DEST}:{'0' * 64}"})
                    assert wrong.status_code == 409 and ok["output"]["version"] in wrong.json()["detail"]

                    gone = await http.post("/api/replicate/sync-completed", json={"modelId": "a" * 26})
                    assert gone.status_code == 404 and "on Replicate" in gone.json()["detail"]
                    nobody = await http.post("/api/replicate/sync-completed", json={"modelId": "someone/else"})
                    assert nobody.status_code == 404 and "someone/else" in nobody.json()["detail"]
            finally:
                await listener.stop()


async def test_cli_sync_of_an_unknown_destination_finds_and_stores_it(sim: Simulator) -> None:
    ok, _ = seed(sim)
    env = cli_env(sim.base_url, sim.token)
    result = await run("sync", DEST, "--version", ok["output"]["version"], "--json", env=env)
    assert result.code == 0, result.err
    synced = result.json()["synced"][0]
    assert synced["id"] == ok["id"] and synced["outcome"] == "created"
    assert synced["training"]["overall_percent"] == 100
    logs = await run("logs", ok["id"], env=env)
    assert logs.out == ok["logs"]


async def test_train_checks_local_images_before_creating_the_destination(sim: Simulator, tmp_path) -> None:
    env = cli_env(sim.base_url, sim.token)
    empty = tmp_path / "empty"
    empty.mkdir()
    for images in (str(tmp_path / "missing"), str(empty)):
        result = await run("train", FLUX, "-d", "demo-user/brand-new", "--images", images, "--create-destination",
                           env=env)
        assert result.code == 64, result.err
        assert images in result.err
        with pytest.raises(Exception, match="no model"):
            sim.model("demo-user/brand-new")  # the destination was not created first
    assert sim.trainings() == []
