"""The simulator's predictions: every body checked against Replicate's OpenAPI document (a copy in
tests/fixtures/reference/, from the project's reference notes), replicate-python (replicate 1.0.x)
as an independent client, signed webhooks, and the PNGs it serves.

What a flux version prints is taken from replicate/cog-flux@15145836010196f4f6b1d1df8244c46041e4bb0d
(bfl_predictor.py: `Using seed: N`) and flux/sampling.py@02f32be6710a7d010e064e8f9d6bf1cee206cb3f
(`tqdm(zip(...))`: a bar without a total, `28it [00:03,  8.05it/s]`).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from aiohttp import web
from conftest import ReplicateSpec
from PIL import Image
from replicate.exceptions import ReplicateError
from standardwebhooks import Webhook

from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
DEST = "demo-user/faces"
SPEC_FILE = Path(__file__).resolve().parent / "fixtures" / "reference" / "replicate-openapi.json"


@pytest.fixture(scope="module")
def spec() -> ReplicateSpec:
    return ReplicateSpec(SPEC_FILE)


def trained_version(sim: Simulator, dest: str = DEST, trainer: str = FLUX) -> str:
    """A finished training on the simulator; returns its `owner/name:version`."""
    sim.add_model(dest)
    inputs = {"input_images": "https://files.example.test/faces.zip", "steps": 20, "trigger_word": "TOK"}
    if trainer != FLUX:
        inputs = {"train_data": "https://files.example.test/rows.jsonl"}
    done = sim.add_finished_training(trainer, dest, inputs, ended_ago=60)
    return str(done["output"]["version"])


def official(sim: Simulator) -> replicate.Client:
    client = replicate.Client(api_token=sim.token, base_url=sim.base_url)
    client.poll_interval = 0.02
    return client


async def test_replicate_python_creates_and_waits_for_a_prediction(simulator: Simulator, spec: ReplicateSpec) -> None:
    simulator.speed = 200
    version = trained_version(simulator)
    client = official(simulator)
    prediction = await client.predictions.async_create(version=version, input={"prompt": "a photo of TOK", "seed": 7})
    assert prediction.status == "starting" and prediction.version == version.split(":")[1]
    assert prediction.model == DEST and prediction.output is None
    await prediction.async_wait()
    assert prediction.status == "succeeded", prediction.error
    assert "Using seed: 7" in prediction.logs and re.search(r"^28it \[", prediction.logs, re.M)
    assert prediction.metrics["predict_time"] > 0
    [url] = prediction.output
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {simulator.token}"}) as http:
        image = await http.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(image.content)) as png:
        assert png.format == "PNG" and png.size == (1024, 1024)

    # The same version, prompt and seed: the same picture; another seed: another one.
    again = await client.predictions.async_create(version=version, input={"prompt": "a photo of TOK", "seed": 7})
    other = await client.predictions.async_create(version=version, input={"prompt": "a photo of TOK", "seed": 8})
    await again.async_wait()
    await other.async_wait()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {simulator.token}"}) as http:
        bodies = [(await http.get(p.output[0])).content for p in (prediction, again, other)]
    assert bodies[0] == bodies[1] != bodies[2]

    listed = [p.id async for page in replicate.pagination.async_paginate(client.predictions.async_list) for p in page]
    assert listed == [other.id, again.id, prediction.id]


async def test_every_prediction_body_matches_the_spec(simulator: Simulator, spec: ReplicateSpec) -> None:
    simulator.speed = 500
    version = trained_version(simulator)
    headers = {"Authorization": f"Bearer {simulator.token}"}
    async with httpx.AsyncClient(base_url=simulator.base_url, headers=headers) as http:
        body = {"version": version.split(":")[1], "input": {"prompt": "TOK on a beach"}}
        spec_request = {**spec.components["schemas"]["schemas_version_prediction_request"], "components": spec.components}
        import jsonschema

        jsonschema.Draft202012Validator(spec_request).validate(body)
        created = await http.post("/v1/predictions", json=body)
        assert created.status_code == 201
        spec.validate(created.json(), "/predictions", "post", 201)
        pid = created.json()["id"]
        fetched = await http.get(f"/v1/predictions/{pid}")
        spec.validate(fetched.json(), "/predictions/{prediction_id}")
        # Prefer: wait holds the answer until the prediction is done
        waited = await http.post("/v1/predictions", json=body, headers={"Prefer": "wait=30"})
        assert waited.json()["status"] == "succeeded" and waited.json()["output"]
        spec.validate(waited.json(), "/predictions", "post", 201)
        spec.validate(waited.json(), "/predictions/{prediction_id}")
        # cancel a running one
        running = (await http.post("/v1/predictions", json={**body, "input": {"prompt": "x", "num_inference_steps": 50}})).json()
        simulator.speed = 1
        canceled = await http.post(f"/v1/predictions/{running['id']}/cancel")
        spec.validate(canceled.json(), "/predictions/{prediction_id}/cancel", "post")
        assert canceled.json()["status"] == "canceled" and canceled.json()["completed_at"]
        listing = await http.get("/v1/predictions")
        spec.validate(listing.json(), "/predictions")
        assert "logs" not in listing.json()["results"][0]


async def test_bad_requests_get_problem_details(simulator: Simulator) -> None:
    version = trained_version(simulator)
    client = official(simulator)
    with pytest.raises(ReplicateError) as unknown:
        await client.predictions.async_create(version="f" * 64, input={"prompt": "x"})
    assert unknown.value.status == 404 and "does not exist" in unknown.value.detail
    with pytest.raises(ReplicateError) as missing:
        await client.predictions.async_create(version=version, input={"lora_scale": 1})
    assert missing.value.status == 422 and "prompt is required" in missing.value.detail
    with pytest.raises(ReplicateError) as out_of_range:
        await client.predictions.async_create(version=version, input={"prompt": "x", "num_outputs": 9})
    assert out_of_range.value.status == 422 and "num_outputs" in out_of_range.value.detail
    async with httpx.AsyncClient(base_url=simulator.base_url, headers={"Authorization": f"Bearer {simulator.token}"}) as http:
        extra = await http.post("/v1/predictions", json={"version": version, "input": {"prompt": "x"}, "colour": "red"})
        assert extra.status_code == 422 and "Additional property colour" in extra.json()["detail"]
        gone = await http.get("/v1/predictions/aaaaaaaaaaaaaaaaaaaaaaaaaa")
        assert gone.status_code == 404 and gone.headers["content-type"].startswith("application/problem+json")


async def test_a_failing_prediction_and_a_text_model(simulator: Simulator) -> None:
    simulator.speed = 500
    version = trained_version(simulator)
    client = official(simulator)
    simulator.predictions.fail_next = 1
    failed = await client.predictions.async_create(version=version, input={"prompt": "x"})
    await failed.async_wait()
    assert failed.status == "failed" and "out of memory" in failed.error and failed.output is None
    assert "Using seed:" in failed.logs

    text_version = trained_version(simulator, "demo-user/chat", "meta/llama-2-7b")
    words = await client.predictions.async_create(version=text_version, input={"prompt": "Hi", "max_new_tokens": 4})
    await words.async_wait()
    assert words.status == "succeeded" and words.output == ["A", " photo", " of", " a"]


async def test_webhooks_are_signed_and_end_with_completed(simulator: Simulator) -> None:
    simulator.speed = 200
    version = trained_version(simulator)
    received: list[tuple[dict[str, str], bytes]] = []
    finished = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        received.append((dict(request.headers), body))
        if json.loads(body)["status"] in ("succeeded", "failed", "canceled"):
            finished.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = official(simulator)
        prediction = await client.predictions.async_create(
            version=version, input={"prompt": "TOK", "seed": 3}, webhook=f"http://127.0.0.1:{port}/hook",
            webhook_events_filter=["start", "logs", "output", "completed"])
        await asyncio.wait_for(finished.wait(), 10)
    finally:
        await runner.cleanup()
    verifier = Webhook(simulator.webhook_secret)
    payloads: list[Any] = [verifier.verify(body, headers) for headers, body in received]
    assert {p["id"] for p in payloads} == {prediction.id}
    assert payloads[0]["status"] == "starting" and payloads[-1]["status"] == "succeeded"
    assert payloads[-1]["output"][0].endswith("/out-0.png") and "Using seed: 3" in payloads[-1]["logs"]
    assert [d.event for d in simulator.predictions.deliveries][-1] == "completed"
