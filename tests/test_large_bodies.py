"""Large bodies (every `logs` webhook and poll carries the whole log) through the real listener and
the real poller: a 64 MiB webhook is accepted, only the new part of a log reaches the store, the
parser and the screen's log, in order; forgeries and duplicates are still refused; a worker that
dies costs one 503, not the listener. How long the event loop waits meanwhile is measured by
bench/tui.py and bench/webhooks.py, not here."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from core.bodies import LARGE_BODY, PIECE_CHARS
from core.models import Status
from core.progress import ProgressTracker
from core.updates import UpdateResult
from test_listener_helpers import OTHER_SECRET, TID, post, running_listener, signed, training
from test_listener_receiver import hook_url

# The flux trainer's bar, as ostris/ai-toolkit prints it through tqdm (the form tests/test_logparse.py
# takes from its source); a non-ASCII bar, so characters and bytes differ.
LINE = "flux_train_replicate: {p:3d}%|███       | {s}/{t} [02:10<04:50,  2.38it/s, lr: 4.0e-04 loss: {l:.4e}]\n"
MIB = 1024 * 1024


def flux_log(first: int, last: int, total: int) -> str:
    return "".join(LINE.format(p=s * 100 // total, s=s, t=total, l=1 / s) for s in range(first, last + 1))


def fresh_parse(log: str) -> tuple[int | None, int | None, float | None]:
    from datetime import datetime, timezone

    tracker = ProgressTracker(configured_steps=None)
    tracker.update(log, Status.PROCESSING, now=datetime.now(timezone.utc), started_at=None, created_at=None)
    state = tracker.state
    return state.step, state.total_steps, state.loss


async def test_a_64_mib_logs_webhook_is_accepted_and_only_new_log_is_applied(isolated_home: Path) -> None:
    total = 600_000
    steps = 540_000  # just under 64 MiB of JSON (the bar's █ is escaped as \u2588)
    log = "Starting train job\n" + flux_log(1, steps, total)
    body, headers = signed(training("processing", log), "msg_64mib")
    assert 60 * MIB < len(body) <= 64 * MIB
    async with running_listener() as listener:
        results: list[UpdateResult] = []
        listener.service.updater.subscribe(results.append)
        status, data, _ = await post(hook_url(listener), body, headers)
        assert status == 200 and data["outcome"] == "created" and data["event"] == "logs", data
        store = listener.service.store
        assert store.read_log(TID) == log
        # The log arrived in pieces, each applied (and told) in order: together, the log.
        assert len(results) >= len(log) // PIECE_CHARS
        assert "".join(r.new_log for r in results) == log
        tracker = listener.service.updater.tracker(TID)
        assert (tracker.state.step, tracker.state.total_steps, tracker.state.loss) == fresh_parse(log)

        # The next webhook carries the whole log again: only its new lines are applied.
        more = log + flux_log(steps + 1, steps + 3, total)
        results.clear()
        body, headers = signed(training("processing", more), "msg_64mib_2")
        assert len(body) >= LARGE_BODY
        status, data, _ = await post(hook_url(listener), body, headers)
        assert status == 200 and data["outcome"] == "updated", data
        assert [r.new_log for r in results] == [more[len(log):]]
        assert store.read_log(TID) == more and listener.service.updater.tracker(TID).state.step == steps + 3

        # A retry of it is a duplicate; a forgery of it is refused, as small bodies are.
        status, data, _ = await post(hook_url(listener), body, headers)
        assert status == 200 and data["outcome"] == "duplicate"
        forged, forged_headers = signed(training("processing", more + "x\n"), "msg_forged", secret=OTHER_SECRET)
        status, data, _ = await post(hook_url(listener), forged, forged_headers)
        assert status == 401 and data["title"] == "bad signature"
        assert store.read_log(TID) == more


async def test_a_large_body_that_ends_the_training_ends_it_once_with_its_whole_log(isolated_home: Path) -> None:
    log = "Starting train job\n" + flux_log(1, 20_000, 20_000) + "no newline at the end"
    final = training("succeeded", log, output={"version": "me/lora:" + "c" * 64, "weights": "https://w"},
                     completed_at="2024-09-10T06:10:00.000Z")
    body, headers = signed(final, "msg_final")
    assert len(body) >= 4 * PIECE_CHARS
    async with running_listener() as listener:
        results: list[UpdateResult] = []
        listener.service.updater.subscribe(results.append)
        status, data, _ = await post(hook_url(listener), body, headers)
        assert status == 200 and data["status"] == "succeeded", data
        assert [r.became_terminal for r in results].count(True) == 1 and results[-1].became_terminal
        assert all(r.record["status"] == "processing" for r in results[:-1])  # no ending before the end
        record = listener.service.store.get(TID)
        assert record["output_version"] == "me/lora:" + "c" * 64 and record["overall_percent"] == 100
        assert listener.service.store.read_log(TID) == log
        assert listener.service.updater.tracker(TID).state.step == 20_000


async def test_a_dead_decoding_process_costs_one_503_and_the_next_body_gets_a_new_one(isolated_home: Path) -> None:
    log = "Starting train job\n" + flux_log(1, 3_000, 3_000)
    async with running_listener() as listener:
        bodies = listener.service.bodies
        await bodies.warm_up()
        (pid,) = bodies._executor()._processes  # the worker's process id
        os.kill(pid, signal.SIGKILL)
        while True:  # until the kernel has reaped it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            await asyncio.sleep(0.01)
        body, headers = signed(training("processing", log), "msg_after_kill")
        status, data, _ = await post(hook_url(listener), body, headers)
        assert status == 503 and "died" in data["detail"] and "retries" in data["detail"], data
        assert listener.service.store.get(TID) is None  # nothing half-applied
        status, data, _ = await post(hook_url(listener), body, headers)  # Replicate's retry
        assert status == 200 and data["outcome"] == "created", data
        assert listener.service.store.read_log(TID) == log


async def test_the_poller_takes_a_large_body_in_pieces_too(simulator, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    from core.client import ReplicateClient
    from core.service import TrainingService
    from core.store import Store

    simulator.speed = 0.001  # the script stands still: the log is what the test puts there
    simulator.add_model("me/lora")
    created = await simulator.create_training("ostris/flux-dev-lora-trainer", "me/lora",
                                              {"input_images": "https://example.invalid/photos.zip", "steps": 1000})
    record = simulator.record_or_404(created["id"])
    record.append(flux_log(1, 8_000, 8_000).splitlines())
    store = Store()
    async with ReplicateClient(simulator.token, simulator.base_url, max_retries=0) as client:
        service = TrainingService(store, client)
        results: list[UpdateResult] = []
        service.updater.subscribe(results.append)
        await service.poll(created["id"])
        remote = simulator.training(created["id"])["logs"]
        assert len(remote.encode()) >= LARGE_BODY
        assert store.read_log(created["id"]) == remote and len(results) > 2
        assert "".join(r.new_log for r in results) == remote
        assert service.updater.tracker(created["id"]).state.step == 8_000
        record.append(flux_log(8_001, 8_002, 8_000).splitlines())
        results.clear()
        await service.poll(created["id"])
        assert [r.new_log for r in results] == [simulator.training(created["id"])["logs"][len(remote):]]
        service.bodies.close()
    store.close()


async def test_live_trackers_are_bounded_by_memory_and_rebuilt_when_needed(isolated_home: Path,
                                                                           monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.updates
    from core.store import Store
    from core.updates import Updater

    store = Store()
    updater = Updater(store)
    logs = {f"bounded{n:02d}" + "x" * 16: "Starting train job\n" + flux_log(1, 2_000 + n, 5_000) for n in range(3)}
    for tid, log in logs.items():
        updater.apply(training("processing", log, tid=tid), source="webhook")
    one = updater.tracker_bytes // 3
    assert one > 2_000 * 16  # a point per step is counted
    monkeypatch.setattr(core.updates, "TRACKER_BYTES", int(one * 1.5))
    last = list(logs)[-1]
    updater.apply(training("processing", logs[last] + flux_log(2_003, 2_003, 5_000), tid=last), source="webhook")
    assert updater.tracker_bytes <= one * 1.5 and len(updater._trackers) == 1
    first = list(logs)[0]
    assert updater.tracker(first).state.step == 2_000  # rebuilt from its stored log
    store.close()


async def test_after_a_restart_the_tracker_is_rebuilt_a_piece_at_a_time_and_matches(isolated_home: Path) -> None:
    from core.store import Store
    from core.updates import Updater

    next_line = LINE.format(p=75, s=30_001, t=40_000, l=0.1)
    log = "Starting train job\n" + flux_log(1, 30_000, 40_000) + next_line[:30]  # a line being written
    with Store() as store:
        Updater(store).apply(training("processing", log), source="webhook")
        await store.commit()
    with Store() as store:  # a new process: no live tracker
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        counter = asyncio.create_task(count_turns())
        pieced = Updater(store)
        await pieced.prepare(TID)
        counter.cancel()
        assert turns >= len(log.encode()) // PIECE_CHARS  # the loop turned between pieces
        whole = Updater(store).tracker(TID)  # built in one go, as before
        assert pieced.tracker(TID).state == whole.state
        more = log + next_line[30:]
        pieced.apply(training("processing", more), source="webhook")
        assert pieced.tracker(TID).state.step == 30_001


async def test_a_chunked_body_over_the_limit_gets_413_and_leaves_no_spool_file(isolated_home: Path, tmp_path: Path,
                                                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    import core.bodies

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(core.bodies, "SPOOL_DIRS", (str(spool),))
    body, headers = signed(training("processing", "Starting train job\n" + flux_log(1, 20_000, 20_000)), "msg_chunked")
    assert len(body) > 2 * MIB

    async def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: sent chunked
        for at in range(0, len(body), 64 * 1024):
            yield body[at:at + 64 * 1024]

    async with running_listener(max_body=MIB) as listener:
        async with aiohttp.ClientSession() as session:
            async with session.post(hook_url(listener), data=chunks(), headers=headers) as answer:
                assert answer.status == 413, await answer.text()
        assert listener.service.store.trainings() == []
    assert list(spool.iterdir()) == []
    async with running_listener() as listener:  # within the limit, chunked is as good as whole
        async with aiohttp.ClientSession() as session:
            async with session.post(hook_url(listener), data=chunks(), headers=headers) as answer:
                assert answer.status == 200, await answer.text()
        assert listener.service.updater.tracker(TID).state.step == 20_000
    assert list(spool.iterdir()) == []
