"""The models list and the detail screen as a person uses them: keys (j/k/g/G, marks, a user
keymap, `?`), live re-sorting, what the footer offers, saving the log and copying the id. Real
app under `run_test`, trainings built through the real Updater (sample_data), real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import config
from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from sample_data import T0, SampleClock, populate
from tui.app import ReplitrackApp, create_app
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen, keys_table
from tui.screens.models import ModelsScreen
from tui.widgets.live_log import LiveLog
from tui.widgets.stages import StageTimeline
from tui.widgets.training_list import TrainingList, layout
from tui.screens.models import COLUMNS
from tui_support import SIZE, screen_text, wait_for

SUCCEEDED, RUNNING, FAILED = "pz3ahq1kxhrm40ck8kbs7bfxw4", "s9kt3vhcgnrm80ck8kg9n2ajzw", "q7bnd2ymr5rm20ck8kdr1c0x9g"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def service() -> Iterator[TrainingService]:
    store = Store()
    clock = SampleClock()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client, clock=clock)
    populate(service.updater, clock)
    yield service
    store.close()


def app_for(service: TrainingService, clock: Any = None, **options: Any) -> ReplitrackApp:
    return create_app(service, clock=clock or (lambda: T0), poll=False, tick=False, **options)


def list_of(app: ReplitrackApp) -> TrainingList:
    return app.screen.query_one(TrainingList)


async def test_j_k_g_G_move_and_space_marks_for_compare(service: TrainingService) -> None:
    app = app_for(service)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = list_of(app)
        assert table.cursor == 0
        await pilot.press("j", "j")
        assert table.cursor == 2
        await pilot.press("k")
        assert table.cursor == 1
        await pilot.press("G")
        assert table.cursor == len(table.ids) - 1
        await pilot.press("g")
        assert table.cursor == 0
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await pilot.press("space", "space")  # marks the first two (space moves down)
        assert screen.marked_ids == table.ids[:2]
        assert "●" in table.row_text(table.ids[0]) and "2 marked" in screen_text(app)
        await pilot.press("C")  # opens Compare with the marked runs
        compare = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen,
                                 what="the compare screen")
        assert compare.training_ids == table.ids[:2]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="the list again")
        await pilot.press("k", "space")  # unmark the second
        assert screen.marked_ids == table.ids[:1]


async def test_active_first_re_sorts_live_when_a_training_ends(service: TrainingService) -> None:
    app = app_for(service)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = list_of(app)
        active = [tid for tid in table.ids if app.records[tid]["status"] in ("starting", "processing")]
        assert table.ids[:len(active)] == active and RUNNING in active
        table.move_cursor(table.ids.index(RUNNING))
        record = service.store.get(RUNNING)
        done = {"id": RUNNING, "model": record["trainer"], "version": "v", "status": "succeeded",
                "input": record["input"], "created_at": record["created_at"], "started_at": record["started_at"],
                "completed_at": "2026-11-24T09:00:30Z", "output": {"version": "alice/flux-style-ink:" + "b" * 64},
                "urls": {}, "error": None, "metrics": {}}
        service.updater.apply(done, source="webhook", webhook_id="end-1")
        await wait_for(pilot, lambda: RUNNING not in table.ids[:len(active) - 1], what="the live re-sort")
        finished = table.ids[len(active) - 1:]
        assert RUNNING in finished and table.ids.index(RUNNING) == len(active) - 1  # newest finished
        assert table.current_id == RUNNING  # the cursor went with it
        assert "succeeded" in table.row_text(RUNNING)


async def test_an_imported_running_training_without_destination_shows_its_trainer() -> None:
    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client)
    # What Replicate's list endpoint gives for a training started elsewhere: no destination.
    service.updater.apply({"id": "imp0rted0000000000000000aa", "model": "ostris/flux-dev-lora-trainer",
                           "version": "v", "status": "processing", "input": {}, "urls": {}, "logs": None,
                           "created_at": "2026-11-24T08:00:00Z", "error": None, "output": None, "metrics": {}},
                          source="import")
    app = app_for(service)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            row = list_of(app).row_text("imp0rted0000000000000000aa")
            assert "→ flux-dev-lora-train" in row and "imp0rted" in row  # the trainer (not an id), the short id
            assert "11-24 08:00" in row  # created
    finally:
        await client.aclose()
        store.close()


async def test_loading_shows_until_the_boot_is_done_never_an_empty_store_message() -> None:
    import asyncio

    store = Store()
    client = ReplicateClient(token="r8_test", base_url="http://127.0.0.1:9", max_retries=0)
    service = TrainingService(store, client)
    release = asyncio.Event()

    async def boot(app: ReplitrackApp) -> None:
        await release.wait()

    app = create_app(service, poll=False, tick=False, boot=boot, mode="demo")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            text = screen_text(app)
            assert "loading…" in text and "No trainings yet" not in text and "no listener" not in text
            release.set()
            await wait_for(pilot, lambda: "No trainings yet" in screen_text(app), what="the empty store, said")
    finally:
        await client.aclose()
        store.close()


async def test_detail_footer_offers_only_what_applies_and_following_only_while_running(
        service: TrainingService) -> None:
    app = app_for(service)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for tid, present, absent in [
            (RUNNING, ["Cancel", "Follow"], ["Copy version", "Retry"]),
            (FAILED, ["Retry"], ["Copy version", "Cancel", "Follow"]),
            (SUCCEEDED, ["Copy version"], ["Cancel", "Follow"]),
        ]:
            app.open_detail(tid)
            await wait_for(pilot, lambda tid=tid: isinstance(app.screen, DetailScreen) and app.screen.training_id == tid,
                           what=f"the detail of {tid}")
            await wait_for(pilot, lambda present=present: all(label in (screen_text(app).splitlines() or [""])[-1] for label in present),
                           what=f"the footer of {tid}")
            footer = screen_text(app).splitlines()[-1]
            for label in present:
                assert label in footer, (tid, label, footer)
            for label in absent:
                assert label not in footer, (tid, label, footer)
            title = str(app.screen.query_one("#detail-log-title").render())
            assert ("following" in title) == (tid == RUNNING)
            if tid != RUNNING:
                await pilot.press("x")  # cancel does nothing on a finished one (not even ask)
                await pilot.pause()
                assert isinstance(app.screen, DetailScreen)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the list")


async def test_elapsed_never_goes_backwards_at_completion(service: TrainingService) -> None:
    clock = Clock(T0 + timedelta(minutes=30))  # our clock runs ahead of Replicate's completed_at
    app = app_for(service, clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_detail(RUNNING)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail")
        await pilot.pause()
        screen = app.screen

        def elapsed() -> str:
            return next(line for line in screen_text(app).splitlines() if "Elapsed" in line).split("Elapsed")[1].split()[0:2]

        before = elapsed()
        record = service.store.get(RUNNING)
        service.updater.apply({"id": RUNNING, "model": record["trainer"], "version": "v", "status": "succeeded",
                               "input": record["input"], "created_at": record["created_at"],
                               "started_at": record["started_at"], "completed_at": "2026-11-24T09:00:30Z",
                               "output": {"version": "a/b:" + "c" * 64}, "urls": {}, "error": None, "metrics": {}},
                              source="webhook", webhook_id="end-2")
        await wait_for(pilot, lambda: screen.view.get("status") == "succeeded", what="the completion")
        await pilot.pause()
        assert "succeeded" in screen_text(app)
        assert elapsed() == before  # what was shown while running, not the shorter completed − started


async def test_save_log_writes_the_whole_log_and_says_where(service: TrainingService, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = app_for(service)
    notices: list[str] = []
    original = app.notify
    app.notify = lambda message, **o: (notices.append(message), original(message, **o))[1]  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_detail(RUNNING)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail")
        await pilot.press("s")
        target = tmp_path / f"alice-flux-style-ink-{RUNNING}.log"
        await wait_for(pilot, lambda: any(str(target) in n for n in notices), what="the saved path")
        assert target.read_bytes() == service.store.log_path(RUNNING).read_bytes()
        await pilot.press("i")
        assert app.clipboard == RUNNING


def test_save_log_on_a_full_disk_says_so_and_leaves_no_half_file(tmp_path: Path) -> None:
    """A real failure: the process may write at most 1 KiB per file (RLIMIT_FSIZE)."""
    script = f"""
import asyncio, os, resource, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from sample_data import T0, SampleClock, populate
from tui.app import create_app
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
async def main():
    clock = SampleClock()
    store = Store()
    service = TrainingService(store, ReplicateClient(token="r8_t", base_url="http://127.0.0.1:9"), clock=clock)
    populate(service.updater, clock)
    app = create_app(service, clock=lambda: T0, poll=False, tick=False)
    notes = []
    app.notify = lambda message, **o: notes.append((message, o.get("severity")))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.open_detail({RUNNING!r})
        await pilot.pause(0.3)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        await pilot.press("s")
        for _ in range(100):
            await pilot.pause(0.05)
            if notes:
                break
    print(notes)
asyncio.run(main())
"""
    env = dict(os.environ, REPLITRACK_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Could not save the log to" in done.stdout and "'error'" in done.stdout
    assert not list(tmp_path.glob("*.log"))


async def test_a_user_keymap_from_the_config_file_changes_keys(service: TrainingService) -> None:
    config.config_path().parent.mkdir(parents=True, exist_ok=True)
    config.config_path().write_text(json.dumps({"keymap": {"models.sort": "S", "list.down": "ctrl+n",
                                                           "no.such.id": "z", "models.web": 3}}))
    app = app_for(service)
    notices: list[str] = []
    original = app.notify
    app.notify = lambda message, **o: (notices.append(message), original(message, **o))[1]  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await pilot.press("s")
        assert screen.sort_name == "active"  # s is no longer sort
        await pilot.press("S")
        assert screen.sort_name == "newest"
        await pilot.press("ctrl+n")
        assert list_of(app).cursor == 1
        assert any("no.such.id" in n for n in notices)
        assert any('"models.web" needs keys as text' in n for n in notices)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = help_text(app.screen)
        assert re.search(r"S +Sort +models\.sort", text) and re.search(r"\^n +Down +list\.down", text)


async def test_help_lists_every_key_of_the_screen_with_its_id(service: TrainingService) -> None:
    app = app_for(service)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_detail(RUNNING)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail")
        await wait_for(pilot, lambda: isinstance(app.screen.focused, LiveLog), what="the log focused")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        shown = help_text(app.screen)
        for binding in DetailScreen.BINDINGS + LiveLog.BINDINGS:
            assert binding.id in shown, binding.id
        assert "quit" in shown and "ctrl+p" in shown


def help_text(screen: Any) -> str:
    """The keys table of a help screen as plain text (all of it, not just what fits on screen)."""
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))
    console.print(keys_table(screen.under))
    return console.export_text()


def test_columns_at_80_keep_model_status_percent_eta_and_id_created() -> None:
    narrow = [column.key for column, _ in layout(COLUMNS, 77)]
    assert {"model", "status", "progress", "eta", "id", "created"} <= set(narrow)
    wide = [column.key for column, _ in layout(COLUMNS, 117)]
    assert len(wide) > len(narrow) and sum(width for _, width in layout(COLUMNS, 77)) + len(narrow) - 1 <= 77


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
async def test_small_and_usual_terminals_keep_what_matters(service: TrainingService, size: tuple[int, int]) -> None:
    app = app_for(service)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert "● live" in lines[0]  # the header keeps the live state
        assert "q Quit" in lines[-1] and "? Help" in lines[-1]  # the footer keeps q and ?
        header = lines[2]
        for column in ("Model", "Id", "Status", "Progress" if size[0] > 100 else "Done", "ETA", "Created"):
            assert column in header, (column, header)
        for tid, failed in ((RUNNING, False), (FAILED, True)):
            app.open_detail(tid)
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.tracked,
                           what="the detail, tracked")
            await pilot.pause()
            screen = app.screen
            log_widget = screen.query_one(LiveLog)
            assert log_widget.region.height >= 6, (size, tid, log_widget.region)
            # Long lines (the bar's loss and lr are at its end) are never cut silently.
            if log_widget.cut_lines:
                assert "← → longer lines" in str(screen.query_one("#detail-log-title").render())
            if failed:
                # The error and traceback use the main column's width, not the side panel's.
                error = screen.query_one("#detail-error")
                assert error.display and error.region.width > screen.query_one("#detail-side").region.width
                assert "CUDA out of memory" in screen_text(app)
            # Stage labels never run into their durations: one line per stage, within the panel.
            stages = screen.query_one(StageTimeline)
            drawn = stages.render().plain.split("\n")
            assert len(drawn) == len(stages.rows) and all(len(line) <= stages.size.width - 2 for line in drawn)
            assert stages.region.height == len(stages.rows)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the list")
