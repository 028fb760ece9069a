"""The app as a live view: webhooks through the real listener, completion notices and hooks,
offline state from the poller, and a store of 10,000 trainings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


from core.client import ReplicateClient
from core.service import TrainingService
from core.store import DB_FILE, Store
from core.webhooks import sign_webhook
from listener.service import Listener
from listener.tunnel import TunnelConfig
from tui.app import create_app
from tui.cli.runtime import free_port
from sample_data import bulk_records
from tui.screens.models import ModelsScreen
from tui.widgets.training_list import TrainingList
from tui_support import FLUX, SIZE, screen_text, simulated, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BAR = "flux_train_replicate: {p:3d}%|#####     | {s}/200 [01:00<01:00,  1.05it/s, lr: 4.0e-04 loss: 3.0e-01]\n"


def body(status: str, steps_done: int, **extra: Any) -> dict[str, Any]:
    logs = "Starting train job\n" + "".join(BAR.format(p=s // 2, s=s) for s in range(1, steps_done + 1))
    return {"id": "hook0training0000000000000", "model": FLUX, "version": "v", "status": status,
            "input": {"steps": 200}, "destination": "me/hooked", "logs": logs, "urls": {}, "error": None,
            "output": None, "metrics": {}, "created_at": "2026-11-24T09:00:00Z",
            "started_at": "2026-11-24T09:00:05Z", **extra}


async def test_a_signed_webhook_reaches_the_row_on_screen(tmp_path: Path) -> None:
    import httpx

    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client)
    port = free_port()
    listener = Listener(service, secret=SECRET, public_port=port, tunnel=TunnelConfig.url(f"http://127.0.0.1:{port}"))
    await listener.start()
    hook_out = tmp_path / "done.json"
    on_complete = f"{sys.executable} -c \"import sys; open({str(hook_out)!r}, 'w').write(sys.stdin.read())\""
    app = create_app(service, listener=listener, poll=False, on_complete=on_complete)
    notices: list[tuple[str, str]] = []
    original_notify = app.notify

    def notify(message: str, **options: Any) -> None:
        notices.append((message, options.get("severity", "information")))
        original_notify(message, **options)

    app.notify = notify  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot, httpx.AsyncClient() as http:
            async def send(payload: dict[str, Any], msg: str) -> int:
                raw = json.dumps(payload).encode()
                headers = sign_webhook(raw, SECRET, msg, int(time.time()))
                answer = await http.post(listener.webhook_url, content=raw,
                                         headers={**headers, "content-type": "application/json"})
                return answer.status_code

            assert await send(body("processing", 50), "msg_1") < 300
            table = app.screen.query_one(TrainingList)
            await wait_for(pilot, lambda: len(table.ids) == 1, what="the new row")
            tid = "hook0training0000000000000"
            assert "me/hooked" in table.row_text(tid)
            assert "1 received" in screen_text(app) and f"http://127.0.0.1:{port}" in screen_text(app)
            first = table.row_text(tid)
            assert await send(body("processing", 150), "msg_2") < 300
            await wait_for(pilot, lambda: table.row_text(tid) != first, what="the row to move")
            assert "74%" in table.row_text(tid)  # 10 + 0.85 × 75 %
            done = body("succeeded", 200, output={"version": "me/hooked:" + "a" * 64, "weights": "https://w"},
                        completed_at="2026-11-24T09:30:00Z")
            assert await send(done, "msg_3") < 300
            await wait_for(pilot, lambda: hook_out.exists() and hook_out.read_text(), what="the on-complete hook")
            ran_with = json.loads(hook_out.read_text())
            assert ran_with["id"] == tid and ran_with["status"] == "succeeded"
            assert ran_with["output_version"] == "me/hooked:" + "a" * 64
            assert any("me/hooked finished" in message for message, _ in notices)
            assert "100%" in table.row_text(tid)
    finally:
        await listener.stop()
        await client.aclose()
        store.close()


async def test_a_failure_is_announced_as_an_error_wherever_the_user_is() -> None:
    async with simulated() as env:
        env.service.updater.apply(body("processing", 20), source="webhook", webhook_id="a")
        app = env.app()
        notices: list[tuple[str, str]] = []
        app.notify = lambda message, **o: notices.append((message, o.get("severity", "")))  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("question_mark")  # on another screen: the help
            await pilot.pause()
            env.service.updater.apply(body("failed", 30, error="CUDA out of memory [/]"), source="webhook",
                                      webhook_id="b")
            await wait_for(pilot, lambda: notices, what="the failure notice")
            assert notices[0] == ("me/hooked failed: CUDA out of memory [/]", "error")


async def test_unreachable_replicate_shows_offline_and_tells_once() -> None:
    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0, timeout=2)
    service = TrainingService(store, client)
    for record in list(bulk_records(40))[:3]:  # last heard of an hour ago: due for a poll now
        store.put({**record, "status": "processing", "updated_at": "2020-01-01T00:00:00Z"})
    app = create_app(service, poll=True)
    notices: list[str] = []
    app.notify = lambda message, **o: notices.append(message)  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "offline" in screen_text(app), timeout=8, what="the offline state")
            await pilot.pause(1.5)
            assert len([n for n in notices if "127.0.0.1:9" in n or "connect" in n.lower()]) == 1
    finally:
        await client.aclose()
        store.close()


def write_store(home: Path, records: list[dict[str, Any]]) -> None:
    """A store file as Store writes it (one TinyDB table keyed by id), written in one go: 10,000
    `Store.put` calls cost O(n²) today (each rewrites the in-memory table)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / DB_FILE).write_text(json.dumps({"trainings": {r["id"]: r for r in records}}))


async def test_ten_thousand_trainings_are_all_reachable_and_filter_and_sort(isolated_home: Path) -> None:
    records = list(bulk_records(10_000))
    write_store(isolated_home, records)
    store = Store()
    assert len(store) == 10_000
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client)
    app = create_app(service, poll=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ModelsScreen)
            table = screen.query_one(TrainingList)
            assert len(table.ids) == 10_000 and "10000 trainings" in screen_text(app)
            # Only the rows on screen were drawn, not 10,000.
            assert table.drawn < 100  # a screenful or two (a resize redraws), not 10,000
            # The last one is reachable from the keyboard (G), and is the oldest finished one.
            await pilot.press("G")
            await pilot.pause()
            last = table.ids[-1]
            assert table.current_id == last and app.records[last]["destination"] in screen_text(app)
            assert all(app.records[tid]["status"] != "processing" for tid in table.ids[-50:])
            await pilot.press("g")
            await pilot.pause()
            assert table.current_id == table.ids[0] and app.records[table.ids[0]]["status"] == "processing"
            await pilot.press("slash", *"model-9876", "enter")
            await pilot.pause()
            assert len(table.ids) == 1
            assert "user79/model-9876" in table.row_text(table.ids[0])
    finally:
        await client.aclose()
        store.close()


async def test_a_screenful_of_running_trainings_ticks_a_few_rows_per_frame(isolated_home: Path, monkeypatch) -> None:
    """Each running row's times move once a second, but not all in one frame: a frame that
    redraws a screenful holds up a webhook arriving then (the p99 in bench/tui.py)."""
    from textual._compositor import Compositor

    from tui.screens.models import TICK_ROWS_PER_FRAME

    records = [dict(r, status="processing", stage="training", completed_at=None) for r in bulk_records(200)]
    write_store(isolated_home, records)
    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    app = create_app(TrainingService(store, client), poll=False)
    frame = [0]  # which compositor update (frame) is being drawn
    render_update = Compositor.render_update

    def counted(self: Compositor, *args: Any, **kwargs: Any) -> Any:  # the real frame, counted
        frame[0] += 1
        return render_update(self, *args, **kwargs)

    monkeypatch.setattr(Compositor, "render_update", counted)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            table = app.screen.query_one(TrainingList)
            draw, drawn = table._draw, []

            def observed(tid: str, *args: Any) -> Any:  # the real drawing, with its frame
                drawn.append((frame[0], tid))
                return draw(tid, *args)

            table._draw = observed  # type: ignore[method-assign]
            await pilot.pause(2.2)
            visible = set(table.visible_ids())
            assert len(visible) > 2 * TICK_ROWS_PER_FRAME
            per_frame: dict[int, list[str]] = {}
            for number, tid in drawn:
                per_frame.setdefault(number, []).append(tid)
            assert per_frame and max(map(len, per_frame.values())) <= TICK_ROWS_PER_FRAME
            assert {tid for _, tid in drawn} == visible  # every row moved on
    finally:
        await client.aclose()
        store.close()


async def test_the_command_palette_reaches_the_actions() -> None:
    async with simulated() as env:
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Sync", "enter")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "SyncScreen", what="the sync screen")
            titles = [command.title for command in app.get_system_commands(app.screen)]
            for wanted in ("Sync", "New training", "Import all trainings", "Sign in", "Help", "Sync all"):
                assert wanted in titles


async def test_new_training_creates_the_missing_destination_and_uploads_a_folder(tmp_path: Path) -> None:
    from textual.widgets import Input

    from tui.screens.confirm import ConfirmScreen
    from tui.screens.detail import DetailScreen
    from tui.screens.new_training import NewTrainingScreen

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg", "c.png"):
        (photos / name).write_bytes(b"\xff\xd8 not really an image " + name.encode())
    async with simulated() as env:
        destination = f"{env.sim.owner}/brand-new-lora"
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewTrainingScreen), what="the form")
            form = app.screen
            form.query_one("#new-destination", Input).value = destination
            form.query_one("#new-images", Input).value = str(photos)
            form.query_one("#new-extra", Input).value = "steps=20"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=8,
                           what="the offer to create the destination")
            await wait_for(pilot, lambda: "does not exist" in screen_text(app), what="the question on screen")
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), timeout=8, what="the new training")
            started = env.sim.trainings()[0]
            assert env.sim.model(destination)["name"] == "brand-new-lora"
            uploaded = started["input"]["input_images"]
            assert uploaded.startswith(env.client.base_url) and str(photos) not in uploaded
            assert started["input"]["steps"] == 20


async def test_importing_finished_trainings_announces_nothing(tmp_path: Path) -> None:
    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        for _ in range(3):
            env.sim.add_finished_training(FLUX, "me/flux-a", {"input_images": "https://x/y.zip", "steps": 20})
        marker = tmp_path / "hook-ran"
        app = env.app(on_complete=f"touch {marker}")
        notices: list[str] = []
        app.notify = lambda message, **o: notices.append(message)  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert await app.import_all() == 3
            await wait_for(pilot, lambda: app.screen.query_one(TrainingList).ids.__len__() == 3, what="the rows")
            await pilot.pause(0.3)
            assert notices == ["Imported 3 trainings from your account."]
            assert not marker.exists()


async def test_the_detail_of_an_imported_training_fetches_its_log() -> None:
    from tui.screens.detail import DetailScreen
    from tui.widgets.chart import LossChart
    from tui.widgets.live_log import LiveLog

    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        done = env.sim.add_finished_training(FLUX, "me/flux-a", {"input_images": "https://x/y.zip", "steps": 30})
        await env.service.import_all()
        assert env.store.log_length(done["id"]) == 0  # the list answer carries no log
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.query(LiveLog),
                           what="the detail")
            log_widget = app.screen.query_one(LiveLog)
            await wait_for(pilot, lambda: log_widget.line_count > 20, what="the fetched log on screen")
            assert env.store.log_length(done["id"]) > 0
            await wait_for(pilot, lambda: len(app.screen.query_one(LossChart).losses) == 30, what="the loss curve")
            assert "step 30 / 30" in screen_text(app)
