"""The simulated Replicate over real HTTP on loopback: contract, trainer logs, lifecycle, faults, CLI."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.errors import ReplitrackError
from simulator import (
    SCENARIOS,
    SCRIPTS,
    TRAINERS,
    BadFaultSpecError,
    Faults,
    RequestRejectedError,
    Simulator,
)

FLUX = "ostris/flux-dev-lora-trainer"
SDXL = "stability-ai/sdxl"
LLAMA = "meta/llama-2-7b"
QWEN = "replicate/qwen-image-lora-trainer"
FLUX_VERSION = TRAINERS[FLUX].version
IMAGES = "https://files.example.test/faces.zip"
DEST = "demo-user/faces"
ID = re.compile(r"^[a-z2-7]{26}$")
TIME6 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIME9 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
UNAUTHENTICATED = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
REPO = Path(__file__).resolve().parent.parent
QUICK_FLUX = {"input_images": IMAGES, "steps": 30, "autocaption": False, "resolution": "512"}


def api(sim: Simulator, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {token or sim.token}"}, timeout=10
    )


async def wait_for(sim: Simulator, training_id: str, check: Callable[[dict[str, Any]], bool],
                   timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = sim.training(training_id)
        if check(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; training is {current['status']} with {len(current['logs'])} chars of logs")
        await asyncio.sleep(0.01)


def terminal(training: dict[str, Any]) -> bool:
    return training["status"] in ("succeeded", "failed", "canceled")


def image_zip(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"\x89PNG fake image bytes")
        archive.writestr("notes.txt", b"captions live here")
    return buffer.getvalue()


def in_order(text: str, markers: list[str]) -> None:
    position = -1
    for marker in markers:
        found = text.find(marker, position + 1)
        assert found > position, f"{marker!r} missing or out of order"
        position = found


# ---- the HTTP contract ------------------------------------------------------------------------


async def test_every_endpoint_answers_what_the_official_spec_describes(simulator: Simulator, replicate_spec: Any) -> None:
    simulator.speed = 2000
    async with api(simulator) as client:
        response = await client.get("/v1/account")
        assert response.status_code == 200
        replicate_spec.validate(response.json(), "/account")
        assert response.json()["username"] == "demo-user"

        response = await client.post("/v1/models", json={"owner": "demo-user", "name": "faces", "visibility": "private", "hardware": "gpu-t4"})
        assert response.status_code == 201
        replicate_spec.validate(response.json(), "/models", "post", 201)

        for path in ("/v1/models/demo-user/faces", f"/v1/models/{FLUX}"):
            response = await client.get(path)
            replicate_spec.validate(response.json(), "/models/{model_owner}/{model_name}")
        assert response.json()["latest_version"]["id"] == FLUX_VERSION

        for trainer, fields in ((FLUX, ["input_images", "trigger_word", "steps", "lora_rank", "learning_rate", "batch_size", "resolution", "autocaption"]),
                                (SDXL, ["input_images", "token_string", "caption_prefix", "max_train_steps"]),
                                (LLAMA, ["train_data", "num_train_epochs", "learning_rate"]),
                                (QWEN, ["dataset", "steps", "learning_rate", "lora_rank", "default_caption", "batch_size",
                                        "optimizer", "seed"])):
            versions = await client.get(f"/v1/models/{trainer}/versions")
            replicate_spec.validate(versions.json(), "/models/{model_owner}/{model_name}/versions")
            version = await client.get(f"/v1/models/{trainer}/versions/{TRAINERS[trainer].version}")
            replicate_spec.validate(version.json(), "/models/{model_owner}/{model_name}/versions/{version_id}")
            assert re.fullmatch(r"[0-9a-f]{64}", version.json()["id"])
            inputs = version.json()["openapi_schema"]["components"]["schemas"]["TrainingInput"]["properties"]
            assert set(fields) <= set(inputs), trainer

        response = await client.post("/v1/files", files={"content": ("faces.zip", image_zip(["a.jpg", "b.png"]), "application/zip")})
        assert response.status_code == 201
        replicate_spec.validate(response.json(), "/files", "post", 201)
        uploaded = response.json()
        assert (await client.get(f"/v1/files/{uploaded['id']}")).json() == uploaded

        response = await client.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings",
                                     json={"destination": DEST, "input": {**QUICK_FLUX, "input_images": uploaded["urls"]["get"]}})
        assert response.status_code == 201
        replicate_spec.validate(response.json(), "/models/{model_owner}/{model_name}/versions/{version_id}/trainings", "post", 201)
        created = response.json()
        assert created["status"] == "starting" and created["logs"] == "" and created["metrics"] == {}
        assert ID.match(created["id"]) and TIME6.match(created["created_at"])
        assert created["urls"]["get"].endswith(f"/v1/predictions/{created['id']}")  # as real create responses do

        response = await client.get(f"/v1/trainings/{created['id']}")
        replicate_spec.validate(response.json(), "/trainings/{training_id}")
        assert response.json()["urls"]["web"] == f"https://replicate.com/p/{created['id']}"

        other = await client.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings", json={"destination": DEST, "input": QUICK_FLUX})
        response = await client.post(f"/v1/trainings/{other.json()['id']}/cancel")
        assert response.status_code == 200
        replicate_spec.validate(response.json(), "/trainings/{training_id}/cancel", "post")
        assert response.json()["status"] == "canceled"

        response = await client.get("/v1/webhooks/default/secret")
        replicate_spec.validate(response.json(), "/webhooks/default/secret")
        assert response.json()["key"] == simulator.webhook_secret and simulator.webhook_secret.startswith("whsec_")

        done = await wait_for(simulator, created["id"], terminal)
        response = await client.get(f"/v1/trainings/{created['id']}")
        replicate_spec.validate(response.json(), "/trainings/{training_id}")
        assert response.json() == done and done["status"] == "succeeded"
        assert TIME9.match(done["started_at"]) and TIME6.match(done["completed_at"])

        listing = await client.get("/v1/trainings")
        replicate_spec.validate(listing.json(), "/trainings")
        assert [t["id"] for t in listing.json()["results"]] == [other.json()["id"], created["id"]]
        assert all("logs" not in item for item in listing.json()["results"])


@pytest.mark.parametrize("header", [None, "Bearer r8_wrong", "Basic abc", "Bearer"])
async def test_a_missing_or_wrong_token_gets_replicates_401(simulator: Simulator, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=simulator.base_url, headers=headers) as client:
        for method, path in (("GET", "/v1/trainings"), ("GET", "/v1/account"),
                             ("POST", f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings")):
            response = await client.request(method, path, json={})
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json() == UNAUTHENTICATED


async def test_the_older_token_scheme_is_accepted(simulator: Simulator) -> None:
    async with httpx.AsyncClient(base_url=simulator.base_url, headers={"Authorization": f"Token {simulator.token}"}) as client:
        assert (await client.get("/v1/account")).status_code == 200


async def test_client_errors_answer_problem_bodies(simulator: Simulator) -> None:
    simulator.add_model(DEST)
    url = f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings"
    async with api(simulator) as client:
        missing = await client.post(url, json={"destination": "demo-user/nope", "input": QUICK_FLUX})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "The specified training destination does not exist", "status": 404}
        assert missing.headers["content-type"].startswith("application/problem+json")

        for path in (f"/v1/models/someone/unknown/versions/{FLUX_VERSION}/trainings",
                     f"/v1/models/{FLUX}/versions/{'0' * 64}/trainings",
                     "/v1/trainings/aaaaaaaaaaaaaaaaaaaaaaaaaa", "/v1/nothing-here"):
            response = await (client.post(path, json={"destination": DEST, "input": QUICK_FLUX})
                              if path.endswith("trainings") else client.get(path))
            assert response.status_code == 404, path
            assert response.json()["status"] == 404 and response.json()["detail"]
        assert (await client.post("/v1/trainings/aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel")).status_code == 404

        for body, field in (({"destination": DEST, "input": {"steps": 100}}, "input"),
                            ({"destination": DEST, "input": {**QUICK_FLUX, "steps": "many"}}, "input.steps"),
                            ({"destination": DEST, "input": {**QUICK_FLUX, "steps": 0}}, "input.steps"),
                            ({"destination": DEST, "input": {**QUICK_FLUX, "autocaption": 1}}, "input.autocaption"),
                            ({"destination": DEST, "input": {**QUICK_FLUX, "input_images": "faces.zip"}}, "input.input_images"),
                            ({"destination": DEST, "input": QUICK_FLUX, "webhook": "not a url"}, "webhook"),
                            ({"destination": DEST, "input": QUICK_FLUX, "webhook_events_filter": ["done"]}, "webhook_events_filter"),
                            ({"input": QUICK_FLUX}, "(root)")):
            response = await client.post(url, json=body)
            assert response.status_code == 422, body
            assert response.json()["title"] == "Input validation failed"
            assert [f["field"] for f in response.json()["invalid_fields"]] == [field]

        broken = await client.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 400 and broken.json()["status"] == 400
        unknown_script = await client.post(url, json={"destination": DEST, "input": QUICK_FLUX},
                                           headers={"X-Simulator-Script": "sdxl"})
        assert unknown_script.status_code == 400 and "flux-fail" in unknown_script.json()["detail"]
        assert simulator.trainings() == []  # nothing was created by any of these


async def test_create_training_from_python_refuses_like_the_endpoint(simulator: Simulator) -> None:
    with pytest.raises(RequestRejectedError) as refused:
        await simulator.create_training(FLUX, "demo-user/absent", QUICK_FLUX)
    assert refused.value.status == 404 and isinstance(refused.value, ReplitrackError)
    assert "does not exist" in str(refused.value)


async def test_models_and_files_endpoints_refuse_bad_requests(simulator: Simulator) -> None:
    simulator.max_file_bytes = 1000
    async with api(simulator) as client:
        body = {"owner": "demo-user", "name": "faces", "visibility": "private", "hardware": "gpu-t4"}
        assert (await client.post("/v1/models", json=body)).status_code == 201
        assert (await client.post("/v1/models", json=body)).status_code == 409
        assert (await client.post("/v1/models", json={**body, "owner": "someone-else"})).status_code == 403
        assert (await client.post("/v1/models", json={"owner": "demo-user"})).status_code == 422
        too_big = await client.post("/v1/files", files={"content": ("big.bin", b"x" * 1001)})
        assert too_big.status_code == 413
        assert too_big.json() == {"detail": "Files must be less than 100MB in size"}
        small = await client.post("/v1/files", files={"content": ("rows.jsonl", b'{"text": "hi"}\n')},
                                  data={"metadata": json.dumps({"purpose": "test"})})
        assert small.json()["metadata"] == {"purpose": "test"} and small.json()["size"] == 15
        download = await client.get(f"/v1/files/{small.json()['id']}/download")
        assert download.content == b'{"text": "hi"}\n'


async def test_responses_carry_ratelimit_headers_and_the_limit_is_enforced(simulator: Simulator) -> None:
    simulator.rate_limit = 3
    async with api(simulator) as client:
        answers = [await client.get("/v1/account") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert 1 <= int(answers[0].headers["ratelimit-reset"]) <= 60
    assert answers[3].json()["detail"].startswith("Request was throttled.")


# ---- trainer scripts ------------------------------------------------------------------------------

FLUX_BAR = re.compile(
    r"^flux_train_replicate: +(\d+)%\|[ ▏▎▍▌▋▊▉█]{10}\| (\d+)/(\d+) "
    r"\[(\d\d:\d\d)<(\d\d:\d\d|\?), +(\?|\d+\.\d\d)(it/s|s/it)(?:, lr: \d\.\de-\d\d loss: \d\.\d{3}e[-+]\d\d)?\]$"
)
# replicate-python's own progress regex: it misses flux's prefixed bar (a documented trap).
OFFICIAL_PARSER = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")


async def test_a_flux_training_prints_every_stage_in_order(simulator: Simulator) -> None:
    simulator.speed = 2000
    simulator.add_model(DEST)
    async with api(simulator) as client:
        upload = await client.post("/v1/files", files={"content": ("set.zip", image_zip(["ann.jpg", "bob.png", "cy.jpeg"]))})
    given = {"input_images": upload.json()["urls"]["get"], "steps": 30, "trigger_word": "ZQX", "lora_rank": 8}
    created = await simulator.create_training(FLUX, DEST, given)
    done = await wait_for(simulator, created["id"], terminal)
    logs = done["logs"]
    in_order(logs, [
        "| INFO  | [ Initiating ] chunk_size=150M dest=. url=", '| INFO  | [ Complete ] dest=. size="34 GB" total_elapsed=',
        "Downloaded base weights in ", "Extracted 3 files from zip to input_images",
        "Loading checkpoint shards:   0%|", "Caption for input_images/ann.jpg: ", "Caption for input_images/cy.jpeg: ",
        "Starting train job\n{\n", '"trigger_word": "ZQX"', '"steps": 30,', "Using EMA",
        "#############################################\n# Running job: flux_train_replicate\n", "Running  1 process",
        "Loading Flux model", "Loading transformer", "Quantizing transformer", "Loading vae", "Loading t5",
        "Loading clip", "making pipe", "preparing", "create LoRA network. base dim (rank): 8, alpha: 8",
        "create LoRA for U-Net: 494 modules.", "enable LoRA for U-Net", "Dataset: input_images",
        "-  Preprocessing image dimensions", "100%|██████████| 3/3 [", "-  Found 3 images", "1024x1024: 3 files",
        "Caching latents for input_images", "Caching latents: 100%|██████████| 3/3 [",
        # ai-toolkit (bedb819): the bar ends at steps − 1; without W&B no mid-run save; every save
        # prints the optimizer's path
        "flux_train_replicate:   0%|          | 0/30 [00:00<?, ?it/s]",
        "flux_train_replicate:  97%|█████████▋| 29/30 [",
        "Saved to output/flux_train_replicate/optimizer.pt",
        "output/flux_train_replicate/lora.safetensors",
    ])
    lines = logs.splitlines()
    assert logs.endswith("\n") and all(line and line == line.strip() for line in lines)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \| INFO  \| \[ Initiating \]", lines[0])
    assert re.search(r"^Downloaded base weights in \d+\.\d{6,} seconds$", logs, re.M)

    bars = [FLUX_BAR.match(line) for line in lines if line.startswith("flux_train_replicate:")]
    # the first, then update(step - n) after each iteration (0 … 29), then close() shows it again
    assert all(bars) and [int(m.group(2)) for m in bars] == [0, *range(30), 29]  # type: ignore[union-attr]
    for match in bars[1:]:
        step = int(match.group(2))  # type: ignore[union-attr]
        assert int(match.group(1)) == round(100 * step / 30)  # type: ignore[union-attr]
    assert not any(OFFICIAL_PARSER.match(line) for line in lines if line.startswith("flux_train_replicate:"))
    assert any(OFFICIAL_PARSER.match(line) for line in lines)  # the preprocessing bars do match

    assert done["status"] == "succeeded"
    version = done["output"]["version"]
    assert re.fullmatch(rf"{DEST}:[0-9a-f]{{64}}", version) and done["output"]["weights"].startswith("https://")
    assert 0 < done["metrics"]["predict_time"] <= done["metrics"]["total_time"]
    assert simulator.model(DEST)["latest_version"]["id"] == version.split(":")[1]


def finished(sim: Simulator, trainer: str, given: dict[str, Any], script: str | None = None) -> dict[str, Any]:
    sim.add_model(DEST)
    return sim.add_finished_training(trainer, DEST, given, script=script, ended_ago=600)


async def test_sdxl_prints_preprocessing_pti_and_a_bare_bar(simulator: Simulator) -> None:
    async with api(simulator) as client:
        upload = await client.post("/v1/files", files={"content": ("set.zip", image_zip([f"{i}.jpg" for i in range(12)]))})
    done = finished(simulator, SDXL, {"input_images": upload.json()["urls"]["get"], "max_train_steps": 50})
    # replicate/cog-sdxl@c79cb3c: weights are fetched inside preprocessing; one bar over the steps
    # whose description changes every step; 12 images in batches of 4 = 3 per epoch, 17 epochs
    in_order(done["logs"], [
        "Image files:  ", "Generating 12 captions...", "downloading url:  https://weights.replicate.delivery/",
        "downloading to:  ./blip", "downloading took:  ", "100%|██████████| 12/12 [", "Generating 12 masks...",
        "12it [", "Upscaling 12 images...", "downloading url:  https://weights.replicate.delivery/default/sdxl/",
        "# PTI : Loaded models", "# PTI :  Num examples = 12", "# PTI :  Total optimization steps = 50",
        "0%|          | 0/50 [00:00<?, ?it/s]", "# PTI :  Pivot halfway", "# PTI :step: 49, epoch: 16: 100%|██████████| 50/50 [",
        "# PTI :step: 50, epoch: 16: 51it [", "Saving final model for return", "training_out/lora.safetensors",
    ])
    steps = [int(n) for n in re.findall(r"\| (\d+)/50 \[", done["logs"])]
    assert steps == [0] + [n for n in range(1, 51) for _ in range(2)]  # update(1), then set_description
    assert done["status"] == "succeeded"
    # the created_at < started_at < completed_at story holds for past trainings too
    assert done["created_at"] < done["started_at"] < done["completed_at"]


async def test_a_past_training_ends_when_asked_and_its_log_is_on_its_clock() -> None:
    from core.models import parse_time

    now = 1_726_000_000.0
    sim = Simulator(clock=lambda: now)
    sim.add_model(DEST)
    done = sim.add_finished_training(FLUX, DEST, {"input_images": IMAGES, "steps": 50}, ended_ago=600)
    started, completed = parse_time(done["started_at"]), parse_time(done["completed_at"])
    assert started and completed and completed.timestamp() == pytest.approx(now - 600, abs=1e-6)
    first = re.match(r"^(\S+) \| INFO", done["logs"])
    assert first and 0 <= parse_time(first.group(1)).timestamp() - int(started.timestamp()) <= 1  # type: ignore[union-attr]


async def test_llama_prints_downloads_markers_and_a_loss_per_step(simulator: Simulator) -> None:
    rows = b"".join(b'{"prompt": "q%d", "completion": "a"}\n' % i for i in range(40))
    async with api(simulator) as client:
        upload = await client.post("/v1/files", files={"content": ("rows.jsonl", rows)})
    done = finished(simulator, LLAMA, {"train_data": upload.json()["urls"]["get"], "num_train_epochs": 2, "train_batch_size": 1})
    logs = done["logs"]
    # replicate/cog-llama-template@845e24f: 4 validation rows from the tail, 36 to train; 4 ranks
    # take 9 each in batches of 1: 9 steps per epoch, every rank drawing its own (blue) bar
    in_order(logs, [
        "Downloading weights to models/llama-2-7b/", "Downloading  https://weights.replicate.delivery/default/llama-2-7b/",
        "Number of GPUs: 4", "'--nproc_per_node=4'", "'--num_epochs=2'", "--> Training Set Length = 36",
        "Training Epoch0:   0%|\x1b[34m", "step 0 is completed and loss is tensor(", "step 8 is completed and loss is ",
        "evaluating Epoch:", "we are about to save the PEFT modules", "Training Epoch1:",
        "PEFT modules are saved in training_output directory", "training_output/adapter_model.bin",
    ])
    losses = [float(m.group(2)) for m in re.finditer(r"^step (\d+) is completed and loss is tensor\((\d+\.\d+), device='cuda:0'\)$", logs, re.M)]
    assert len(losses) == 18 and logs.count("| 9/9 [") == 2 * 4
    assert sum(losses[:5]) / 5 > sum(losses[-5:]) / 5  # decays, with noise


async def test_loss_decays_with_noise_over_a_long_flux_run(simulator: Simulator) -> None:
    done = finished(simulator, FLUX, {"input_images": IMAGES, "steps": 400, "autocaption": False})
    losses = [float(x) for x in re.findall(r"loss: (\d\.\d{3}e[-+]\d\d)\]$", done["logs"], re.M)]
    assert len(losses) == 401  # a refresh per step (0 … 399), and close() draws the last again
    first, last = sum(losses[:100]) / 100, sum(losses[-100:]) / 100
    assert first > last * 1.2
    assert len(set(losses)) > 350  # noisy, not a smooth curve
    rates = re.findall(r", +(\d+\.\d\d)(it/s|s/it), lr", done["logs"])
    per_step = [float(v) if unit == "s/it" else 1 / float(v) for v, unit in rates[5:]]
    assert 0.85 < sum(per_step) / len(per_step) < 1.2  # about a second per step at speed 1


async def test_a_default_flux_run_takes_about_two_minutes_at_speed_ten(simulator: Simulator) -> None:
    done = finished(simulator, FLUX, {"input_images": IMAGES})  # 1,000 steps, autocaption on
    from core.models import parse_time

    started, completed = parse_time(done["started_at"]), parse_time(done["completed_at"])
    assert started and completed
    assert 100 <= (completed - started).total_seconds() / 10 <= 140


async def test_qwen_prints_the_wrapper_and_ai_toolkit_raw(simulator: Simulator) -> None:
    done = finished(simulator, QWEN, {"dataset": IMAGES, "steps": 120, "lora_rank": 16})
    logs = done["logs"]
    job = re.search(r"^INFO:__main__:Starting training: (qwen_lora_\d{10})$", logs, re.M)
    assert job, "the wrapper's job name: qwen_lora_<unix time>"
    name = job.group(1)
    # replicate/qwen-image-lora-trainer@09386ee on ostris/ai-toolkit@1755e58, passed through raw
    in_order(logs, [
        "INFO:__main__:Extracted ", "INFO:__main__:Training: 120 steps, rank 16, adamw, batch 1",
        "Running 1 job\n{\n", '    "datasets": [', '        "steps": 120,', "\n}\n\n#####",
        f"# Running job: {name}\n", "Running  1 process", "Loading Qwen Image model", "Loading transformer",
        "\rLoading checkpoint shards: 100%|██████████| 9/9 [", "Text Encoder", "| 4/4 [", "Loading VAE",
        "Making pipe", "Preparing Model", "Model Loaded", "create LoRA for U-Net: 840 modules.",
        "Dataset: /src/input_images\n  -  Preprocessing image dimensions", "512x512: ", "768x768: ", "1024x1024: ",
        "Generating baseline samples before training\n\rGenerating Images: 0it [00:00, ?it/s]\r ",
        f"\r{name}:   0%|\x1b[34m          \x1b[0m| 0/120 [00:00<?, ?it/s]",
        f"\r{name}:  99%|\x1b[34m█████████▉\x1b[0m| 119/120 [",  # the bar ends at steps − 1
        f"Saved checkpoint to /src/output/{name}/{name}.safetensors\n", f"Saved optimizer to /src/output/{name}/optimizer.pt",
        "INFO:__main__:Training completed\n", f"INFO:__main__:Created /tmp/{name}_trained.zip (",
    ])
    refreshes = re.findall(rf"\r{name}: +\d+%\|[^|]*\| (\d+)/120 \[[^\]]*, lr: 2\.0e-04 loss: (\S+)\]", logs)
    # set_postfix_str at n (step − 1), then update to `step`: two refreshes a step, then close()
    assert [int(n) for n, _ in refreshes] == [0, 0, *(n for step in range(1, 120) for n in (step - 1, step)), 119]
    assert all(line.endswith("\n") or "\r" in line for line in logs.splitlines(keepends=True))
    assert done["status"] == "succeeded"


async def test_diffusers_dreambooth_prints_accelerate_lines_and_a_steps_bar(simulator: Simulator) -> None:
    done = finished(simulator, FLUX, {"input_images": IMAGES, "steps": 12, "checkpointing_steps": 5}, "diffusers")
    logs = done["logs"]
    stamp = r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d"
    # huggingface/diffusers@5700e52 train_dreambooth_lora_flux.py as lucataco/cog-diffusers-dreambooth-lora runs it
    in_order(logs, [
        "Using seed: ", "Extracted ", "Using params: ['accelerate', 'launch', ", "'--max_train_steps', '12'",
        " - INFO - __main__ - Distributed environment: ", "Mixed precision type: bf16", "Loading checkpoint shards: 100%",
        " - WARNING - __main__ - Learning rate is too low.", " - INFO - __main__ - ***** Running training *****",
        " - INFO - __main__ -   Total optimization steps = 12", "Steps:   0%|          | 0/12 [00:00<?, ?it/s]",
        "Steps:   8%|▊         | 1/12 [", "Steps:   8%|▊         | 1/12 [",
        " - INFO - accelerate.accelerator - Saving current state to /tmp/train/output/flux_train_replicate/checkpoint-5\n",
        "\nModel weights saved in /tmp/train/output/flux_train_replicate/checkpoint-5/pytorch_lora_weights.safetensors\n",
        " - INFO - accelerate.checkpointing - Optimizer state saved in ", " - INFO - __main__ - Saved state to ",
        "checkpoint-10", "Steps: 100%|██████████| 12/12 [",
        "\nModel weights saved in /tmp/train/output/flux_train_replicate/pytorch_lora_weights.safetensors\n",
        "Loading pipeline components...:   0%|", "Loaded transformer as FluxTransformer2DModel", "| 7/7 [",
        "Loading transformer.", "Steps: 100%|██████████| 12/12 [", "./output/flux_train_replicate/lora.safetensors",
    ])
    assert re.search(rf"^{stamp} - INFO - __main__ - \*\*\*\*\* Running training \*\*\*\*\*$", logs, re.M)
    steps = [(int(n), post) for n, post in re.findall(r"^Steps: +\d+%\|[^|]*\| (\d+)/12 \[[^\],]*,[^\],]*(.*)\]$", logs, re.M)]
    # update(1) keeps the last postfix, then set_postfix(loss=…, lr=…) redraws the same step
    assert [n for n, _ in steps] == [0, *(n for step in range(1, 13) for n in (step, step)), 12]
    assert steps[0][1] == steps[1][1] == ""
    assert all(re.fullmatch(r", loss=[\d.e-]+, lr=0\.0004", post) for _, post in steps[2:])
    assert "checkpoint-15" not in logs and logs.count("Saving current state to ") == 2
    assert done["status"] == "succeeded"


@pytest.mark.parametrize("script", sorted(name for name, s in SCRIPTS.items() if s.outcome == "failed"))
async def test_failing_scripts_end_with_a_flush_left_traceback_and_an_error(simulator: Simulator, script: str) -> None:
    trainer = SCRIPTS[script].trainer
    given = {FLUX: {"input_images": IMAGES, "steps": 40}, SDXL: {"input_images": IMAGES},
             LLAMA: {"train_data": "https://files.example.test/rows.jsonl"}, QWEN: {"dataset": IMAGES, "steps": 100}}[trainer]
    done = finished(simulator, trainer, given, script)
    assert done["status"] == "failed" and done["error"]
    assert "output" not in done
    lines = done["logs"].splitlines()
    start = lines.index("Traceback (most recent call last):")
    # indentation stripped, like Cog; kept by the newest runtime, which passes `\r` through too
    frame = '  File "/' if "\r" in done["logs"] else 'File "/'
    assert any(line.startswith(frame) for line in lines[start:])
    assert done["error"] in "\n".join(lines[start:]) or done["error"].startswith("Training failed!")


async def test_a_failure_over_http_stops_the_bar_and_keeps_the_message(simulator: Simulator) -> None:
    simulator.speed = 2000
    simulator.add_model(DEST)
    async with api(simulator) as client:
        response = await client.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings",
                                     json={"destination": DEST, "input": {**QUICK_FLUX, "steps": 60}},
                                     headers={"X-Simulator-Script": "flux-fail"})
    done = await wait_for(simulator, response.json()["id"], terminal)
    assert done["status"] == "failed" and done["error"].startswith("CUDA out of memory.")
    assert done["logs"].splitlines()[-1] == f"torch.OutOfMemoryError: {done['error']}"
    last_bar = [m for m in map(FLUX_BAR.match, done["logs"].splitlines()) if m][-1]
    assert 0 < int(last_bar.group(2)) < 60
    assert "completed_at" in done and done["metrics"]["predict_time"] > 0


async def test_same_seed_same_run_and_another_seed_another_run() -> None:
    async def run(seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        sim = Simulator(speed=5000, seed=seed, clock=lambda: 1_726_000_000.25)
        await sim.start()
        try:
            sim.add_model(DEST)
            live = [await sim.create_training(FLUX, DEST, {**QUICK_FLUX, "steps": 25}),
                    await sim.create_training(LLAMA, DEST, {"train_data": "https://f.example.test/r.jsonl", "max_steps": 15})]
            past = sim.add_finished_training(SDXL, DEST, {"input_images": IMAGES, "max_train_steps": 30})
            done = [await wait_for(sim, t["id"], terminal) for t in live]
            # everything but `urls`, which name the (random) port
            return [d["id"] for d in done] + [past["id"]], [{**t, "urls": None} for t in (*done, past)]
        finally:
            await sim.stop()

    ids_a, runs_a = await run(7)
    ids_b, runs_b = await run(7)
    ids_c, runs_c = await run(8)
    assert ids_a == ids_b and runs_a == runs_b  # logs, outputs, timestamps, everything
    assert ids_a != ids_c
    assert all(a["logs"] != c["logs"] for a, c in zip(runs_a, runs_c))


# ---- lifecycle ------------------------------------------------------------------------------------


async def test_cancel_mid_run_stops_the_logs(simulator: Simulator) -> None:
    simulator.speed = 1000
    simulator.add_model(DEST)
    created = await simulator.create_training(FLUX, DEST, {**QUICK_FLUX, "steps": 3000})
    await wait_for(simulator, created["id"], lambda t: "flux_train_replicate:   1%" in t["logs"])
    async with api(simulator) as client:
        response = await client.post(f"/v1/trainings/{created['id']}/cancel")
        assert response.status_code == 200
        canceled = response.json()
        assert canceled["status"] == "canceled" and TIME6.match(canceled["completed_at"])
        assert canceled["metrics"]["predict_time"] > 0
        await asyncio.sleep(0.3)
        assert (await client.get(f"/v1/trainings/{created['id']}")).json() == canceled  # logs stopped
        again = await client.post(f"/v1/trainings/{created['id']}/cancel")
        assert again.status_code == 200 and again.json() == canceled


async def test_status_only_moves_forward(simulator: Simulator) -> None:
    simulator.speed = 3000
    simulator.add_model(DEST)
    created = await simulator.create_training(FLUX, DEST, QUICK_FLUX)
    seen: list[str] = []
    while not seen or seen[-1] not in ("succeeded", "failed"):
        status = simulator.training(created["id"])["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        await asyncio.sleep(0.002)
    assert seen == ["starting", "processing", "succeeded"]


async def test_a_stuck_training_stays_starting_until_canceled(simulator: Simulator) -> None:
    simulator.speed = 1000
    simulator.add_model(DEST)
    simulator.faults.stuck_next = 1
    stuck = await simulator.create_training(FLUX, DEST, QUICK_FLUX)
    normal = await simulator.create_training(FLUX, DEST, QUICK_FLUX)
    await wait_for(simulator, normal["id"], terminal)
    still = simulator.training(stuck["id"])
    assert still["status"] == "starting" and still["logs"] == "" and "started_at" not in still
    canceled = simulator.cancel_training(stuck["id"])
    assert canceled["status"] == "canceled" and "predict_time" not in canceled["metrics"]


async def test_the_demo_scenario_queues_one_behind_the_others() -> None:
    sim = Simulator(speed=3000, seed=0)
    await sim.start()
    try:
        created = await sim.run_scenario("demo")
        assert len(created) == 7
        past, live, queued = created[:2], created[2:6], created[6]
        assert [t["status"] for t in past] == ["succeeded", "succeeded"]
        assert {t["model"] for t in live} == {FLUX, SDXL, LLAMA}
        await wait_for(sim, live[0]["id"], lambda t: t["status"] == "processing")
        assert sim.training(queued["id"])["status"] == "starting"
        ended = [await wait_for(sim, t["id"], terminal, timeout=20) for t in live]
        assert [t["status"] for t in ended] == ["succeeded", "succeeded", "succeeded", "failed"]
        last = await wait_for(sim, queued["id"], terminal, timeout=20)
        assert last["status"] == "succeeded"
        assert last["started_at"] > max(t["completed_at"] for t in ended)
    finally:
        await sim.stop()


async def test_the_many_scenario_fills_more_than_a_page_of_history(simulator: Simulator) -> None:
    created = await simulator.run_scenario("many")
    assert len(created) == 151
    async with api(simulator) as client:
        first = (await client.get("/v1/trainings")).json()
        second = (await client.get(first["next"])).json()
    assert len(first["results"]) == 100 and len(second["results"]) == 51 and second["next"] is None
    assert first["results"][0]["id"] == created[-1]["id"]  # the running one is the newest
    statuses = {t["status"] for t in first["results"] + second["results"]}
    assert {"succeeded", "failed"} <= statuses
    with pytest.raises(ReplitrackError, match="demo, flaky, many"):
        await simulator.run_scenario("nothing")


async def test_pagination_follows_cursors_both_ways(simulator: Simulator, replicate_spec: Any) -> None:
    simulator.add_model(DEST)
    simulator.faults.stuck_next = 130  # cheap: they never run
    ids = [(await simulator.create_training(FLUX, DEST, QUICK_FLUX))["id"] for _ in range(130)]
    newest_first = ids[::-1]
    async with api(simulator) as client:
        first = (await client.get("/v1/trainings")).json()
        replicate_spec.validate(first, "/trainings")
        assert [t["id"] for t in first["results"]] == newest_first[:100] and first["previous"] is None
        extra = await simulator.create_training(FLUX, DEST, QUICK_FLUX)  # arrives between pages
        second = (await client.get(first["next"])).json()
        replicate_spec.validate(second, "/trainings")
        assert [t["id"] for t in second["results"]] == newest_first[100:] and second["next"] is None
        back = (await client.get(second["previous"])).json()
        assert [t["id"] for t in back["results"]] == newest_first[:100]
        assert back["previous"] is not None  # the one created meanwhile is newer still
        newest = (await client.get(back["previous"])).json()
        assert [t["id"] for t in newest["results"]] == [extra["id"]]
        bad = await client.get("/v1/trainings", params={"cursor": "garbage!"})
        assert bad.status_code == 400


# ---- faults ---------------------------------------------------------------------------------------


async def test_throttling_answers_replicates_429(simulator: Simulator) -> None:
    simulator.faults.throttle_next = 2
    async with api(simulator) as client:
        answers = [await client.get("/v1/account") for _ in range(3)]
    for throttled in answers[:2]:
        assert throttled.status_code == 429
        assert throttled.json() == {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}
        assert throttled.headers["content-type"].startswith("application/problem+json")
        assert throttled.headers["ratelimit-remaining"] == "0"
        assert throttled.headers["ratelimit-reset"] == "30" and throttled.headers["retry-after"] == "30"
    assert answers[2].status_code == 200


async def test_server_errors_next_n_and_only_for_chosen_methods(simulator: Simulator) -> None:
    simulator.faults.error_next = 2
    simulator.faults.error_status = 503
    simulator.faults.methods = frozenset({"POST"})
    async with api(simulator) as client:
        assert (await client.get("/v1/account")).status_code == 200
        failed = [await client.post("/v1/models", json={}) for _ in range(3)]
    assert [r.status_code for r in failed] == [503, 503, 422]
    assert failed[0].json()["status"] == 503 and failed[0].json()["title"] == "Service Unavailable"


async def test_probabilistic_faults_replay_with_the_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        sim = Simulator(seed=seed)
        sim.faults = Faults(throttle_probability=0.2, error_probability=0.2)  # still seeded
        await sim.start()
        try:
            async with api(sim) as client:
                return [(await client.get("/v1/account")).status_code for _ in range(30)]
        finally:
            await sim.stop()

    first, again, other = await statuses(3), await statuses(3), await statuses(4)
    assert first == again and first != other
    assert {200, 429, 500} <= set(first)


async def test_slow_answers_take_the_configured_delay(simulator: Simulator) -> None:
    simulator.faults.slow_seconds = 0.3
    async with api(simulator) as client:
        started = time.monotonic()
        assert (await client.get("/v1/account")).status_code == 200
        assert time.monotonic() - started >= 0.3
        simulator.faults.clear()
        started = time.monotonic()
        await client.get("/v1/account")
        assert time.monotonic() - started < 0.3


def test_fault_flags_parse_and_reject_nonsense() -> None:
    faults = Faults()
    for spec in ("throttle=0.1", "error-next=3", "error-status=502", "slow=0.25", "duplicate-webhooks-next=2",
                 "methods=get,post", "stuck_next=1"):
        faults.apply(spec)
    assert (faults.throttle_probability, faults.error_next, faults.error_status, faults.slow_seconds) == (0.1, 3, 502, 0.25)
    assert faults.duplicate_webhooks_next == 2 and faults.methods == {"GET", "POST"} and faults.stuck_next == 1
    for bad in ("throttle", "throttle=2", "error-status=404", "nope=1", "slow=-1", "error-next=x"):
        with pytest.raises(BadFaultSpecError) as error:
            faults.apply(bad)
        assert isinstance(error.value, ReplitrackError) and "fault" in str(error.value)


def test_bad_constructor_arguments_are_reported_clearly() -> None:
    with pytest.raises(ReplitrackError, match="speed"):
        Simulator(speed=0)
    with pytest.raises(ReplitrackError, match="demo"):
        Simulator(scenario="nonexistent")


# ---- `replitrack sim` -----------------------------------------------------------------------------

# Only the sim command is registered, so other commands' work in progress cannot break these tests.
CLI = [sys.executable, "-c", "import sys, tui.cli.main as c; c.COMMAND_MODULES[:] = ['sim']; sys.exit(c.main(sys.argv[1:]))", "sim"]


def test_the_sim_command_serves_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [*CLI, "--speed", "100", "--seed", "3", "--scenario", "demo", "--fault", "throttle-next=1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        printed = []
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        text = "".join(printed)
        export = re.search(r"export REPLICATE_BASE_URL=(http://127\.0\.0\.1:\d+) REPLICATE_API_TOKEN=(\S+)", text)
        assert export, text
        assert re.search(r"webhook secret: whsec_\S+", text)
        base_url, token = export.groups()
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/v1/account").status_code == 429  # the --fault
            listing = client.get("/v1/trainings")
            assert listing.status_code == 200 and len(listing.json()["results"]) == 7  # the demo scenario
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Simulator stopped." in out and "Traceback" not in err


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`replitrack sim ...` in this process, through the real entry point."""
    import tui.cli.main

    monkeypatch.setattr(tui.cli.main, "COMMAND_MODULES", ["sim"])
    return tui.cli.main.main(["sim", *args])


def test_the_sim_command_reports_a_port_in_use(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli(monkeypatch, "--port", str(port)) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err


@pytest.mark.parametrize("args, message", [
    (["--fault", "throttle=7"], "probability"),
    (["--scenario", "nope"], "demo"),
])
def test_the_sim_command_explains_bad_options(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    assert run_cli(monkeypatch, *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("replitrack: ") and message in err


def test_the_sim_command_rejects_a_bad_speed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli(monkeypatch, "--speed", "0")
    assert exited.value.code == 64 and "greater than 0" in capsys.readouterr().err


def test_the_sim_help_names_every_scenario() -> None:
    from tui.cli.sim import SCENARIO_HELP

    assert all(name in SCENARIO_HELP for name in SCENARIOS)
