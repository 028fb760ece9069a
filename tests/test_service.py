"""TrainingService against the simulator: import, differences, sync, retry, adaptive polling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.client import ReplicateClient
from core.errors import RateLimitError, ReplitrackError
from core.models import utcnow
from core.service import POLL_RUNNING, POLL_WITH_WEBHOOKS, TrainingService, UnknownTrainingError
from core.store import Store

FLUX = "ostris/flux-dev-lora-trainer"
DEST = "demo-user/my-lora"
INPUT = {"input_images": "https://example.invalid/photos.zip", "steps": 40}


@pytest.fixture
async def service(simulator):  # type: ignore[no-untyped-def]
    simulator.add_model(DEST)
    store = Store()
    async with ReplicateClient(simulator.token, simulator.base_url, max_retries=1,
                               sleep=lambda _: asyncio.sleep(0)) as client:
        yield TrainingService(store, client)
    store.close()


async def test_import_reads_every_page_and_reports_progress(simulator, service) -> None:  # type: ignore[no-untyped-def]
    for _ in range(130):
        simulator.add_finished_training(FLUX, DEST, INPUT)
    pages: list[tuple[int, int]] = []
    assert await service.import_all(lambda done, count: pages.append((done, count))) == 130
    assert pages == [(1, 100), (2, 130)]
    assert len(service.store) == 130 and all(r["status"] == "succeeded" for r in service.store.trainings())
    assert await service.differences() == []


async def test_differences_name_what_sync_would_change(simulator, service) -> None:  # type: ignore[no-untyped-def]
    running = await simulator.create_training(FLUX, DEST, INPUT)
    await service.refresh(running["id"])
    never = simulator.add_finished_training(FLUX, DEST, INPUT)
    simulator.cancel_training(running["id"])  # ended on Replicate; no webhook told us
    items = {item.training_id: item for item in await service.differences()}
    assert items[never["id"]].reason == "never imported" and items[never["id"]].local_status is None
    assert items[running["id"]].remote_status == "canceled"
    assert items[running["id"]].local_status in ("starting", "processing")

    results = await service.sync(list(items))
    assert {r.training_id: r.record["status"] for r in results} == {never["id"]: "succeeded",
                                                                   running["id"]: "canceled"}
    assert await service.differences() == []


async def test_sync_completed_checks_the_version(simulator, service) -> None:  # type: ignore[no-untyped-def]
    done = simulator.add_finished_training(FLUX, DEST, INPUT)
    await service.import_all()
    version = done["output"]["version"]
    result = await service.sync_completed(DEST, version)  # a destination names its latest training
    assert result.record["output_version"] == version
    with pytest.raises(ReplitrackError, match="not demo-user/my-lora:0000"):
        await service.sync_completed(done["id"], "demo-user/my-lora:" + "0" * 64)
    with pytest.raises(UnknownTrainingError, match="no training of 'someone/else' on Replicate"):
        await service.sync_completed("someone/else")  # not here, and not on the account either


async def test_retry_starts_the_same_training_again(simulator, service) -> None:  # type: ignore[no-untyped-def]
    first = await service.start(FLUX, DEST, INPUT)
    await service.cancel(first.training_id)
    again = await service.retry(first.training_id)
    assert again.training_id != first.training_id
    remote = simulator.training(again.training_id)
    assert remote["input"] == simulator.training(first.training_id)["input"] and remote["model"] == FLUX
    assert service.store.get(again.training_id)["destination"] == DEST


async def test_retry_refuses_what_it_cannot_repeat(simulator, service) -> None:  # type: ignore[no-untyped-def]
    elsewhere = await simulator.create_training(FLUX, DEST, INPUT)  # started elsewhere: no destination known
    await service.refresh(elsewhere["id"])
    with pytest.raises(ReplitrackError, match="destination model is unknown"):
        await service.retry(elsewhere["id"])
    with pytest.raises(UnknownTrainingError):
        await service.retry("nosuchtraining")


async def test_poll_interval_adapts_to_webhooks(simulator, service) -> None:  # type: ignore[no-untyped-def]
    started = await service.start(FLUX, DEST, INPUT)
    record, now = started.record, utcnow()
    assert service.poll_interval(record, now) == POLL_RUNNING
    service.updater.last_webhook[record["id"]] = now - timedelta(seconds=10)
    assert service.poll_interval(record, now) == POLL_WITH_WEBHOOKS
    service.updater.last_webhook[record["id"]] = now - timedelta(minutes=5)  # webhooks stopped
    assert service.poll_interval(record, now) == POLL_RUNNING
    assert service.poll_interval(dict(record, status="succeeded"), now) is None


async def test_the_poller_follows_a_training_and_survives_a_429(simulator, service) -> None:  # type: ignore[no-untyped-def]
    simulator.speed = 400
    service.poll_running = 0.1
    started = await service.start(FLUX, DEST, INPUT)
    await asyncio.sleep(0)
    simulator.faults.throttle_next = 3  # the next requests are throttled (retries included)
    simulator.faults.throttle_reset = 1
    errors: list[ReplitrackError] = []
    poller = asyncio.create_task(service.poll_forever(errors.append))
    try:
        for _ in range(400):
            await asyncio.sleep(0.05)
            if service.store.get(started.training_id)["status"] == "succeeded":
                break
    finally:
        poller.cancel()
    assert service.store.get(started.training_id)["status"] == "succeeded"
    assert any(isinstance(e, RateLimitError) for e in errors), "the 429 was reported, not hidden"


async def test_polling_backs_off_while_queued_and_while_nothing_changes(simulator, service) -> None:  # type: ignore[no-untyped-def]
    from core.service import POLL_IDLE_MAX, POLL_QUEUED_MAX

    started = await service.start(FLUX, DEST, INPUT)
    queued, now = dict(started.record, status="starting"), utcnow()
    running = dict(queued, id="othertraining0000000000000", status="processing")

    def intervals(record: dict, polls: int) -> list[float | None]:  # type: ignore[type-arg]
        """The interval after 0, 1, ... polls in a row that brought nothing new."""
        found = []
        for quiet in range(polls):
            service._quiet[record["id"]] = quiet
            found.append(service.poll_interval(record, now))
        return found

    # Polling only: every 5 s, doubling while polls bring nothing new, up to a minute.
    assert intervals(running, 7) == [
        5, 10, 20, 40, POLL_IDLE_MAX, POLL_IDLE_MAX, POLL_IDLE_MAX]
    # Webhooks flow (for another training): a queued one waits for its `start` webhook, polled
    # from once a minute backing off to once in five; never more than 60 calls an hour.
    service.updater.last_webhook["somethingelse000000000000"] = now - timedelta(seconds=5)
    assert intervals(queued, 5) == [
        POLL_WITH_WEBHOOKS, 120, 240, POLL_QUEUED_MAX, POLL_QUEUED_MAX]
    # A running training without webhooks of its own (started elsewhere) is still polled.
    service._quiet[running["id"]] = 0
    assert service.poll_interval(running, now) == POLL_RUNNING
