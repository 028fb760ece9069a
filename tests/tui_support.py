"""Shared by the TUI tests: the simulated Replicate, a store and a service, and waiting helpers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from textual.pilot import Pilot

from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from simulator import Simulator
from tui.app import ReplitrackApp, create_app

FLUX = "ostris/flux-dev-lora-trainer"
SIZE = (120, 36)


@dataclass
class Env:
    sim: Simulator
    store: Store
    client: ReplicateClient
    service: TrainingService

    def app(self, **options: Any) -> ReplitrackApp:
        options.setdefault("poll", False)  # tests drive updates themselves unless they say so
        options.setdefault("mode", "demo")
        return create_app(self.service, simulator=self.sim, **options)


@asynccontextmanager
async def simulated(speed: float = 1.0, *, token: str | None = "sim") -> AsyncIterator[Env]:
    sim = Simulator(speed=speed, seed=7)
    base_url = await sim.start()
    store = Store()
    client = ReplicateClient(token=sim.token if token == "sim" else token, base_url=base_url, max_retries=0)
    service = TrainingService(store, client)
    try:
        yield Env(sim, store, client, service)
    finally:
        await sim.stop()
        await client.aclose()
        store.close()


async def wait_for(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 5.0,
                   what: str = "condition") -> Any:
    """Let the app run until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def screen_text(app: ReplitrackApp) -> str:
    """What the screen shows, as plain text lines (what a person reads)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)
