"""The local face over real loopback HTTP: the debugging API, the event log and replays."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

import core.store
import listener.receiver as listener_receiver
from core.errors import BadArgumentError
from core.views import status_view
from simulator import Simulator
from tui.cli.runtime import free_port
from test_listener_helpers import TID, bars, get, post, running_listener, signed, training

VERSION = "me/lora:" + "b" * 64


def auth(listener, headers: dict[str, str]) -> dict[str, str]:
    """What the CLI sends to changing routes: the instance's token, read from the owner file."""
    owner = core.store.read_owner(listener.service.store.home) or {}
    return {**headers, "Authorization": f"Bearer {owner['secret']}"}


async def deliver(listener, payload: dict, msg_id: str) -> int:
    body, headers = signed(payload, msg_id)
    return (await post(f"{listener.public_bind_url}/webhooks/replicate", body, headers))[0]


async def test_model_status_by_training_id_and_by_destination(isolated_home: Path) -> None:
    async with running_listener() as listener:
        done = training("succeeded", bars(100, 1000), output={"version": VERSION, "weights": "https://w"},
                        completed_at="2024-09-10T05:40:00Z")
        assert await deliver(listener, done, "msg_1") == 200
        code, by_id = await get(f"{listener.local_url}/api/models/{TID}/status")
        assert code == 200
        record = listener.service.store.get(TID)
        assert by_id == json.loads(json.dumps(status_view(record)))  # the same shape as `status --json`
        assert by_id["status"] == "succeeded" and by_id["output_version"] == VERSION
        assert by_id["overall_percent"] == 100 and by_id["eta_seconds"] is None
        for ref in (quote("me/lora", safe=""), "me/lora"):
            code, by_name = await get(f"{listener.local_url}/api/models/{ref}/status")
            assert code == 200 and by_name["id"] == TID
        code, missing = await get(f"{listener.local_url}/api/models/nope%2Fnothing/status")
        assert code == 404 and "replitrack import" in missing["detail"]


async def test_training_logs_tail_and_live_fetch_failure_is_explained(isolated_home: Path) -> None:
    async with running_listener() as listener:
        running = bars(100, 200, 300)
        assert await deliver(listener, training("processing", running), "msg_1") == 200
        code, data = await get(f"{listener.local_url}/api/replicate/training-logs/{TID}?tail=1")
        assert code == 200
        assert data["logs"] == running.splitlines(keepends=True)[-1]
        assert data["status"] == "processing" and data["stage"] == "training" and data["stage_label"]
        assert data["total_chars"] == len(running) and data["progress"] > 0
        # Running, so Replicate is asked; it cannot be reached here: the stored state, and why.
        assert data["fetched_live"] is False and "showing the stored state" in data["live_error"]
        code, data = await get(f"{listener.local_url}/api/replicate/training-logs/{TID}?since={len(running) - 5}")
        assert code == 200 and data["logs"] == running[-5:]
        code, data = await get(f"{listener.local_url}/api/replicate/training-logs/{TID}?tail=many")
        assert code == 400 and "whole number" in data["detail"]


async def test_sync_completed_validates_its_body(isolated_home: Path) -> None:
    async with running_listener() as listener:
        url = f"{listener.local_url}/api/replicate/sync-completed"
        code, data, _ = await post(url, b"{}", auth(listener, {"content-type": "application/json"}))
        assert code == 400 and "modelId" in data["detail"]
        code, data, _ = await post(url, b"modelId=x", auth(listener, {"content-type": "application/x-www-form-urlencoded"}))
        assert code == 415
        # not stored, so Replicate is asked (sync finds what the store never saw); it cannot be here
        code, data, _ = await post(url, b'{"modelId": "me/unknown"}', auth(listener, {"content-type": "application/json"}))
        assert code == 502 and "'me/unknown'" in data["detail"] and "REPLICATE_API_TOKEN" in data["detail"]


async def test_events_are_listed_inspected_and_replayed(isolated_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A real passing failure: Replicate (here the simulator, not started yet) cannot be reached
    # when the webhook comes, so its signing secret is unknown and the webhook is answered 503;
    # once Replicate answers, the recorded webhook is replayed.
    monkeypatch.setattr(listener_receiver, "SECRET_RETRY_SECONDS", 0.0)  # ask again at once, not in 5 s
    port = free_port()
    sim = Simulator(speed=1000, seed=1)
    async with running_listener(base_url=f"http://127.0.0.1:{port}", token=sim.token, secret=None) as listener:
        body, headers = signed(training("succeeded", bars(100, 1000)), "msg_lost", secret=sim.webhook_secret)
        assert (await post(f"{listener.public_bind_url}/webhooks/replicate", body, headers))[0] == 503
        await sim.start(port=port)
        try:
            await _listed_inspected_and_replayed(listener, body)
        finally:
            await sim.stop()


async def _listed_inspected_and_replayed(listener, body: bytes) -> None:
    code, listing = await get(f"{listener.local_url}/api/events")
    assert code == 200 and listing["count"] == 1
    event = listing["events"][0]
    assert (event["verdict"], event["http_status"], event["reason"]) == ("rejected", 503, "secret_unknown")
    code, detail = await get(f"{listener.local_url}/api/events/{event['id']}")
    assert code == 200 and detail["headers"]["webhook-id"] == "msg_lost"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{listener.local_url}/api/events/{event['id']}/body") as answer:
            assert await answer.read() == body  # the raw bytes, as received

    code, replay, _ = await post(f"{listener.local_url}/api/events/{event['id']}/replay", b"", auth(listener, {}))
    assert code == 200 and replay["replayed"] == event["id"]
    assert replay["event"]["verdict"] == "accepted" and replay["event"]["replay_of"] == event["id"]
    assert listener.service.store.get(TID)["status"] == "succeeded"
    code, data = await get(f"{listener.local_url}/api/events?verdict=accepted")
    assert [e["replay_of"] for e in data["events"]] == [event["id"]]
    code, data, _ = await post(f"{listener.local_url}/api/events/ev99999999/replay", b"", auth(listener, {}))
    assert code == 404


async def test_the_local_api_refuses_other_hosts_and_web_pages(isolated_home: Path) -> None:
    async with running_listener() as listener:
        code, data = await get(f"{listener.local_url}/api/events", headers={"Host": "evil.example"})
        assert code == 403 and "forbidden_host" in data["type"]
        code, data = await get(f"{listener.local_url}/api/events", headers={"Origin": "https://evil.example"})
        assert code == 403 and "forbidden_origin" in data["type"]
        code, data, _ = await post(f"{listener.local_url}/api/events/ev00000001/replay", b"", {"Origin": "null"})
        assert code == 403
        code, data = await get(f"{listener.local_url}/api/events", headers={"Host": "localhost"})
        assert code == 200
        code, data = await get(f"{listener.local_url}/api/listener")
        assert code == 200 and data["tunnel"] == "off (polling only)" and data["local_url"] == listener.local_url
        code, data = await get(f"{listener.local_url}/api/nothing")
        assert code == 404 and "/api/events" in data["detail"]


async def test_binding_the_local_api_elsewhere_needs_a_flag(isolated_home: Path) -> None:
    with pytest.raises(BadArgumentError, match="--expose-local-api"):
        async with running_listener(local_host="0.0.0.0"):
            pass


@pytest.fixture
async def sim():
    from simulator import Simulator

    simulator = Simulator(speed=3000, seed=11)
    await simulator.start()
    simulator.add_model("me/lora")
    yield simulator
    await simulator.stop()


async def test_sync_completed_and_live_logs_against_replicate(isolated_home: Path, sim) -> None:
    finished = sim.add_finished_training("ostris/flux-dev-lora-trainer", "me/lora",
                                         {"input_images": "https://x/i.zip", "steps": 40})
    tid = finished["id"]
    async with running_listener(base_url=sim.base_url, token=sim.token) as listener:
        # Not in the store yet: the logs endpoint asks Replicate.
        code, data = await get(f"{listener.local_url}/api/replicate/training-logs/{tid}?tail=3")
        assert code == 200 and data["fetched_live"] is True and data["status"] == "succeeded"
        assert data["logs"] and finished["logs"].endswith(data["logs"])
        # The store missed the end: it thinks the training still runs.
        listener.service.store.put({**listener.service.store.get(tid), "status": "processing"})
        url = f"{listener.local_url}/api/replicate/sync-completed"
        wrong = json.dumps({"modelId": "me/lora", "replicateModelVersion": "me/lora:" + "0" * 64}).encode()
        code, data, _ = await post(url, wrong, auth(listener, {"content-type": "application/json"}))
        assert code == 409 and "not me/lora:" in data["detail"]
        version = finished["output"]["version"]
        body = json.dumps({"modelId": "me/lora", "replicateModelVersion": version}).encode()
        code, data, _ = await post(url, body, auth(listener, {"content-type": "application/json"}))
        assert code == 200 and data["id"] == tid and data["status"]["status"] == "succeeded"
        assert data["status"]["output_version"] == version
        code, data = await get(f"{listener.local_url}/api/replicate/training-logs/nosuchtraining123")
        assert code == 404


async def test_start_retry_cancel_and_import_act_through_the_owner(isolated_home: Path, simulator) -> None:
    simulator.add_model("demo-user/my-lora")
    await simulator.create_training("ostris/flux-dev-lora-trainer", "demo-user/my-lora",
                                    {"input_images": "https://example.invalid/a.zip", "steps": 50})
    json_headers = {"content-type": "application/json"}
    async with running_listener(base_url=simulator.base_url, token=simulator.token) as listener:
        api = listener.local_url
        code, data, _ = await post(f"{api}/api/import", b"", auth(listener, json_headers))
        assert code == 200 and data["imported"] == 1 and data["stored"] == 1

        start = {"trainer": "ostris/flux-dev-lora-trainer", "destination": "demo-user/my-lora",
                 "input": {"input_images": "https://example.invalid/a.zip", "steps": 50}}
        code, started, _ = await post(f"{api}/api/trainings", json.dumps(start).encode(), auth(listener, json_headers))
        assert code == 201 and started["status"] == "starting", started
        assert listener.service.store.get(started["id"])["destination"] == "demo-user/my-lora"

        code, canceled, _ = await post(f"{api}/api/trainings/{started['id']}/cancel", b"", auth(listener, {}))
        assert code == 200 and canceled["status"] == "canceled"
        code, retried, _ = await post(f"{api}/api/trainings/{started['id']}/retry", b"", auth(listener, {}))
        assert code == 201 and retried["id"] != started["id"]
        assert retried["destination"] == "demo-user/my-lora" and retried["input"]["steps"] == 50

        bad = dict(start, destination="demo-user/missing")
        code, refused, _ = await post(f"{api}/api/trainings", json.dumps(bad).encode(), auth(listener, json_headers))
        assert code == 404 and "create it first" in refused["detail"]
        code, refused, _ = await post(f"{api}/api/trainings", b"trainer=x", auth(listener, {"content-type": "text/plain"}))
        assert code == 415
        code, refused, _ = await post(f"{api}/api/trainings/nosuchtraining/retry", b"", auth(listener, {}))
        assert code == 404


async def test_refresh_fetches_a_change_made_beside_the_owner(isolated_home: Path, simulator) -> None:
    simulator.add_model("demo-user/my-lora")
    created = await simulator.create_training("ostris/flux-dev-lora-trainer", "demo-user/my-lora",
                                              {"input_images": "https://example.invalid/a.zip", "steps": 50})
    async with running_listener(base_url=simulator.base_url, token=simulator.token) as listener:
        api = listener.local_url
        assert listener.service.store.get(created["id"]) is None
        code, fetched, _ = await post(f"{api}/api/trainings/{created['id']}/refresh", b"", auth(listener, {}))
        assert code == 200 and fetched["id"] == created["id"] and fetched["status"] in ("starting", "processing")
        simulator.cancel_training(created["id"])  # on Replicate, not through this instance
        assert listener.service.store.get(created["id"])["status"] != "canceled"
        code, fetched, _ = await post(f"{api}/api/trainings/{created['id']}/refresh", b"", auth(listener, {}))
        assert code == 200 and fetched["status"] == "canceled"
        assert listener.service.store.get(created["id"])["status"] == "canceled"
        code, _, _ = await post(f"{api}/api/trainings/demo-user%2Fnobody/refresh", b"", auth(listener, {}))
        assert code == 404
        code, data = await get(f"{api}/api/trainings/{created['id']}/refresh")
        assert code == 405, "a read never changes the store: refreshing is a POST"


async def test_an_unknown_route_lists_the_routes_served(isolated_home: Path) -> None:
    async with running_listener() as listener:
        code, data = await get(f"{listener.local_url}/api/nothing-here")
        assert code == 404 and "no such route" in data["detail"]
        for route in ("GET /api/models/{ref}/status", "POST /api/import", "POST /api/trainings/{ref}/retry"):
            assert route in data["detail"]
