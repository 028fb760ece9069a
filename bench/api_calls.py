"""API calls per training-hour: what replitrack's poller costs each training, counted by wall clock.

Two runs side by side, each with its own simulated Replicate at speed 1 (real time) playing the
demo scenario (a flux LoRA, an SDXL style, one that fails, one queued behind them), its own store
and the real poller (`TrainingService.poll_forever`):

- webhooks: the trainings send their webhooks to a real listener on loopback, as through a tunnel;
- polling only: no webhook URL, as with `--no-tunnel`.

Every request the client sends for a training (GET /v1/trainings/{id}, from the poller or the
listener's fetch of an unknown training) is counted; a training-hour is an hour during which that
training had not ended (its simulator status, sampled every second). Baseline: the seed's 5-second
polling, 720 calls per training-hour whatever happens.

    uv run python bench/api_calls.py [--minutes 10]

Goals: <= 60 calls per training-hour for EVERY training while webhooks flow; <= 720 polling only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.client import ReplicateClient  # noqa: E402
from core.models import Status  # noqa: E402
from core.service import TrainingService  # noqa: E402
from core.store import Store  # noqa: E402

BASELINE = 3600 / 5.0  # the seed's poller: every 5 s while a training has not ended
WITH_WEBHOOKS_GOAL = 60.0
POLLING_GOAL = 720.0


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the client's requests per training id, then sends them on."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["v1", "trainings"]:
            self.calls[parts[2]] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Run:
    """One simulated account followed by replitrack, with or without webhooks."""

    def __init__(self, name: str, home: Path, webhooks: bool) -> None:
        self.name, self.home, self.webhooks = name, home, webhooks
        self.transport = CountingTransport()
        self.alive: Counter[str] = Counter()  # training → seconds it had not ended
        self.trainings: list[str] = []

    async def start(self) -> None:
        from listener.service import Listener
        from listener.tunnel import TunnelConfig
        from simulator import Simulator
        from tui.cli.runtime import free_port

        self.simulator = Simulator(speed=1.0, seed=0)
        base_url = await self.simulator.start()
        self.store = Store(self.home)
        self.client = ReplicateClient(self.simulator.token, base_url, transport=self.transport)
        self.service = TrainingService(self.store, self.client)
        self.listener = None
        webhook = None
        if self.webhooks:
            port = free_port()
            self.listener = Listener(self.service, secret=self.simulator.webhook_secret, public_port=port,
                                     tunnel=TunnelConfig.url(f"http://127.0.0.1:{port}"))
            await self.listener.start()
            webhook = self.listener.webhook_url
        created = await self.simulator.run_scenario("demo", webhook=webhook)
        for training in created:  # what `replitrack train` records when it starts one
            destination = self.simulator.destination_of(training["id"])
            if not training.get("output"):
                self.service.updater.apply({**training, "destination": destination}, source="create")
                self.trainings.append(training["id"])
        await self.store.commit()
        self.transport.calls.clear()  # from here on, only what following them costs
        self.poller = asyncio.create_task(self.service.poll_forever())

    def sample(self, seconds: float) -> None:
        for tid in self.trainings:
            if not Status.parse(self.simulator.training(tid)["status"]).terminal:
                self.alive[tid] += seconds

    async def stop(self) -> None:
        self.poller.cancel()
        await asyncio.gather(self.poller, return_exceptions=True)
        if self.listener is not None:
            await self.listener.stop()
        await self.simulator.stop()
        await self.client.aclose()
        self.service.bodies.close()
        self.store.close()

    def report(self, goal: float) -> bool:
        rates = []
        print(f"{self.name}:")
        for tid in self.trainings:
            hours = self.alive[tid] / 3600
            calls = self.transport.calls[tid]
            status = self.store.get(tid)["status"]
            if hours <= 0:
                print(f"  {tid}  ended at once, {calls} calls")
                continue
            rate = calls / hours
            rates.append(rate)
            print(f"  {tid}  {calls:4d} calls over {self.alive[tid] / 60:5.1f} min unfinished -> "
                  f"{rate:6.1f} calls per training-hour (baseline {BASELINE:.0f}); now {status}")
        worst = max(rates, default=0.0)
        print(f"  median {statistics.median(rates) if rates else 0:.1f}, worst {worst:.1f} calls per training-hour; "
              f"goal <= {goal:.0f} for every training: {'met' if worst <= goal else 'NOT met'} "
              f"(baseline: {BASELINE:.0f})")
        return worst <= goal


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replitrack-calls-") as tmp:
        runs = [Run("with webhooks", Path(tmp) / "webhooks", webhooks=True),
                Run("polling only", Path(tmp) / "polling", webhooks=False)]
        for run in runs:
            await run.start()
        print(f"following the demo scenario at speed 1 for {options.minutes:g} minutes "
              f"({len(runs[0].trainings)} live trainings per run)…", flush=True)
        started = last = time.monotonic()
        while time.monotonic() - started < options.minutes * 60:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for run in runs:
                run.sample(now - last)
            last = now
        for run in runs:
            await run.stop()
        runs[0].report(WITH_WEBHOOKS_GOAL)
        runs[1].report(POLLING_GOAL)


if __name__ == "__main__":
    asyncio.run(main())
