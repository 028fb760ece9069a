"""`replitrack try`, as a subprocess against the simulated Replicate: the PNG it saves, what it keeps
in the store, exit codes as `logs --follow`, and clear refusals. replitrack-python's view of the same
prediction is checked with the official client (replicate 1.0.x), an independent reader."""

from __future__ import annotations

import asyncio
import io
import resource
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import replicate
from PIL import Image

from cli_helpers import ROOT, Result, cli_env, run
from core.store import Store
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
DEST = "demo-user/faces"
FAST = ("--interval", "0.05")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=400.0, seed=11)
    await simulator.start()
    yield simulator
    await simulator.stop()


def env_for(sim: Simulator) -> dict[str, str]:
    return cli_env(sim.base_url, sim.token)


def finished(sim: Simulator, dest: str = DEST, trainer: str = FLUX) -> dict:
    sim.add_model(dest)
    inputs = ({"input_images": "https://files.example.test/faces.zip", "steps": 20, "trigger_word": "TOK"}
              if trainer == FLUX else {"train_data": "https://files.example.test/rows.jsonl"})
    return sim.add_finished_training(trainer, dest, inputs, ended_ago=30)


async def test_try_saves_the_png_and_keeps_the_try_with_the_training(sim: Simulator, tmp_path: Path,
                                                                     isolated_home: Path) -> None:
    training = finished(sim)
    out = tmp_path / "outs"
    result = await run("try", training["id"], "--prompt", "a photo of TOK", "-i", "seed=5", "--out", str(out),
                       *FAST, env=env_for(sim))
    assert result.code == 0, result.err
    [path] = [Path(line) for line in result.out.splitlines()]
    assert path.parent == out and path.suffix == ".png"
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (1024, 1024)
    assert "Using seed: 5" in result.err and "28it [" in result.err

    [prediction] = sim.predictions.all()
    assert path.name == f"{prediction['id']}-out-0.png"
    client = replicate.Client(api_token=sim.token, base_url=sim.base_url)
    seen = await client.predictions.async_get(prediction["id"])
    assert seen.status == "succeeded" and seen.input == {"prompt": "a photo of TOK", "seed": 5}
    assert seen.version == training["output"]["version"].split(":")[1]

    with Store(isolated_home, readonly=True) as store:
        [kept] = store.get(training["id"])["predictions"]
        assert kept["id"] == prediction["id"] and kept["status"] == "succeeded"
        assert kept["input"]["prompt"] == "a photo of TOK" and kept["metrics"]["predict_time"] > 0
        [saved] = kept["files"]
        assert (isolated_home / saved).read_bytes() == path.read_bytes()
        assert "Using seed: 5" in store.read_log(prediction["id"])


async def test_try_json_and_a_text_model(sim: Simulator, tmp_path: Path) -> None:
    training = finished(sim, "demo-user/chat", "meta/llama-2-7b")
    result = await run("try", training["id"], "--prompt", "Hi", "-i", "max_new_tokens=3", "--json",
                       "--out", str(tmp_path), *FAST, env=env_for(sim))
    assert result.code == 0, result.err
    data = result.json()
    assert data["status"] == "succeeded" and data["output"] == ["A", " photo", " of"] and data["files"] == []
    assert data["training_id"] == training["id"] and data["billed_seconds"] > 0
    plain = await run("try", "demo-user/chat", "--prompt", "Hi", "-i", "max_new_tokens=2", *FAST, env=env_for(sim))
    assert plain.code == 0 and plain.out == "A photo\n"


async def test_bad_inputs_are_refused_before_anything_is_sent(sim: Simulator) -> None:
    training = finished(sim)
    await run("status", training["id"], env=env_for(sim))  # now stored
    unknown = await run("try", DEST, "--prompt", "x", "-i", "colour=red", env=env_for(sim))
    assert unknown.code == 64
    assert "has no input 'colour'; its inputs are: lora_scale, num_inference_steps, num_outputs, prompt, seed" in unknown.err
    empty = await run("try", DEST, "--prompt", "  ", env=env_for(sim))
    assert empty.code == 64 and "the prompt is empty" in empty.err
    out_of_range = await run("try", DEST, "--prompt", "x", "-i", "num_outputs=9", env=env_for(sim))
    assert out_of_range.code == 64 and "num_outputs must be at most 4, not 9" in out_of_range.err
    nowhere = await run("try", "demo-user/nothing", "--prompt", "x", env=env_for(sim))
    assert nowhere.code == 1 and "no training 'demo-user/nothing'" in nowhere.err
    assert sim.predictions.all() == []


async def test_a_failed_prediction_exits_1_and_a_canceled_one_2(sim: Simulator, tmp_path: Path) -> None:
    training = finished(sim)
    sim.predictions.fail_next = 1
    # --json: the log (with the model's traceback) is not echoed to stderr
    failed = await run("try", training["id"], "--prompt", "x", "--out", str(tmp_path), "--json", *FAST,
                       env=env_for(sim))
    assert failed.code == 1 and "failed: CUDA out of memory" in failed.err
    assert failed.json()["status"] == "failed" and failed.json()["files"] == []

    sim.speed = 2  # slow enough to cancel it while it runs, from another client
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "try", training["id"], "--prompt", "x", "--out", str(tmp_path), *FAST,
        cwd=ROOT, env=env_for(sim), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    line = await asyncio.wait_for(process.stderr.readline(), 30)
    assert b"started prediction" in line
    pid = line.split()[2].decode()
    client = replicate.Client(api_token=sim.token, base_url=sim.base_url)
    await (await client.predictions.async_get(pid)).async_cancel()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2, err.decode()
    assert f"prediction {pid} canceled" in err.decode() and out == b""


async def test_a_download_that_cannot_be_written_is_reported(sim: Simulator, tmp_path: Path) -> None:
    """A real write failure: the command runs with a 40 kB file-size limit, and the PNG is larger."""
    training = finished(sim)
    await run("status", training["id"], env=env_for(sim))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "try", DEST, "--prompt", "x", "--out", str(tmp_path / "o"), *FAST,
        cwd=ROOT, env=env_for(sim), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    result = Result(process.returncode or 0, out.decode(), err.decode())
    assert result.code == 1, result.err
    assert "could not save" in result.err and "File too large" in result.err and "Traceback" not in result.err
    assert result.out == "" and not any((tmp_path / "o").glob("*.png"))
    [prediction] = sim.predictions.all()
    assert prediction["status"] == "succeeded"  # it ran; only the saving failed, and that is said
    with Store(readonly=True) as store:
        [kept] = store.get(training["id"])["predictions"]
        assert kept["files"] == [] and "File too large" in kept["download_error"]
    with Image.open(io.BytesIO(sim.predictions._records[prediction["id"]].files["out-0.png"])) as png:
        assert png.size == (1024, 1024)


async def test_beside_an_instance_that_owns_the_store_the_try_still_runs(sim: Simulator, tmp_path: Path,
                                                                         isolated_home: Path) -> None:
    from core.client import ReplicateClient
    from core.service import TrainingService

    training = finished(sim)
    owner = Store(isolated_home)  # this test process holds the store, as a running TUI would
    client = ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0)
    try:
        await TrainingService(owner, client).refresh(training["id"], source="sync")
        await owner.commit()
        result = await run("try", DEST, "--prompt", "a photo of TOK", "--out", str(tmp_path), *FAST,
                           env=env_for(sim))
        assert result.code == 0, result.err
        assert "owns the store: this try is not kept in the training's gallery" in result.err
        [path] = [Path(line) for line in result.out.splitlines()]
        with Image.open(path) as png:
            assert png.size == (1024, 1024)
        assert "predictions" not in owner.get(training["id"])
    finally:
        await client.aclose()
        owner.close()


async def test_ctrl_c_while_following_exits_130(sim: Simulator, tmp_path: Path) -> None:
    import signal

    training = finished(sim)
    sim.speed = 1
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "try", training["id"], "--prompt", "x", "--out", str(tmp_path), *FAST,
        cwd=ROOT, env=env_for(sim), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    assert b"started prediction" in await asyncio.wait_for(process.stderr.readline(), 30)
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130 and b"Traceback" not in err and out == b""
    assert b"interrupted: prediction" in err and b"goes on at Replicate" in err
