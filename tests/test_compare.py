"""Compare: three flux runs with different steps on the simulated Replicate — `replitrack compare`
(table and --json), the Compare screen (curves overlaid, the differing inputs, live while one still
trains), and its snapshot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from textual.widgets import Static

from cli_helpers import cli_env, run
from core.client import ReplicateClient
from core.compare import comparison, differing_inputs
from core.models import utcnow
from core.service import TrainingService
from core.store import Store
from sample_data import T0
from simulator import Simulator
from tui.app import create_app
from tui.screens.compare import CompareScreen, OverlayChart
from tui_support import FLUX, SIZE, screen_text, simulated, wait_for

DEST = "demo-user/faces"
BASE = {"input_images": "https://x.test/a.zip", "trigger_word": "TOK", "autocaption": False}


def three_runs(sim: Simulator) -> list[str]:
    sim.add_model(DEST)
    return [sim.add_finished_training(FLUX, DEST, {**BASE, "steps": steps}, ended_ago=600 - steps)["id"]
            for steps in (60, 120, 240)]


async def stored(service: TrainingService, ids: list[str]) -> None:
    for tid in ids:
        await service.refresh(tid, source="sync")


def test_only_the_inputs_that_differ() -> None:
    runs = [{"input": {"steps": 1, "lr": 1e-4, "word": "TOK"}}, {"input": {"steps": 2, "lr": 1e-4, "word": "TOK"}},
            {"input": {"steps": 2, "lr": 1e-4}}]
    assert differing_inputs(runs) == ["steps", "word"]
    table = comparison([{**r, "id": str(i), "status": "succeeded"} for i, r in enumerate(runs)], {}, utcnow())
    assert [run["label"] for run in table["runs"]] == ["A", "B", "C"]
    assert table["runs"][2]["inputs"] == {"steps": 2, "word": None}


async def test_the_compare_command(isolated_home: Path) -> None:
    sim = Simulator(speed=1000, seed=8)
    await sim.start()
    try:
        ids = three_runs(sim)
        env = cli_env(sim.base_url, sim.token)
        result = await run("compare", *ids, "--json", env=env)
        assert result.code == 0, result.err
        table = result.json()
        assert table["differing_inputs"] == ["steps"]
        assert [r["inputs"]["steps"] for r in table["runs"]] == [60, 120, 240]
        assert all(r["status"] == "succeeded" and r["billed_seconds"] > 0 for r in table["runs"])
        assert [r["step"] for r in table["runs"]] == [60, 120, 240]
        assert all(isinstance(r["final_loss"], float) for r in table["runs"])
        durations = [r["duration_seconds"] for r in table["runs"]]
        assert durations == sorted(durations), "more steps took longer"

        text = await run("compare", *ids, env=env)
        lines = text.out.splitlines()
        assert lines[0].split() == ["TRAINING", "MODEL", "STATUS", "REACHED", "DURATION", "BILLED", "FINAL", "LOSS",
                                    "STEPS"]
        assert [line.split()[0] for line in lines[1:]] == ["A", "B", "C"]

        one = await run("compare", ids[0], env=env)
        assert one.code == 64 and "give 2 to 6 different trainings" in one.err
        latest = (await run("status", DEST, "--json", env=env)).json()["id"]  # what DEST names
        same = await run("compare", latest, DEST, env=env)
        assert same.code == 64 and "the same training" in same.err
    finally:
        await sim.stop()


async def test_the_compare_screen_overlays_the_runs_and_stays_live() -> None:
    async with simulated(speed=30) as env:
        ids = three_runs(env.sim)
        await stored(env.service, ids)
        running = await env.sim.create_training(FLUX, DEST, {**BASE, "steps": 400})
        await env.service.refresh(running["id"])
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            app.open_compare([ids[0]])
            await pilot.pause()
            assert not isinstance(app.screen, CompareScreen), "one run is not a comparison"
            app.open_compare([*ids, running["id"]])
            screen = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.tracked
                                    and app.screen, what="the compare screen")
            text = screen_text(app)
            assert "Compare 4 runs" in text and "1 still training: live" in text
            for label in "ABCD":
                assert f"━ {label}" in text
            chart = screen.query_one(OverlayChart)
            assert [label for label, _ in chart.runs] == ["A", "B", "C", "D"]
            assert [len(losses) for _, losses in chart.runs[:3]] == [60, 120, 240]
            table = screen.query_one("#compare-table", Static)
            assert table is not None
            before = len(chart.runs[3][1])

            async def moved() -> bool:
                await env.service.refresh(running["id"])
                return len(chart.runs[3][1]) > before

            deadline = asyncio.get_running_loop().time() + 20
            while not await moved():
                assert asyncio.get_running_loop().time() < deadline, "the running run's curve never moved"
                await pilot.pause(0.1)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, CompareScreen)


def _prepare(home: Path) -> list[str]:
    async def go() -> list[str]:
        sim = Simulator(speed=1000, seed=8)
        await sim.start()
        store = Store(home)
        client = ReplicateClient(token=sim.token, base_url=sim.base_url, max_retries=0)
        try:
            ids = three_runs(sim)
            await stored(TrainingService(store, client), ids)
            return ids
        finally:
            await client.aclose()
            store.close()
            await sim.stop()

    return asyncio.run(go())


def test_snapshot_of_three_runs_with_different_steps(snap_compare: Any, isolated_home: Path) -> None:
    ids = _prepare(isolated_home)
    store = Store(isolated_home)
    client = ReplicateClient(token="r8_snapshot", base_url="http://replicate.test",
                             transport=httpx.MockTransport(lambda r: httpx.Response(404)), max_retries=0)
    app = create_app(TrainingService(store, client), clock=lambda: T0, poll=False, tick=False)

    async def open_compare(pilot: Any) -> None:
        pilot.app.open_compare(ids)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.tracked)
        await pilot.pause(0.3)

    try:
        assert snap_compare(app, run_before=open_compare, terminal_size=SIZE)
    finally:
        store.close()
