"""The event log on disk: bounded by count and by body bytes, reloaded after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.errors import StoreError
from listener.events import BODY_DIR, INDEX_FILE, THREAD_BODY, EventLog, EventRecord


def record(log: EventLog, **extra: object) -> EventRecord:
    return EventRecord(id=log.new_id(), received_at="2026-01-01T00:00:00Z", method="POST",
                       path="/webhooks/replicate", verdict="accepted", reason="created", http_status=200,
                       headers={"webhook-id": "msg"}, **extra)  # type: ignore[arg-type]


async def test_the_log_keeps_only_the_newest_events_and_their_bodies(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events", max_events=5)
    for i in range(12):
        await log.add(record(log), f"body {i}".encode())
    kept = log.latest(100)
    assert [r.id for r in kept] == [f"ev{i:08d}" for i in range(12, 7, -1)]
    assert [log.read_body(r.id) for r in kept] == [f"body {i}".encode() for i in range(11, 6, -1)]
    assert log.read_body("ev00000001") is None


async def test_the_log_is_bounded_by_body_bytes(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events", max_events=1000, max_body_bytes=10_000)
    for _ in range(10):
        await log.add(record(log), b"x" * 3_000)
    assert log.body_bytes <= 10_000 and len(log) == 10
    kept = [r for r in log.latest(100) if log.read_body(r.id) is not None]
    assert len(kept) == 3 and len(list((tmp_path / "events" / BODY_DIR).iterdir())) == 3
    big = await log.add(record(log), b"y" * 20_000)  # larger than the whole bound: kept without its body
    assert big.body_file is None and big.body_size == 20_000 and log.read_body(big.id) is None


async def test_a_large_body_is_written_beside_the_loop_while_small_ones_go_on(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events", max_events=1_000_000)  # however many come meanwhile, all kept
    large = bytes(range(256)) * (3 * THREAD_BODY // 256)  # a few MB: written in a thread
    writing = asyncio.create_task(log.add(record(log, training_id="big"), large))
    small = []
    while not writing.done():  # the loop is free meanwhile: small webhooks are recorded as they come
        small.append(await log.add(record(log), f"small {len(small)}".encode()))
        await asyncio.sleep(0)
    big = await writing
    assert small, "the loop waited for the large write"
    assert log.read_body(big.id) == large and big.body_file not in {r.body_file for r in small}
    assert [log.read_body(r.id) for r in small] == [f"small {i}".encode() for i in range(len(small))]
    reopened = EventLog(tmp_path / "events", max_events=1_000_000)
    assert reopened.read_body(big.id) == large


async def test_the_log_survives_a_restart_and_a_torn_last_line(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events", max_events=50)
    first = await log.add(record(log, training_id="t1"), b"one")
    second = await log.add(record(log, training_id="t2"), b"two")
    second.forward = {"url": "http://127.0.0.1:3000/hook", "status": 200, "error": None}
    log.update(second)
    with open(tmp_path / "events" / INDEX_FILE, "a") as index:
        index.write('{"id": "ev00000003", "recei')  # killed mid-write
    reopened = EventLog(tmp_path / "events", max_events=50)
    assert [r.id for r in reopened.latest(10)] == [second.id, first.id]
    assert reopened.get(second.id).forward["status"] == 200  # the later line wins
    assert reopened.read_body(first.id) == b"one"
    assert reopened.latest(10, training_id="t1")[0].id == first.id
    assert reopened.new_id() == "ev00000003"


async def test_a_read_only_log_never_changes_the_files(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events", max_events=2)
    for i in range(3):
        await log.add(record(log), f"body {i}".encode())
    before = {p: p.read_bytes() for p in (tmp_path / "events").rglob("*") if p.is_file()}
    reader = EventLog(tmp_path / "events", max_events=1, readonly=True)  # a smaller bound: nothing deleted
    assert len(reader) == 1 and reader.read_body(reader.latest(1)[0].id) == b"body 2"
    assert {p: p.read_bytes() for p in (tmp_path / "events").rglob("*") if p.is_file()} == before
    with pytest.raises(StoreError, match="read-only"):
        await reader.add(record(reader), b"x")
    assert not EventLog(tmp_path / "missing", readonly=True).latest(10)
    assert not (tmp_path / "missing").exists()
