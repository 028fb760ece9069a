"""Replicate's official Python client (replicate 1.0.x) against the simulator: it cannot tell."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.pagination import async_paginate

from simulator import TRAINERS, Simulator

FLUX = "ostris/flux-dev-lora-trainer"
FLUX_VERSION = TRAINERS[FLUX].version
DEST = "demo-user/faces"
QUICK_FLUX = {"input_images": "https://files.example.test/faces.zip", "steps": 20, "autocaption": False, "resolution": "512"}


def official(sim: Simulator, token: str | None = None) -> replicate.Client:
    return replicate.Client(api_token=token or sim.token, base_url=sim.base_url)


async def settle(client: replicate.Client, training_id: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        training = await client.trainings.async_get(training_id)
        if training.status in ("succeeded", "failed", "canceled"):
            return training
        assert time.monotonic() < deadline, f"still {training.status}"
        await asyncio.sleep(0.02)


async def test_create_get_and_follow_to_success(simulator: Simulator) -> None:
    simulator.speed = 2000
    client = official(simulator)
    await client.models.async_create(owner="demo-user", name="faces", visibility="private", hardware="gpu-t4")
    training = await client.trainings.async_create(model=FLUX, version=FLUX_VERSION, input=QUICK_FLUX, destination=DEST)
    assert training.status == "starting" and training.model == FLUX and training.version == FLUX_VERSION
    assert training.input == QUICK_FLUX and training.logs == ""

    done = await settle(client, training.id)
    assert done.status == "succeeded"
    assert done.destination == DEST  # the client derives it from output.version
    assert done.output["version"].startswith(f"{DEST}:") and done.completed_at and done.started_at
    assert "| 19/20 [" in done.logs and "Saved to output/flux_train_replicate/optimizer.pt" in done.logs  # ai-toolkit ends at steps − 1

    model = await client.models.async_get(DEST)
    assert model.latest_version is not None and model.latest_version.id == done.output["version"].split(":")[1]
    await training.async_reload()
    assert training.status == "succeeded"


async def test_cancel_through_the_client(simulator: Simulator) -> None:
    simulator.speed = 500
    simulator.add_model(DEST)
    client = official(simulator)
    training = await client.trainings.async_create(model=FLUX, version=FLUX_VERSION, input={**QUICK_FLUX, "steps": 3000}, destination=DEST)
    while (await client.trainings.async_get(training.id)).status != "processing":
        await asyncio.sleep(0.01)
    await training.async_cancel()
    assert training.status == "canceled" and training.completed_at
    assert (await client.trainings.async_get(training.id)).status == "canceled"


async def test_listing_paginates_past_one_hundred(simulator: Simulator) -> None:
    simulator.add_model(DEST)
    simulator.faults.stuck_next = 105  # created, never run: keeps the test cheap
    ids = [(await simulator.create_training(FLUX, DEST, QUICK_FLUX))["id"] for _ in range(105)]
    client = official(simulator)
    pages = [page async for page in async_paginate(client.trainings.async_list)]
    assert [len(page) for page in pages] == [100, 5]
    assert [t.id for page in pages for t in page] == ids[::-1]
    assert all(t.logs is None for page in pages for t in page)  # list items carry no logs
    previous = await client.trainings.async_list(pages[1].previous)
    assert [t.id for t in previous] == [t.id for t in pages[0]]


async def test_the_synchronous_client_from_a_thread(simulator: Simulator, tmp_path: Path) -> None:
    simulator.speed = 2000
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("one.jpg", "two.jpg", "three.png", "four.png"):
            bundle.writestr(name, b"fake image")

    def flow() -> tuple[Any, ...]:
        client = official(simulator)
        account = client.accounts.current()
        trainer = client.models.get(FLUX)
        version = trainer.versions.get(FLUX_VERSION)
        client.models.create(owner="demo-user", name="faces", visibility="private", hardware="gpu-t4")
        with archive.open("rb") as handle:  # the client uploads it through POST /v1/files
            training = client.trainings.create(
                version=f"{FLUX}:{FLUX_VERSION}", input={**QUICK_FLUX, "input_images": handle}, destination=DEST
            )
        secret = client.webhooks.default.secret()
        return account, trainer, version, training, secret, client.trainings.get(training.id)

    account, trainer, version, training, secret, fetched = await asyncio.to_thread(flow)
    assert account.username == "demo-user" and account.type == "user"
    assert trainer.latest_version.id == FLUX_VERSION
    assert "steps" in version.openapi_schema["components"]["schemas"]["TrainingInput"]["properties"]
    assert training.input["input_images"].startswith(f"{simulator.base_url}/v1/files/")
    assert fetched.id == training.id and secret.key == simulator.webhook_secret
    done = await settle(official(simulator), training.id)
    assert "Extracted 4 files from zip to input_images" in done.logs
    assert "1024x1024" not in done.logs and "512x512: 4 files" in done.logs


async def test_errors_reach_the_client_as_problem_details(simulator: Simulator) -> None:
    client = official(simulator)
    with pytest.raises(ReplicateError) as missing:
        await client.trainings.async_create(model=FLUX, version=FLUX_VERSION, input=QUICK_FLUX, destination="demo-user/nowhere")
    assert missing.value.status == 404
    assert missing.value.detail == "The specified training destination does not exist"

    simulator.add_model(DEST)
    with pytest.raises(ReplicateError) as invalid:
        await client.trainings.async_create(model=FLUX, version=FLUX_VERSION, input={"steps": 1}, destination=DEST)
    assert invalid.value.status == 422 and "input_images is required" in invalid.value.detail

    with pytest.raises(ReplicateError) as unauthenticated:
        await official(simulator, token="r8_not_the_right_one").accounts.async_current()
    assert unauthenticated.value.status == 401 and unauthenticated.value.title == "Unauthenticated"

    with pytest.raises(ReplicateError) as unknown:
        await client.trainings.async_get("aaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert unknown.value.status == 404


async def test_the_client_retries_throttled_and_unavailable_gets(simulator: Simulator) -> None:
    simulator.add_model(DEST)
    created = await simulator.create_training(FLUX, DEST, QUICK_FLUX)
    client = official(simulator)

    simulator.faults.throttle_next = 2
    simulator.faults.throttle_reset = 0  # Retry-After: 0, so the client retries at once
    before = simulator.requests
    assert (await client.trainings.async_get(created["id"])).id == created["id"]
    assert simulator.requests - before == 3

    simulator.faults.error_next, simulator.faults.error_status = 1, 503
    assert (await client.trainings.async_get(created["id"])).id == created["id"]

    # 500 is not in the client's retry list, and it never retries a POST: a create is not repeated
    simulator.faults.error_next, simulator.faults.error_status = 1, 500
    with pytest.raises(ReplicateError) as failed:
        await client.trainings.async_get(created["id"])
    assert failed.value.status == 500
    simulator.faults.throttle_next = 1
    with pytest.raises(ReplicateError) as throttled:
        await client.trainings.async_create(model=FLUX, version=FLUX_VERSION, input=QUICK_FLUX, destination=DEST)
    assert throttled.value.status == 429 and "throttled" in throttled.value.detail
    assert len(simulator.trainings()) == 1


async def test_file_uploads_round_trip(simulator: Simulator) -> None:
    buffer = io.BytesIO(b'{"prompt": "a", "completion": "b"}\n' * 3)
    buffer.name = "rows.jsonl"
    client = official(simulator)
    uploaded = await client.files.async_create(buffer, metadata={"kind": "train"})
    assert uploaded.size == len(buffer.getvalue()) and uploaded.name == "rows.jsonl"
    assert uploaded.metadata == {"kind": "train"} and len(uploaded.checksums["sha256"]) == 64
    assert (await client.files.async_get(uploaded.id)).urls["get"] == uploaded.urls["get"]
