"""A flux training followed from creation to success on the simulator, through replitrack's own
client, update function, store and parser: the path every front end relies on."""

from __future__ import annotations

import asyncio

from core.client import ReplicateClient
from core.logparse import Stage
from core.progress import ProgressTracker
from core.models import Status, utcnow
from core.service import TrainingService
from core.store import Store


async def test_follow_a_flux_training_to_success(simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.speed = 150
    simulator.add_model("demo-user/my-lora")
    store = Store()
    async with ReplicateClient(simulator.token, simulator.base_url) as client:
        service = TrainingService(store, client)
        created = await service.start("ostris/flux-dev-lora-trainer", "demo-user/my-lora",
                                      {"input_images": "https://example.invalid/photos.zip", "steps": 300})
        tid = created.training_id
        assert created.record["status"] == "starting" and created.record["overall_percent"] <= 5

        seen: list[tuple[str, float]] = []
        for _ in range(2000):
            result = await service.refresh(tid)
            seen.append((result.progress.stage, result.progress.overall_percent))
            if Status.parse(result.record["status"]).terminal:
                break
            await asyncio.sleep(0.02)

    record = store.get(tid)
    assert record["status"] == "succeeded", record.get("error")
    assert record["overall_percent"] == 100
    assert record["output_version"].startswith("demo-user/my-lora:") and len(record["output_version"].split(":")[1]) == 64
    assert record["output_weights"].startswith("https://")
    assert record["destination"] == "demo-user/my-lora"

    percents = [p for _, p in seen]
    assert percents == sorted(percents), "overall progress went backwards"
    stages = [s for s, _ in seen]
    assert Stage.TRAINING in stages and stages[-1] == Stage.SUCCEEDED
    orders = [Stage(s).order for s in stages]
    assert orders == sorted(orders), "stages went backwards"
    assert any(10 < p < 95 for p in percents), "never saw training progress between polls"

    # The stored log, fed line by line as polls would, passes through every stage of a flux run
    # (autocaption is on by default, so captioning too).
    tracker = ProgressTracker()
    log = store.read_log(tid)
    passed: list[Stage] = []
    position = 0
    while (end := log.find("\n", position)) != -1:
        position = end + 1
        stage = tracker.update(log[:position], Status.PROCESSING, now=utcnow(),
                               started_at=None, created_at=None).stage
        if not passed or passed[-1] != stage:
            passed.append(stage)
    assert passed == [Stage.DOWNLOADING, Stage.PREPARING, Stage.CAPTIONING, Stage.LOADING, Stage.CACHING,
                      Stage.TRAINING, Stage.SAVING]
    assert tracker.state.total_steps == 300 and len(tracker.state.losses) == 300
    store.close()

