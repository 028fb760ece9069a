"""Try it, in the app: from a succeeded flux training's detail screen, `t` opens the try screen,
a prompt runs a prediction on the simulated Replicate, and the image shows in the terminal
(half-blocks here: the tests run without a terminal that speaks Kitty graphics or Sixel)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from textual.widgets import Input

from core.client import ReplicateClient
from core.predictions import Tryer
from core.service import TrainingService
from core.store import Store
from sample_data import T0
from simulator import Simulator
from tui.app import create_app
from tui.screens.try_model import TryScreen, denoise_fraction
from tui_support import FLUX, SIZE, screen_text, simulated, wait_for

DEST = "demo-user/faces"


def finished(sim: Simulator) -> dict[str, Any]:
    sim.add_model(DEST)
    return sim.add_finished_training(FLUX, DEST, {"input_images": "https://x.test/a.zip", "steps": 20,
                                                  "trigger_word": "TOK"}, ended_ago=30)


async def test_try_from_the_detail_screen_shows_the_image_and_keeps_a_gallery() -> None:
    async with simulated(speed=400) as env:
        training = finished(env.sim)
        await env.service.refresh(training["id"], source="sync")
        app = env.app()
        app.try_poll_seconds = 0.05  # type: ignore[attr-defined]
        opened: list[str] = []
        app.open_url = lambda url, **_: opened.append(url)  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            app.open_detail(training["id"])
            await pilot.pause()
            await pilot.press("t")
            screen = await wait_for(pilot, lambda: isinstance(app.screen, TryScreen) and app.screen, what="try screen")
            await wait_for(pilot, lambda: screen.query("#try-input-seed"), what="the version's inputs")
            assert screen.query_one("#try-prompt", Input).value == "a photo of TOK"
            assert screen.query_one("#try-input-num_inference_steps", Input).value == "28"

            # a value the model refuses is said before anything is sent
            screen.query_one("#try-input-num_outputs", Input).value = "9"
            screen.query_one("#try-prompt", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: "num_outputs must be at most 4" in screen_text(app), what="refusal")
            assert env.sim.predictions.all() == []

            screen.query_one("#try-input-num_outputs", Input).value = "1"
            screen.query_one("#try-input-seed", Input).value = "3"
            screen.query_one("#try-prompt", Input).focus()
            await pilot.press("enter")
            image = screen.query_one("#try-image")
            await wait_for(pilot, lambda: image.display and image.image, 15, what="the image")
            assert type(image).__name__ == "HalfcellImage"
            text = screen_text(app)
            assert "Try 1/1" in text and "succeeded" in text and "Using seed: 3" in text
            assert "▀" in text or "▄" in text, "the picture is drawn with half-blocks"
            [kept] = app.service.updater.predictions.predictions(training["id"])
            assert kept["input"] == {"prompt": "a photo of TOK", "seed": 3, "lora_scale": 1, "num_outputs": 1,
                                     "num_inference_steps": 28}
            saved = app.store.home / kept["files"][0]
            assert saved.read_bytes()[:4] == b"\x89PNG"

            # a second try, then back to the first with ←
            screen.query_one("#try-input-seed", Input).value = "4"
            screen.query_one("#try-prompt", Input).value = "TOK on a beach"
            screen.query_one("#try-prompt", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Try 2/2" in screen_text(app) and not screen.running, 15,
                           what="the second try")
            assert image.display and image.image != saved
            await pilot.press("left")
            await wait_for(pilot, lambda: "Try 1/2" in screen_text(app), what="browsing back")
            assert image.image == saved
            await pilot.press("c")
            assert app.clipboard == str(saved)
            await pilot.press("o")
            assert opened == [saved.as_uri()]

            # a failed prediction: its error is shown, and it stays in the gallery
            env.sim.predictions.fail_next = 1
            screen.query_one("#try-prompt", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: "CUDA out of memory" in screen_text(app) and not screen.running, 15,
                           what="the failure")
            assert "Try 3/3" in screen_text(app)

            # x cancels a running try (slowed down so that it is still running)
            env.sim.speed = 1
            screen.query_one("#try-prompt", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.running and "Try 4/4" in screen_text(app), 15, what="a 4th try")
            screen.query_one("#try-view").focus()
            await pilot.press("x")
            await wait_for(pilot, lambda: not screen.running, 15, what="the cancel")
            assert env.sim.predictions.all()[0]["status"] == "canceled"
            assert "canceled" in screen_text(app)


async def test_a_training_that_did_not_succeed_cannot_be_tried() -> None:
    async with simulated(speed=400) as env:
        env.sim.add_model(DEST)
        failed = env.sim.add_finished_training(FLUX, DEST, {"input_images": "https://x.test/a.zip"},
                                               script="flux-fail-load")
        await env.service.refresh(failed["id"], source="sync")
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            app.open_detail(failed["id"])
            await pilot.pause()
            await pilot.press("t")
            await pilot.pause()
            assert not isinstance(app.screen, TryScreen)
            assert "Try it" not in screen_text(app).splitlines()[-1], "the footer offers only what applies"


def test_denoise_progress_counts_every_output() -> None:
    log = "Using seed: 1\n0it [00:00,  8.00it/s]\n14it [00:01,  8.00it/s]\n28it [00:03,  8.00it/s]\n0it [00:00, 8it/s]\n"
    assert denoise_fraction(log, 28, 2) == 0.5
    assert denoise_fraction("Using seed: 1\n", 28, 1) is None


# ---- the snapshot: a stored try of a flux training, shown after `t` on its detail screen -----------

def _prepare(home: Path) -> tuple[str, dict[str, Any]]:
    """A succeeded flux training and one try of it in a store at `home`; the version object."""

    async def go() -> tuple[str, dict[str, Any]]:
        sim = Simulator(speed=1000, seed=3)
        await sim.start()
        store = Store(home)
        client = ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0)
        service = TrainingService(store, client)
        try:
            training = finished(sim)
            await service.refresh(training["id"], source="sync")
            record = store.get(training["id"])
            assert record is not None
            tryer = Tryer(store, client, service.updater.predictions, poll_seconds=0.05)
            started = await tryer.start(record, {"prompt": "a photo of TOK", "seed": 42})
            await asyncio.wait_for(tryer.follow(started.prediction_id), 20)
            await tryer.download(started.prediction_id)
            model, _, vid = record["output_version"].rpartition(":")
            return training["id"], await client.get_model_version(model, vid)
        finally:
            await client.aclose()
            store.close()
            await sim.stop()

    return asyncio.run(go())


def test_snapshot_of_a_try_with_its_image(snap_compare: Any, isolated_home: Path) -> None:
    tid, version = _prepare(isolated_home)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=version)

    store = Store(isolated_home)
    client = ReplicateClient(token="r8_snapshot", base_url="http://replicate.test",
                             transport=httpx.MockTransport(answer), max_retries=0)
    app = create_app(TrainingService(store, client), clock=lambda: T0, poll=False, tick=False)

    async def open_try(pilot: Any) -> None:
        pilot.app.open_detail(tid)
        await pilot.pause()
        await pilot.press("t")
        await wait_for(pilot, lambda: pilot.app.screen.query("#try-input-seed"))
        assert pilot.app.screen.query_one("#try-image").display
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause(0.2)

    try:
        assert snap_compare(app, run_before=open_try, terminal_size=SIZE)
    finally:
        store.close()


def test_only_a_terminal_that_may_draw_graphics_is_asked_at_start() -> None:
    from tui.terminal_images import may_have_graphics

    assert may_have_graphics({"TERM": "xterm-kitty"}) and may_have_graphics({"TERM_PROGRAM": "WezTerm"})
    assert may_have_graphics({"KONSOLE_VERSION": "230800", "TERM": "xterm-256color"})
    assert not may_have_graphics({"TERM": "xterm-256color"}) and not may_have_graphics({"TERM": "tmux-256color"})
    assert not may_have_graphics({"TERM": "xterm-kitty", "REPLITRACK_IMAGES": "halfblocks"})
    assert may_have_graphics({"TERM": "xterm", "REPLITRACK_IMAGES": "ask"})
