"""The public face over real loopback HTTP: signed webhooks in, the documented answer out, and the
store left consistent whatever arrives (forgeries, replays, disorder, garbage, huge bodies)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.store import Store
from listener.receiver import infer_event
from test_listener_helpers import (OTHER_SECRET, SECRET, TID, bars, get, post, running_listener, signed,
                                   training)


def hook_url(listener) -> str:
    return f"{listener.public_bind_url}/webhooks/replicate"


async def test_a_signed_webhook_is_saved_before_the_200(isolated_home: Path) -> None:
    async with running_listener() as listener:
        seen = []
        listener.subscribe(seen.append)
        body, headers = signed(training("processing", bars(100)), "msg_1")
        status, data, ctype = await post(hook_url(listener), body, headers)
        assert status == 200 and ctype.startswith("application/json")
        assert data["outcome"] == "created" and data["training_id"] == TID and data["event"] == "logs"
        # Durable at the moment of the answer: what is on disk (the store's journal) already has it.
        with Store(readonly=True) as on_disk:
            assert on_disk.get(TID)["status"] == "processing" and on_disk.get(TID)["stage"] == "training"
        assert (isolated_home / "logs" / f"{TID}.log").read_text() == bars(100)
        assert [(r.verdict, r.training_id, r.http_status) for r in seen] == [("accepted", TID, 200)]
        assert listener.status.accepted == 1 and listener.status.rejected == 0


@pytest.mark.parametrize("case, expected_status, reason", [
    ("missing_headers", 400, "missing_headers"),
    ("wrong_secret", 401, "bad_signature"),
    ("garbage_signature", 401, "malformed_signature"),
    ("stale", 400, "stale_timestamp"),
    ("future", 400, "future_timestamp"),
    ("not_json", 400, "not_json"),
    ("not_utf8", 400, "not_utf8"),
    ("not_a_training", 400, "not_a_training"),
    ("bad_id", 400, "not_a_training"),
    ("text_plain", 415, "unsupported_media_type"),
])
async def test_hostile_and_malformed_webhooks_are_refused_and_change_nothing(
        isolated_home: Path, case: str, expected_status: int, reason: str) -> None:
    payload = training("processing", bars(100))
    body, headers = signed(payload, "msg_x")
    if case == "missing_headers":
        del headers["webhook-signature"]
    elif case == "wrong_secret":
        body, headers = signed(payload, "msg_x", secret=OTHER_SECRET)
    elif case == "garbage_signature":
        headers["webhook-signature"] = "not-a-signature"
    elif case == "stale":
        body, headers = signed(payload, "msg_x", timestamp=time.time() - 600)
    elif case == "future":
        body, headers = signed(payload, "msg_x", timestamp=time.time() + 600)
    elif case == "not_json":
        body, headers = signed(b"status=processing", "msg_x")
    elif case == "not_utf8":
        body, headers = signed(b'{"id": "\xff\xfe"}', "msg_x")
    elif case == "not_a_training":
        body, headers = signed(b"[1, 2, 3]", "msg_x")
    elif case == "bad_id":
        body, headers = signed(training("processing", tid="../../etc/passwd"), "msg_x")
    elif case == "text_plain":
        headers["content-type"] = "text/plain"
    async with running_listener() as listener:
        status, data, ctype = await post(hook_url(listener), body, headers)
        assert status == expected_status
        assert ctype.startswith("application/problem+json")
        assert data["status"] == expected_status and reason in data["type"] and len(data["detail"]) > 20
        assert listener.service.store.trainings() == []
        assert listener.status.rejected == 1 and listener.status.accepted == 0
        event = listener.events.latest(1)[0]
        assert (event.verdict, event.reason, event.http_status) == ("rejected", reason, expected_status)
    assert not (isolated_home / "logs" / f"{TID}.log").exists()


async def test_a_repeated_webhook_id_is_already_done(isolated_home: Path) -> None:
    async with running_listener() as listener:
        body, headers = signed(training("processing", bars(100)), "msg_same")
        assert (await post(hook_url(listener), body, headers))[0] == 200
        # Same id, other content (a retry must never apply twice): 200, nothing changes.
        body2, headers2 = signed(training("succeeded", bars(100, 1000)), "msg_same")
        status, data, _ = await post(hook_url(listener), body2, headers2)
        assert status == 200 and data["outcome"] == "duplicate"
        assert listener.service.store.get(TID)["status"] == "processing"
        assert listener.events.latest(1)[0].verdict == "duplicate"


async def test_out_of_order_webhooks_never_regress_and_the_terminal_one_is_final(isolated_home: Path) -> None:
    long_log = bars(100, 500, 1000)
    async with running_listener() as listener:
        url = hook_url(listener)
        done = training("succeeded", long_log, output={"version": "me/lora:" + "b" * 64, "weights": "w"})
        for i, payload in enumerate([
            training("processing", bars(100, 500)),
            done,
            training("processing", bars(100)),  # late, shorter, earlier status
            training("starting", None),  # very late start
            training("failed", long_log, error="boom"),  # a different terminal status after the end
        ]):
            body, headers = signed(payload, f"msg_{i}")
            status, data, _ = await post(url, body, headers)
            assert status == 200, data
        record = listener.service.store.get(TID)
        assert record["status"] == "succeeded" and record["error"] is None
        assert record["output_version"] == "me/lora:" + "b" * 64
        assert listener.service.store.read_log(TID) == long_log
        verdicts = [e.verdict for e in reversed(listener.events.latest(10))]
        assert verdicts == ["accepted", "accepted", "ignored", "ignored", "ignored"]


async def test_a_shorter_log_is_ignored(isolated_home: Path) -> None:
    async with running_listener() as listener:
        url = hook_url(listener)
        for i, log in enumerate([bars(100, 200, 300), bars(100)]):
            body, headers = signed(training("processing", log), f"msg_{i}")
            assert (await post(url, body, headers))[0] == 200
        assert listener.service.store.read_log(TID) == bars(100, 200, 300)


async def test_log_text_with_escapes_and_markup_is_kept_verbatim(isolated_home: Path) -> None:
    hostile = "Starting train job\n\x1b[31mred\x1b[0m [bold red]markup[/] \x1b]8;;http://x\x07link\x1b]8;;\x07\n"
    async with running_listener() as listener:
        body, headers = signed(training("processing", hostile), "msg_esc")
        status, _, _ = await post(hook_url(listener), body, headers)
        assert status == 200
        assert listener.service.store.read_log(TID) == hostile  # escaping is the display's job
    with Store(readonly=True) as store:
        assert store.read_log(TID) == hostile and store.get(TID)["status"] == "processing"


async def test_oversize_bodies_get_413_and_big_logs_fit(isolated_home: Path) -> None:
    async with running_listener(max_body=64 * 1024) as listener:
        body, headers = signed(training("processing", "x" * 100_000), "msg_big")
        status, data, ctype = await post(hook_url(listener), body, headers)
        assert status == 413 and ctype.startswith("application/problem+json") and "--max-body" in data["detail"]
        assert listener.service.store.trainings() == []
    async with running_listener() as listener:  # the default accepts a 10 MB logs webhook (timed in bench/)
        log = bars(*range(1, 1001)) * 101
        assert len(log) > 10_000_000
        body, headers = signed(training("processing", log), "msg_10mb")
        status, data, _ = await post(hook_url(listener), body, headers)
        assert status == 200, data
        assert listener.service.store.log_length(TID) == len(log)
        assert listener.events.read_body(listener.events.latest(1)[0].id) == body


async def test_the_public_face_serves_nothing_else(isolated_home: Path) -> None:
    async with running_listener() as listener:
        base = listener.public_bind_url
        assert await get(f"{base}/health") == (200, {"ok": True, "service": "replitrack listener"})
        for path in ("/api/events", "/api/models/x/status", "/api/listener", "/", "/webhooks"):
            status, data = await get(base + path)
            assert status == 404 and data["status"] == 404, path
        status, data = await get(f"{base}/webhooks/replicate")
        assert status == 405 and "POST" in data["detail"]
        # Probes are in the event log too (health checks are not: they would drown it).
        probes = [(e.method, e.path, e.http_status) for e in reversed(listener.events.latest(10))]
        assert probes[0] == ("GET", "/api/events", 404) and probes[-1] == ("GET", "/webhooks/replicate", 405)
        assert len(probes) == 6 and listener.status.rejected == 6
        assert listener.local_url != listener.public_bind_url
        assert listener.public_bind_url.startswith("http://127.0.0.1:")
        assert listener.local_url.startswith("http://127.0.0.1:")


async def test_without_a_secret_webhooks_are_refused_with_503(isolated_home: Path) -> None:
    # No secret given and no token to fetch it with: never accept unverified.
    async with running_listener(secret=None) as listener:
        assert "unknown" in listener.status.secret and "token" in listener.status.secret.lower()
        body, headers = signed(training("processing", bars(100)), "msg_1")
        status, data, ctype = await post(hook_url(listener), body, headers)
        assert status == 503 and "secret_unknown" in data["type"] and "REPLICATE_WEBHOOK_SECRET" in data["detail"]
        assert listener.service.store.trainings() == []


async def test_the_secret_comes_from_the_environment(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", SECRET)
    async with running_listener(secret=None) as listener:
        assert listener.status.secret.startswith("REPLICATE_WEBHOOK_SECRET")
        body, headers = signed(training("processing", bars(100)), "msg_1")
        assert (await post(hook_url(listener), body, headers))[0] == 200


async def test_concurrent_webhooks_are_all_durable(isolated_home: Path) -> None:
    async with running_listener() as listener:
        url = hook_url(listener)
        payloads = [signed(training("processing", bars(100), tid=f"t{i:03d}aaaaaaaaaaaaaaaaaaaaa"), f"msg_{i}")
                    for i in range(60)]
        answers = await asyncio.gather(*(post(url, b, h) for b, h in payloads))
        assert [a[0] for a in answers] == [200] * 60
    with Store(readonly=True) as store:
        assert len(store.trainings()) == 60


def test_the_event_kind_is_inferred_from_the_body() -> None:
    assert infer_event(training("starting", None)) == "start"
    assert infer_event(training("processing", "")) == "start"
    assert infer_event(training("processing", "Downloading\n")) == "logs"
    assert infer_event(training("processing", "x", output={"weights": "w"})) == "output"
    assert infer_event(training("canceled", "x")) == "completed"
    assert infer_event({"id": "x", "status": 5}) == "start"
