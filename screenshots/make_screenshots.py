"""Screenshots for the README: the real app in demo mode (simulated Replicate, real webhooks),
driven like a person would at 120×36 (and a few views at 80×24), one SVG per screen, written
next to this script.

    uv run python screenshots/make_screenshots.py [--speed 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tui.app import ReplitrackApp, create_app  # noqa: E402
from tui.cli.runtime import start_demo  # noqa: E402

OUT = Path(__file__).resolve().parent
SIZE = (120, 36)


async def until(pilot: Any, condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:.0f} s")
        await pilot.pause(0.2)


def find(app: ReplitrackApp, predicate: Callable[[dict[str, Any]], bool]) -> str | None:
    return next((tid for tid, view in app.records.items() if predicate(view)), None)


async def shoot(app: ReplitrackApp, pilot: Any, name: str) -> None:
    await pilot.pause(0.6)  # let the screen switch, the log flush and the chart draw
    app.save_screenshot(f"{name}.svg", str(OUT))
    print(f"wrote {OUT / (name + '.svg')}")


async def try_it(app: ReplitrackApp, pilot: Any) -> None:
    """`t` on the succeeded training: run the suggested prompt, shoot the image (try.svg)."""
    from textual.widgets import Input

    await pilot.press("t")
    await until(pilot, lambda: app.screen.query("#try-input-seed"), 30, "the version's inputs")
    app.screen.query_one("#try-input-seed", Input).value = "42"
    app.screen.query_one("#try-prompt", Input).focus()
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.query_one("#try-image").display and not app.screen.running, 60,
                "the try's image")
    await shoot(app, pilot, "try")
    await pilot.press("escape")


async def compare_three(app: ReplitrackApp, pilot: Any, parts: Any) -> None:
    """Three runs of one flux LoRA with different steps, compared (compare.svg)."""
    sim = parts.simulator
    sim.add_model("demo-user/faces-steps")
    ids = []
    for steps in (300, 600, 1200):
        done = sim.add_finished_training("ostris/flux-dev-lora-trainer", "demo-user/faces-steps",
                                         {"input_images": "https://example.com/faces.zip", "steps": steps,
                                          "trigger_word": "TOK"}, ended_ago=3 * 1200 - steps)
        await parts.service.refresh(done["id"], source="sync")
        ids.append(done["id"])
    app.open_compare(ids)
    await until(pilot, lambda: getattr(app.screen, "tracked", False), 30, "the runs' curves")
    await shoot(app, pilot, "compare")


async def main(speed: float) -> None:
    os.environ.setdefault("REPLITRACK_HOME", tempfile.mkdtemp(prefix="replitrack-shots-"))
    parts = await start_demo(speed=speed, seed=0)
    try:
        app = create_app(parts.service, listener=parts.listener, simulator=parts.simulator, mode="demo")
        async with app.run_test(size=SIZE) as pilot:
            def flux_running(view: dict[str, Any]) -> bool:
                return (view.get("status") == "processing" and "flux" in str(view.get("trainer"))
                        and (view.get("step") or 0) > 150)

            await until(pilot, lambda: find(app, flux_running), 180, "a flux training past step 150")
            await shoot(app, pilot, "models")
            running = find(app, flux_running)
            app.open_detail(running or "")
            await shoot(app, pilot, "detail-running")
            await pilot.press("h")
            await pilot.pause(0.3)
            await pilot.press("slash", *"loss", "enter")
            await shoot(app, pilot, "full-log-search")
            await pilot.press("escape", "escape")
            await until(pilot, lambda: find(app, lambda v: v.get("status") == "failed" and v.get("error")),
                        240, "the failing training to fail")
            app.action_back_to_models()
            app.open_detail(find(app, lambda v: v.get("status") == "failed") or "")
            await shoot(app, pilot, "detail-failed")
            app.action_back_to_models()
            app.open_detail(find(app, lambda v: v.get("status") == "succeeded" and "flux" in str(v.get("trainer")))
                            or find(app, lambda v: v.get("status") == "succeeded") or "")
            await shoot(app, pilot, "detail-succeeded")
            await try_it(app, pilot)
            app.action_back_to_models()
            await pilot.press("y")
            await pilot.pause(1.0)
            await shoot(app, pilot, "sync")
            await pilot.press("escape", "x")
            await shoot(app, pilot, "confirm-cancel")
            await pilot.press("n", "n")
            await pilot.pause(0.3)
            await shoot(app, pilot, "new-training")
            await pilot.press("escape", "question_mark")
            await shoot(app, pilot, "help")
            await pilot.press("escape")
            app.action_back_to_models()
            await pilot.pause(0.3)
            await pilot.press("e")
            await shoot(app, pilot, "events")
            await pilot.press("enter")
            await shoot(app, pilot, "event-detail")
            await pilot.press("escape", "escape")
            # A small terminal: what stays on screen at 80×24.
            await pilot.resize_terminal(80, 24)
            app.action_back_to_models()
            await shoot(app, pilot, "models-80x24")
            still_running = find(app, lambda v: v.get("status") == "processing")
            app.open_detail(still_running or running or "")
            await shoot(app, pilot, "detail-80x24")
            await pilot.resize_terminal(*SIZE)
            app.action_back_to_models()
            await pilot.pause(0.3)
            app.sign_in()
            await shoot(app, pilot, "sign-in")
            await pilot.press("escape")
            await compare_three(app, pilot, parts)
    finally:
        await parts.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=40.0, help="simulated time per real second")
    asyncio.run(main(parser.parse_args().speed))
