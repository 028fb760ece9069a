"""Races found by reading and stress: the full-log view's memory map, trackers built off the loop,
and one odd training among many in the poller."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

from aiohttp import web
from textual.app import App, ComposeResult

from core.client import ReplicateClient
from core.errors import ReplitrackError
from core.service import TrainingService
from core.store import Store
from tui.widgets.log_file import LogFileView
from tui_support import FLUX, SIZE, simulated, wait_for

BAR = "flux_train_replicate: {p:3d}%|#####     | {s}/20000 [01:00<01:00,  1.05it/s, lr: 4.0e-04 loss: 3.0e-01]\n"


class _LogApp(App[None]):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield LogFileView(self.path, id="log")


async def test_the_full_log_view_never_reads_a_map_being_swapped(tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"first line\n")
    stop = threading.Event()

    def writer() -> None:  # the log keeps growing, as a running training's does
        with open(path, "ab", buffering=0) as file:
            i = 0
            while not stop.is_set():
                file.write(b"".join(b"line %d of a long log\n" % (i + j) for j in range(200)))
                i += 200

    app = _LogApp(path)
    errors: list[str] = []
    reads = 0
    async with app.run_test(size=SIZE):
        view = app.query_one(LogFileView)
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            reloads: set[asyncio.Task[None]] = set()
            while reads < 150_000:
                if len(reloads) < 2:  # reindexing in worker threads, back to back
                    task = asyncio.create_task(view.reload_in_thread())
                    reloads.add(task)
                    task.add_done_callback(reloads.discard)
                for _ in range(500):  # the UI thread drawing lines meanwhile
                    try:
                        view.file.line(random.randrange(max(1, view.file.line_count)))
                    except ValueError as error:
                        errors.append(str(error))
                    reads += 1
                await asyncio.sleep(0)
            await asyncio.gather(*reloads)
        finally:
            stop.set()
            thread.join()
        view.reload()
        assert not errors, f"{len(errors)} of {reads} reads failed, e.g. {errors[0]}"
        assert view.file.line_count == path.read_bytes().count(b"\n")
        assert view.file.line(view.file.line_count - 1).startswith("line ")


async def test_a_tracker_built_while_updates_arrive_keeps_them() -> None:
    from tui.screens.detail import DetailScreen

    async with simulated() as env:
        tid = "racetracker000000000000000"
        log = "Starting train job\n" + "".join(BAR.format(p=s // 200, s=s) for s in range(1, 15_001))
        env.store.put({"id": tid, "status": "processing", "trainer": FLUX, "destination": "me/race",
                       "input": {"steps": 20000}, "created_at": "2026-11-20T10:00:00Z",
                       "started_at": "2026-11-20T10:00:05Z"})
        env.store.extend_log(tid, log)
        app = env.app()
        updater = env.service.updater
        building = threading.Event()
        original = updater.prepare

        async def observed_prepare(*args: Any, **kwargs: Any) -> Any:
            building.set()
            return await original(*args, **kwargs)

        updater.prepare = observed_prepare  # type: ignore[method-assign]  # observe, not replace
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(DetailScreen(tid))
            await wait_for(pilot, building.is_set, what="the tracker build to start")
            # An update arrives while the stored log is being parsed a piece at a time.
            newer = log + "".join(BAR.format(p=s // 200, s=s) for s in range(15_001, 15_101))
            env.service.updater.apply({"id": tid, "status": "processing", "model": FLUX, "logs": newer,
                                       "input": {"steps": 20000}}, source="webhook", webhook_id="msg_1")
            await wait_for(pilot, lambda: app.screen.tracked, timeout=30, what="the tracker")
            assert updater.tracker(tid).state.step == 15_100, "the update seen during the build is kept"


async def test_one_odd_training_does_not_stop_polling_the_others(isolated_home: Path) -> None:
    good, odd = "goodtraining00000000000000", "oddtraining000000000000000"

    async def training(request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        done = tid == good
        return web.json_response({"id": tid, "status": "succeeded" if done else "processing", "model": FLUX,
                                  "version": "v", "logs": "step 1\n", "created_at": "2026-11-20T10:00:00Z",
                                  "completed_at": "2026-11-20T10:05:00Z" if done else None})

    app = web.Application()
    app.router.add_get("/v1/trainings/{id}", training)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    store = Store()
    client = ReplicateClient(token="r8_test", base_url=base, max_retries=0)
    service = TrainingService(store, client)
    service.poll_running = 0.05
    # The odd one (polled first) has a stored record no update can merge into (a hand-edited
    # store, an older version's field): merging it raises TypeError, an error nobody expected.
    store.put({"id": odd, "status": "processing", "trainer": FLUX, "created_at": "2026-11-20T10:00:00Z", "stages": 5})
    store.put({"id": good, "status": "processing", "trainer": FLUX, "created_at": "2026-11-20T10:00:00Z"})
    errors: list[ReplitrackError] = []
    poller = asyncio.create_task(service.poll_forever(errors.append))
    try:
        for _ in range(100):
            if store.get(good)["status"] == "succeeded" and len(errors) >= 2:
                break
            await asyncio.sleep(0.05)
        assert store.get(good)["status"] == "succeeded"
        assert not poller.done(), "the poller goes on"
        assert "polling oddtraining000000000000000 failed (TypeError" in str(errors[0])
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await client.aclose()
        store.close()
        await runner.cleanup()
