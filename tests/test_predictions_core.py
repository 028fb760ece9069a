"""Predictions in core: a child of the training it tries, merged by the same Updater.apply as a
training (webhooks through the real listener, polls, the create answer), with the same rules."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.client import ReplicateClient
from core.predictions import PredictionError, Tryer, check_input, main_inputs, prompt_for
from core.service import TrainingService
from core.store import Store
from core.updates import UpdateResult
from listener.service import Listener
from listener.tunnel import TunnelConfig
from simulator import Simulator
from simulator.schemas import IMAGE_PREDICT_INPUT

FLUX = "ostris/flux-dev-lora-trainer"
DEST = "demo-user/faces"


async def stored_training(sim: Simulator, service: TrainingService) -> dict[str, Any]:
    sim.add_model(DEST)
    done = sim.add_finished_training(FLUX, DEST, {"input_images": "https://x.test/a.zip", "steps": 20,
                                                  "trigger_word": "SKS"}, ended_ago=10)
    await service.refresh(done["id"], source="sync")
    record = service.store.get(done["id"])
    assert record is not None and record["output_version"] == done["output"]["version"]
    return record


async def test_webhooks_through_the_listener_carry_a_try_to_its_end(isolated_home: Path) -> None:
    sim = Simulator(speed=300, seed=4)
    await sim.start()
    store = Store()
    client = ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0)
    service = TrainingService(store, client)
    listener = Listener(service, secret=sim.webhook_secret, tunnel=TunnelConfig.off())
    await listener.start()
    try:
        training = await stored_training(sim, service)
        heard: list[UpdateResult] = []
        service.updater.subscribe(heard.append)
        url = f"{listener.public_bind_url}/webhooks/replicate"
        # No polling within the test's time: only the webhooks can finish it.
        tryer = Tryer(store, client, service.updater.predictions, webhook_url=lambda: url, poll_seconds=60)
        schema = await tryer.schema(training)
        started = await tryer.start(training, check_input({"prompt": prompt_for(training), "seed": 1}, schema, "v"))
        final = await asyncio.wait_for(tryer.follow(started.prediction_id), 20)
        assert final["status"] == "succeeded" and tryer._polls == 0
        assert final["input"] == {"prompt": "a photo of SKS", "seed": 1}
        assert "Using seed: 1" in store.read_log(started.prediction_id)
        files = await tryer.download(started.prediction_id)
        assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert files[0].is_relative_to(isolated_home / "outputs" / training["id"])
        # Subscribers heard of the parent training, never of a "new training" or a new ending.
        assert heard and all(r.training_id == training["id"] and not r.became_terminal for r in heard)
        assert not any(r.new_log for r in heard)
        assert len(store.trainings()) == 1, "the prediction is not a training"
        delivered = [d for d in sim.predictions.deliveries if d.outcome == "delivered"]
        assert delivered and delivered[-1].event == "completed" and delivered[-1].status == 200
    finally:
        await listener.stop()
        await client.aclose()
        store.close()
        await sim.stop()


async def test_the_same_rules_as_for_trainings(isolated_home: Path) -> None:
    sim = Simulator(speed=500, seed=2)
    await sim.start()
    store = Store()
    client = ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0)
    service = TrainingService(store, client)
    try:
        training = await stored_training(sim, service)
        version = training["output_version"]
        created = await client.create_prediction_raw(version, {"prompt": "TOK", "seed": 2})
        record = sim.predictions._records[created["id"]]
        await record.done.wait()
        done = sim.predictions.get(created["id"])
        book = service.updater.predictions
        # The first news is a webhook (before the create answer came back): found by its version.
        first = service.updater.apply(done, source="webhook", webhook_id="msg_a")
        assert first.training_id == training["id"] and first.outcome == "updated"
        assert service.updater.apply(done, source="webhook", webhook_id="msg_a").outcome == "duplicate"
        stale = service.updater.apply(created, source="create")
        assert stale.outcome == "stale"
        [kept] = book.predictions(training["id"])
        assert kept["status"] == "succeeded" and kept["output"] == done["output"]
        assert book.apply({**done, "status": "failed"}, source="poll").outcome == "final"
        assert store.read_log(created["id"]) == done["logs"]
    finally:
        await client.aclose()
        store.close()
        await sim.stop()


def test_inputs_are_checked_like_the_model_would() -> None:
    schema = IMAGE_PREDICT_INPUT
    assert main_inputs(schema) == {"lora_scale": 1, "num_outputs": 1, "num_inference_steps": 28, "seed": None}
    assert check_input({"prompt": "a", "num_outputs": 2.0, "seed": None}, schema, "v") == {"prompt": "a", "num_outputs": 2}
    for given, message in [({"prompt": "a", "size": 3}, "has no input 'size'"),
                           ({"prompt": ""}, "the prompt is empty"),
                           ({"prompt": "a", "num_outputs": "two"}, "num_outputs must be a whole number"),
                           ({"prompt": "a", "lora_scale": 5}, "lora_scale must be at most 3")]:
        with pytest.raises(Exception, match=message):
            check_input(given, schema, "v")
    assert prompt_for({"input": {"trigger_word": "ZXQ"}}) == "a photo of ZXQ"
    assert prompt_for({"trainer": FLUX, "input": {}}) == "a photo of TOK"
    assert prompt_for({"trainer": "meta/llama-2-7b", "input": {}}) == ""


async def test_a_training_without_a_version_cannot_be_tried(isolated_home: Path) -> None:
    store = Store()
    client = ReplicateClient(token="r8_x", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client)
    try:
        with pytest.raises(PredictionError, match="has no trained version to try .it is failed."):
            await Tryer(store, client, service.updater.predictions).schema({"id": "t1", "status": "failed"})
    finally:
        await client.aclose()
        store.close()
