"""Hold and step: the simulator keeps a training at a point until told to go on (simulator/holds.py),
so tests never race a fast training. Through the real runner and, for the HTTP face, real requests."""

from __future__ import annotations

import asyncio

import httpx

from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
IMAGES = {"input_images": "https://example.invalid/i.zip", "steps": 20}


async def started(sim: Simulator, **input: object) -> str:
    sim.add_model("demo-user/portraits")
    created = await sim.create_training(FLUX, "demo-user/portraits", {**IMAGES, **input})
    return created["id"]


async def finished(sim: Simulator, tid: str) -> dict:
    for _ in range(400):
        if sim.training(tid)["status"] in ("succeeded", "failed", "canceled"):
            return sim.training(tid)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{tid} did not finish: {sim.training(tid)['status']}")


async def test_hold_at_start_keeps_it_starting_until_released() -> None:
    async with Simulator(speed=5000, seed=1) as sim:
        hold = sim.hold(at="start")
        tid = await started(sim)
        assert await hold.reached() == tid
        await asyncio.sleep(0.2)  # far longer than the whole run takes at this speed
        assert sim.training(tid)["status"] == "starting" and not sim.training(tid)["logs"]
        hold.release()
        assert (await finished(sim, tid))["status"] == "succeeded"


async def test_hold_before_a_line_then_step_one_event_at_a_time() -> None:
    async with Simulator(speed=5000, seed=1) as sim:
        tid = await started(sim)
        hold = sim.hold(tid, at="flux_train_replicate:")
        await hold.reached()
        before = sim.training(tid)
        assert before["status"] == "processing"
        assert "flux_train_replicate:" not in before["logs"] and before["logs"], "everything up to that line"
        lines = len(before["logs"].splitlines())
        hold.step()
        for _ in range(200):
            if len(sim.training(tid)["logs"].splitlines()) > lines:
                break
            await asyncio.sleep(0.01)
        after = sim.training(tid)["logs"]
        assert "flux_train_replicate:" in after.splitlines()[-1], "exactly the next event, then held again"
        await asyncio.sleep(0.1)
        assert sim.training(tid)["logs"] == after
        hold.release()
        assert (await finished(sim, tid))["status"] == "succeeded"


async def test_hold_at_end_has_the_whole_log_but_not_the_outcome() -> None:
    async with Simulator(speed=5000, seed=1) as sim:
        hold = sim.hold(at="end")
        tid = await started(sim)
        await hold.reached()
        view = sim.training(tid)
        # ai-toolkit's bar ends at steps − 1 (ostris/ai-toolkit's loop over range(steps)), then saving
        assert view["status"] == "processing" and "19/20" in view["logs"] and view.get("output") is None
        sim.cancel_training(tid)  # a held training can still be canceled
        assert sim.training(tid)["status"] == "canceled"


async def test_holds_over_http() -> None:
    async with Simulator(speed=5000, seed=1) as sim:
        async with httpx.AsyncClient(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
            made = await http.post("/simulator/holds", json={"at": "end"})
            assert made.status_code == 201, made.text
            hold_id = made.json()["id"]
            tid = await started(sim)
            for _ in range(400):
                listed = (await http.get("/simulator/holds")).json()["holds"]
                if listed[0]["held"]:
                    break
                await asyncio.sleep(0.01)
            assert listed[0]["held"] == [tid]
            assert sim.training(tid)["status"] == "processing"
            assert (await http.post(f"/simulator/holds/{hold_id}/release")).status_code == 200
            assert (await finished(sim, tid))["status"] == "succeeded"
            assert (await http.post("/simulator/holds/999999/release")).status_code == 404
            bad = await http.post("/simulator/holds", json={"at": "start", "training_id": "nope"})
            assert bad.status_code == 404
