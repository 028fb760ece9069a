"""The changing commands (`train`, `cancel`, `retry`, `sync`) as subprocesses against the simulated
Replicate, when no replitrack instance owns the store (they use it directly)."""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli_helpers import cli_env, run
from core.store import Store
from core.views import STATUS_KEYS
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
IMAGES = "https://example.invalid/portraits.zip"
DEST = "demo-user/portraits"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=400.0, seed=7)
    await simulator.start()
    simulator.add_model(DEST)
    yield simulator
    await simulator.stop()


def env_for(sim: Simulator, **extra: str) -> dict[str, str]:
    return cli_env(sim.base_url, sim.token, **extra)


def stored(training_id: str) -> dict | None:
    with Store(readonly=True) as store:
        return store.get(training_id)


# ----- train -----------------------------------------------------------------------------------

async def test_train_uploads_a_folder_and_parses_inputs(sim: Simulator, tmp_path: Path) -> None:
    images = tmp_path / "photos"
    (images / "nested").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "nested/c.webp"):
        (images / name).write_bytes(b"\x89fake image " + name.encode())
    (images / ".DS_Store").write_bytes(b"junk")

    result = await run("train", FLUX, "--destination", DEST, "--images", str(images),
                       "-i", "steps=25", "-i", "autocaption=false", "-i", "trigger_word=PRTRT",
                       "-i", "resolution=512", "-i", "learning_rate=1e-4", env=env_for(sim))
    assert result.code == 0, result.err
    tid = result.out.strip()
    remote = sim.training(tid)
    assert remote["input"]["steps"] == 25 and remote["input"]["autocaption"] is False
    assert remote["input"]["trigger_word"] == "PRTRT"
    assert remote["input"]["resolution"] == "512", "a number given to a string input stays text"
    assert remote["input"]["learning_rate"] == 0.0001
    assert remote["input"]["input_images"].startswith(sim.base_url + "/v1/files/")
    assert "uploading photos.zip" in result.err and f"started {tid}" in result.err

    record = stored(tid)
    assert record is not None and record["destination"] == DEST and record["status"] == "starting"

    follow = await run("logs", tid, "--follow", "--interval", "0.1", env=env_for(sim))
    assert follow.code == 0
    assert "Extracted 3 files" in follow.out, "the zip held the three images and not the hidden file"


async def test_train_with_a_zip_and_json_and_watch(sim: Simulator, tmp_path: Path) -> None:
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("one.jpg", b"x")
        zipped.writestr("two.jpg", b"y")
    result = await run("train", f"{FLUX}:{sim.model(FLUX)['latest_version']['id']}", "-d", DEST,
                       "--images", str(archive), "-i", "steps=5", "-i", "autocaption=false",
                       "--json", "--watch", "--interval", "0.1", env=env_for(sim))
    assert result.code == 0, result.err
    lines = result.json_lines()  # with --json and --watch, stdout is JSON lines throughout
    assert all(list(view) == list(STATUS_KEYS) for view in lines)
    assert lines[0]["status"] == "starting" and lines[-1]["status"] == "succeeded", "--watch follows it to the end"
    assert sim.training(lines[0]["id"])["status"] == "succeeded"


async def test_train_rejects_unknown_inputs_listing_the_valid_ones(sim: Simulator) -> None:
    result = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", "stepz=10", env=env_for(sim))
    assert result.code == 64
    assert "has no input 'stepz'" in result.err and "steps" in result.err and "trigger_word" in result.err
    assert not sim.trainings(), "nothing was started"


@pytest.mark.parametrize(("flag", "message"), [
    ("steps=many", "input steps must be a whole number"),
    ("steps=1", "input steps must be at least 3"),
    ("autocaption=maybe", "input autocaption must be true or false"),
    ("=3", "write inputs as key=value"),
])
async def test_train_checks_input_values(sim: Simulator, flag: str, message: str) -> None:
    result = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", flag, env=env_for(sim))
    assert result.code == 64 and message in result.err


async def test_train_requires_images_for_an_image_trainer(sim: Simulator) -> None:
    result = await run("train", FLUX, "-d", DEST, env=env_for(sim))
    assert result.code == 64 and "needs 'input_images'" in result.err and "--images" in result.err


async def test_train_destination_missing_then_created(sim: Simulator) -> None:
    result = await run("train", FLUX, "-d", "demo-user/brand-new", "--images", IMAGES, env=env_for(sim))
    assert result.code == 1
    assert "destination model demo-user/brand-new does not exist" in result.err
    assert "--create-destination" in result.err

    result = await run("train", FLUX, "-d", "demo-user/brand-new", "--images", IMAGES, "--create-destination",
                       env=env_for(sim))
    assert result.code == 0, result.err
    assert "created the destination model demo-user/brand-new" in result.err
    assert sim.model("demo-user/brand-new")["name"] == "brand-new"


async def test_train_bad_destination_and_missing_images(sim: Simulator, tmp_path: Path) -> None:
    result = await run("train", FLUX, "-d", "no-slash", env=env_for(sim))
    assert result.code == 64 and "destination 'no-slash' is not of the form owner/name" in result.err
    result = await run("train", FLUX, "-d", DEST, "--images", str(tmp_path / "nope"), env=env_for(sim))
    assert result.code == 64 and "no such file or folder" in result.err
    (tmp_path / "empty").mkdir()
    result = await run("train", FLUX, "-d", DEST, "--images", str(tmp_path / "empty"), env=env_for(sim))
    assert result.code == 64 and "holds no images" in result.err


async def test_train_unknown_trainer(sim: Simulator) -> None:
    result = await run("train", "nobody/nothing", "-d", DEST, env=env_for(sim))
    assert result.code == 1 and "404: model nobody/nothing not found on Replicate" in result.err


async def test_train_with_a_webhook_asks_for_every_event(sim: Simulator) -> None:
    hook = "http://127.0.0.1:9/hooks/replicate"  # nothing listens: deliveries fail, and are recorded
    result = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", "steps=5", "--webhook", hook,
                       env=env_for(sim))
    assert result.code == 0, result.err
    tid = result.out.strip()
    for _ in range(100):
        if any(d.training_id == tid and d.event == "completed" for d in sim.deliveries):
            break
        await asyncio.sleep(0.05)
    sent = [d for d in sim.deliveries if d.training_id == tid]
    assert {d.url for d in sent} == {hook}
    assert {"start", "completed"} <= {d.event for d in sent}, "start is only sent when asked for"
    bad = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "--webhook", "ftp://x", env=env_for(sim))
    assert bad.code == 64 and "is not an http(s) URL" in bad.err


async def test_train_listen_without_an_instance_says_what_to_do(sim: Simulator) -> None:
    result = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "--listen", env=env_for(sim))
    assert result.code == 1 and "start `replitrack listen`" in result.err


# ----- cancel, retry ---------------------------------------------------------------------------

async def start_training(sim: Simulator, *, steps: int = 60) -> str:
    """A training started by `replitrack train`, so the store knows its destination; it runs
    until canceled (held before its end)."""
    sim.hold(at="end")
    result = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", f"steps={steps}", env=env_for(sim))
    assert result.code == 0, result.err
    return result.out.strip()


async def test_cancel_then_retry(sim: Simulator) -> None:
    tid = await start_training(sim)
    env = env_for(sim)

    cancel = await run("cancel", tid, "--json", env=env)
    assert cancel.code == 0, cancel.err
    assert cancel.json()["status"] == "canceled" and list(cancel.json()) == list(STATUS_KEYS)
    assert sim.training(tid)["status"] == "canceled"
    assert stored(tid)["status"] == "canceled"

    again = await run("cancel", tid, env=env)
    assert again.code == 1 and "has already canceled: there is nothing to cancel" in again.err

    sim.hold(at="start")  # the retry stays queued: retrying it again is refused
    retry = await run("retry", tid, env=env)
    assert retry.code == 0, retry.err
    new_id = retry.out.strip()
    assert new_id != tid and f"a retry of {tid}" in retry.err
    new = sim.training(new_id)
    assert new["input"] == sim.training(tid)["input"] and new["model"] == FLUX
    assert stored(new_id)["destination"] == DEST

    busy = await run("retry", new_id, env=env)
    assert busy.code == 1 and "is still starting" in busy.err


async def test_cancel_by_destination_and_unknown(sim: Simulator) -> None:
    tid = await start_training(sim)
    env = env_for(sim)
    result = await run("cancel", DEST, env=env)
    assert result.code == 0 and result.out.strip() == tid
    result = await run("cancel", "aaaaaaaaaaaaaaaaaaaaaaaaaa", env=env)
    assert result.code == 1 and "404: training aaaaaaaaaaaaaaaaaaaaaaaaaa not found on Replicate" in result.err
    result = await run("retry", "aaaaaaaaaaaaaaaaaaaaaaaaaa", env=env)
    assert result.code == 1 and "no training 'aaaaaaaaaaaaaaaaaaaaaaaaaa' in the local store" in result.err


# ----- sync ------------------------------------------------------------------------------------

async def test_sync_shows_then_applies_differences(sim: Simulator) -> None:
    done = sim.add_finished_training(FLUX, DEST, {"input_images": IMAGES, "steps": 10})
    env = env_for(sim)
    preview = await run("sync", "--json", env=env)
    assert preview.code == 0
    report = preview.json()
    assert report["synced"] == [] and report["errors"] == []
    assert [(d["id"], d["local_status"], d["remote_status"]) for d in report["differences"]] == \
        [(done["id"], None, "succeeded")]
    assert stored(done["id"]) is None, "a preview changes nothing"
    human = await run("sync", env=env)
    assert done["id"] in human.out and "never imported" in human.out and "sync --all" in human.err

    applied = (await run("sync", "--all", "--json", env=env)).json()
    assert [(s["id"], s["outcome"]) for s in applied["synced"]] == [(done["id"], "created")]
    assert applied["synced"][0]["training"]["status"] == "succeeded"
    assert stored(done["id"])["output_version"] == done["output"]["version"]

    assert (await run("sync", "--json", env=env)).json()["differences"] == []
    assert "Everything is in sync" in (await run("sync", env=env)).out


async def test_sync_one_with_version_check(sim: Simulator) -> None:
    done = sim.add_finished_training(FLUX, DEST, {"input_images": IMAGES, "steps": 10})
    env = env_for(sim)
    first = (await run("sync", done["id"], "--json", env=env)).json()
    assert first["synced"][0]["outcome"] == "created"

    ok = await run("sync", DEST, "--version", done["output"]["version"], env=env)
    assert ok.code == 0 and done["id"] in ok.out

    wrong = await run("sync", DEST, "--version", f"{DEST}:{'0' * 64}", env=env)
    assert wrong.code == 1 and "not " + f"{DEST}:{'0' * 64}" in wrong.err

    bad = await run("sync", "--all", "--version", "x", env=env)
    assert bad.code == 64
