"""Keyboard flows of the app, driven with Pilot against the simulated Replicate over real HTTP."""

from __future__ import annotations

import json
import os
import stat

from textual.widgets import DataTable, Input

from core import config
from tui_support import FLUX, SIZE, screen_text, simulated, wait_for
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import DetailScreen
from tui.screens.log_history import LogHistoryScreen
from tui.screens.models import ModelsScreen
from tui.screens.new_training import NewTrainingScreen
from tui.screens.sign_in import SignInScreen
from tui.screens.sync import SyncScreen
from tui.widgets.live_log import LiveLog
from tui.widgets.training_list import TrainingList

IMAGES = {"input_images": "https://example.com/faces.zip"}


def row_keys(table: TrainingList) -> list[str]:
    return list(table.ids)


async def test_open_detail_on_enter_and_back_on_escape() -> None:
    async with simulated(speed=200) as env:
        env.sim.add_model("me/flux-a")
        made = await env.sim.create_training(FLUX, "me/flux-a", {**IMAGES, "steps": 40})
        await env.service.import_all()
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ModelsScreen)
            assert row_keys(app.screen.query_one(TrainingList)) == [made["id"]]
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            assert app.screen.training_id == made["id"]
            assert made["id"] in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="back on the list")


async def test_rows_update_in_place_and_the_cursor_stays() -> None:
    async with simulated(speed=200) as env:
        env.sim.add_model("me/flux-a")
        env.sim.add_model("me/flux-b")
        first = await env.sim.create_training(FLUX, "me/flux-a", {**IMAGES, "steps": 60})
        await env.sim.create_training(FLUX, "me/flux-b", {**IMAGES, "steps": 60})
        await env.service.import_all()
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            table = app.screen.query_one(TrainingList)
            table.move_cursor(row_keys(table).index(first["id"]))
            before = table.row_text(first["id"])

            async def progressed() -> bool:
                await env.service.refresh(first["id"])
                return table.row_text(first["id"]) != before

            await wait_for(pilot, lambda: env.sim.training(first["id"])["status"] == "succeeded", timeout=10,
                           what="the simulated training to finish")
            assert await progressed()
            assert "100%" in table.row_text(first["id"])
            # Same row under the cursor, and no row was added or dropped.
            assert app.screen.current_id() == first["id"]
            assert len(table.ids) == 2


async def test_sort_and_filter_from_the_keyboard() -> None:
    async with simulated(speed=1) as env:
        for name in ("me/zeta", "me/alpha", "me/mid"):
            env.sim.add_model(name)
            await env.sim.create_training(FLUX, name, {**IMAGES, "steps": 40})
        await env.service.import_all()
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            table = screen.query_one(TrainingList)
            newest_first = row_keys(table)
            while screen.sort_name != "newest":
                await pilot.press("s")
            assert row_keys(table) == newest_first  # active first = newest first when all run
            await pilot.press("s")  # progress
            await pilot.press("s")  # model
            assert screen.sort_name == "model"
            await pilot.press("slash")
            assert screen.query_one("#models-filter", Input).has_focus
            wanted = newest_first[1]
            await pilot.press(*wanted[:8], "enter")
            await pilot.pause()
            assert row_keys(table) == [wanted]
            assert "filter:" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert sorted(row_keys(table)) == sorted(newest_first)


async def test_finished_trainings_can_be_hidden() -> None:
    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        done = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20})
        running = await env.sim.create_training(FLUX, "me/flux-a", {**IMAGES, "steps": 40})
        await env.service.import_all()
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            table = app.screen.query_one(TrainingList)
            assert set(row_keys(table)) == {done["id"], running["id"]}
            await pilot.press("f")
            assert row_keys(table) == [running["id"]]
            assert "active only" in screen_text(app)


async def test_sync_one_imports_a_training_never_seen() -> None:
    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        missing = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20})
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, SyncScreen), what="the sync screen")
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: table.row_count == 1, what="the difference to be listed")
            assert "never imported" in screen_text(app)
            await pilot.press("s")
            await wait_for(pilot, lambda: env.store.get(missing["id"]) is not None, what="the training synced")
            assert env.store.get(missing["id"])["status"] == "succeeded"
            assert env.store.read_log(missing["id"])  # synced in full, with its log
            await wait_for(pilot, lambda: "all in sync" in screen_text(app), what="the caption to say so")


async def test_retry_asks_first_then_starts_a_new_training() -> None:
    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        failed = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20}, script="flux-fail")
        await env.service.sync([failed["id"]])
        env.store.put({**env.store.get(failed["id"]), "destination": "me/flux-a"})
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            before = len(env.sim.trainings())
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("n")  # no: nothing happens
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the list again")
            assert len(env.sim.trainings()) == before
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: len(env.sim.trainings()) == before + 1, what="the new training")
            new = [t for t in env.sim.trainings() if t["id"] != failed["id"]][0]
            assert new["input"] == failed["input"]
            await wait_for(pilot, lambda: new["id"] in app.screen.shown, what="the new row")


async def test_cancel_asks_first_then_cancels_the_running_training() -> None:
    async with simulated(speed=1) as env:
        env.sim.add_model("me/flux-a")
        running = await env.sim.create_training(FLUX, "me/flux-a", {**IMAGES, "steps": 500})
        await env.service.import_all()
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            assert env.sim.training(running["id"])["status"] != "canceled"
            await pilot.press("y")
            await wait_for(pilot, lambda: env.sim.training(running["id"])["status"] == "canceled",
                           what="the simulator to cancel it")
            await wait_for(pilot, lambda: env.store.get(running["id"])["status"] == "canceled",
                           what="the store to know")
            await wait_for(pilot, lambda: "canceled" in screen_text(app), what="the screen to say so")


async def test_open_url_key_calls_the_browser_with_the_training_page() -> None:
    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        made = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20})
        await env.service.import_all()
        app = env.app()
        opened: list[str] = []
        app.open_url = lambda url, **_: opened.append(url)  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            await pilot.press("o")
            assert opened == [made["urls"]["web"]]
            await pilot.press("c")  # copy the output version
            assert app.clipboard == env.store.get(made["id"])["output_version"]


async def test_live_log_shows_untrusted_text_as_typed_and_history_searches_it() -> None:
    async with simulated() as env:
        body = {"id": "abc123", "model": FLUX, "status": "processing", "input": {}, "destination": "me/x",
                "created_at": "2026-11-24T09:00:00Z", "started_at": "2026-11-24T09:00:05Z",
                "logs": "first line\n[/]\n[link=https://evil.example]click[/link]\n[bold red]x\n"}
        env.service.updater.apply(body, source="webhook", webhook_id="m1")
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.open_detail("abc123")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.query(LiveLog),
                           what="the detail screen")
            log_widget = app.screen.query_one(LiveLog)
            assert list(log_widget.lines) == ["first line", "[/]", "[link=https://evil.example]click[/link]",
                                              "[bold red]x"]
            await pilot.pause(0.15)
            shown = screen_text(app)
            assert "[link=https://evil.example]click[/link]" in shown and "[bold red]x" in shown
            # More log arrives by webhook: it reaches the live tail within the flush interval.
            more = body | {"logs": body["logs"] + "needle in the log\n" + "".join(f"l{i}\n" for i in range(500))}
            env.service.updater.apply(more, source="webhook", webhook_id="m2")
            await wait_for(pilot, lambda: log_widget.line_count >= 505, what="the new lines")
            await pilot.press("h")
            await wait_for(pilot, lambda: isinstance(app.screen, LogHistoryScreen) and app.screen.query("#history-view"),
                           what="the full log")
            view = app.screen.query_one("#history-view")
            await wait_for(pilot, lambda: view.file.line_count >= 505, what="the log to be indexed")
            await pilot.press("slash", *"NEEDLE", "enter")
            await pilot.pause()
            assert view.current == 4  # 0-based line of "needle in the log"
            await wait_for(pilot, lambda: "match 1 of 1 (line 5)" in screen_text(app), what="match k of N")
            await pilot.press("slash", *"l4", "enter")  # l4, l40…l49, l400…l499: 111 lines
            await wait_for(pilot, lambda: "match 1 of 111 (line" in screen_text(app), what="the count")
            await pilot.press("n")
            assert "match 2 of 111 (line" in screen_text(app)
            await pilot.press("N", "N")
            assert "match 111 of 111 (line" in screen_text(app)


async def test_sign_in_checks_saves_0600_and_carries_on() -> None:
    async with simulated(token=None) as env:
        env.sim.add_model("me/flux-a")
        made = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20})
        app = env.app(sign_in=True, import_on_start=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), what="the sign-in screen")
            await pilot.press(*"r8_wrong", "enter")
            await wait_for(pilot, lambda: "does not accept" in screen_text(app), what="the refusal")
            box = app.screen.query_one("#signin-token", Input)
            box.value = env.sim.token
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the app to carry on")
            assert env.sim.token not in screen_text(app)
            saved = config.config_path()
            assert json.loads(saved.read_text())["api_token"] == env.sim.token
            assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
            # It carried on where it was going: the first import ran with the new token.
            await wait_for(pilot, lambda: env.store.get(made["id"]) is not None, what="the import")


async def test_new_training_without_token_signs_in_then_starts_by_itself() -> None:
    async with simulated(token=None) as env:
        env.sim.add_model("me/flux-new")
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewTrainingScreen), what="the form")
            form = app.screen
            form.query_one("#new-destination", Input).value = "me/flux-new"
            form.query_one("#new-images", Input).value = "https://example.com/faces.zip"
            form.query_one("#new-extra", Input).value = "steps=30 trigger_word=ZQX"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), what="sign-in")
            app.screen.query_one("#signin-token", Input).value = env.sim.token
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(env.sim.trainings()) == 1, timeout=8, what="the training to start")
            started = env.sim.trainings()[0]
            assert started["input"]["input_images"] == "https://example.com/faces.zip"
            assert started["input"]["steps"] == 30 and started["input"]["trigger_word"] == "ZQX"
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="its detail screen")
            assert env.store.get(started["id"])["destination"] == "me/flux-new"
