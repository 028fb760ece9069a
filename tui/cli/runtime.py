"""Assembling the parts the app runs with, in the app's own event loop, and taking them down.

`replitrack demo`: the simulated Replicate on loopback, the listener receiving its (signed)
webhooks, a store of its own (the demo folder, cleared at each start; never REPLITRACK_HOME, the
user's real store), the demo scenario imported. `replitrack`: the user's account, the listener with the tunnel asked for, the store in
the data directory. Either way the app is built by `create_app` and everything is stopped on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config
from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from tui.app import ReplitrackApp, create_app
# The demo's home (its own folder, cleared at each start) is a light module of its own: every
# command without a token looks for a running demo there.
from tui.cli.demo_home import DEMO_INFO, demo_home, prepare_demo_home

DEMO_SPEED = 10.0
DEMO_TOKEN = "r8_demo" + "0" * 33  # the simulator accepts this one; it is nobody's real token


@dataclass
class Parts:
    store: Store
    client: ReplicateClient
    service: TrainingService
    listener: Any = None
    simulator: Any = None
    temp_home: Path | None = None
    started: list[str] = field(default_factory=list)

    async def close(self) -> None:
        """Stop in reverse order of dependency; each step runs even if an earlier one failed."""
        try:
            if self.listener is not None:
                await self.listener.stop()
        finally:
            try:
                if self.simulator is not None:
                    await self.simulator.stop()
            finally:
                await self.client.aclose()
                try:
                    await self.store.commit()
                finally:
                    self.store.close()
                    if self.temp_home is not None:
                        shutil.rmtree(self.temp_home, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_parts(home: Path | None = None) -> Parts:
    """The demo's store (`home`, else a throw-away directory: never REPLITRACK_HOME, the user's real
    store) and a client for the simulator-to-be; `boot_demo` starts the rest."""
    temp_home = None
    if home is None:
        home = temp_home = Path(tempfile.mkdtemp(prefix="replitrack-demo-"))
    store = Store(home)
    client = ReplicateClient(token=DEMO_TOKEN, base_url="http://127.0.0.1:9")
    return Parts(store, client, TrainingService(store, client), temp_home=temp_home)


async def boot_demo(parts: Parts, *, speed: float = DEMO_SPEED, seed: int = 0, scenario: str = "demo") -> None:
    """The simulator with the scenario, the listener receiving its webhooks, all imported."""
    from simulator import Simulator  # aiohttp and the simulator: loaded when used, for start-up time

    simulator = Simulator(speed=speed, seed=seed, token=DEMO_TOKEN)
    parts.simulator = simulator  # set first: whoever closes the parts stops it, even half-started
    base_url = await simulator.start()
    try:  # so that CLI commands beside the demo can act on its simulator (see tui.cli.demo_home.running_demo)
        (parts.store.home / DEMO_INFO).write_text(json.dumps({"base_url": base_url, "token": DEMO_TOKEN}))
    except OSError:
        pass  # commands beside it then say there is no token; the demo itself is unaffected
    placeholder = parts.client
    parts.client = parts.service.client = ReplicateClient(token=DEMO_TOKEN, base_url=base_url)
    await placeholder.aclose()
    parts.listener = await populate_demo(parts.service, simulator, scenario)


async def start_demo(*, speed: float = DEMO_SPEED, seed: int = 0, home: Path | None = None,
                     scenario: str = "demo") -> Parts:
    """The demo's parts, all started (the app is built on them by `create_app`)."""
    parts = demo_parts(home)
    try:
        await boot_demo(parts, speed=speed, seed=seed, scenario=scenario)
    except BaseException:
        await parts.close()
        raise
    return parts


async def populate_demo(service: TrainingService, simulator: Any, scenario: str) -> Any:
    """Start the listener (its public face stands in for the tunnel: on loopback the simulator
    reaches it as Replicate would reach a tunnel), run the scenario with its webhooks pointed
    there, and import it. Returns the started listener."""
    from listener.service import Listener  # aiohttp: loaded when used, for start-up time
    from listener.tunnel import TunnelConfig

    port = free_port()
    listener = Listener(service, secret=simulator.webhook_secret, public_port=port,
                        tunnel=TunnelConfig.url(f"http://127.0.0.1:{port}"), secret_source="demo")
    await listener.start()
    try:
        created = await simulator.run_scenario(scenario, webhook=listener.webhook_url)
        # The scenario started these, so it knows their destinations, as `replitrack train` would
        # have recorded them (Replicate's training objects name theirs only in the final output).
        for training in created:
            destination = simulator.destination_of(training["id"])
            if destination and not training.get("output"):
                service.updater.apply({**training, "destination": destination}, source="create")
        await service.import_all()
    except BaseException:
        await listener.stop()
        raise
    return listener


def tunnel_config(no_tunnel: bool = False, public_url: str | None = None) -> Any:
    from listener.tunnel import TunnelConfig  # aiohttp: loaded when used, for start-up time

    if public_url:
        return TunnelConfig.url(public_url)
    if no_tunnel or not os.environ.get("NGROK_AUTHTOKEN"):
        return TunnelConfig.off()  # polling only; ngrok without an authtoken would only fail
    return TunnelConfig()


async def start_live() -> tuple[Parts, bool]:
    """The user's store and account. Returns the parts and whether sign-in is needed first."""
    store = Store()
    client = ReplicateClient()
    service = TrainingService(store, client)
    return Parts(store, client, service), config.api_token() is None


def listener_factory(no_tunnel: bool, public_url: str | None, webhook_secret: str | None) -> Any:
    """Builds the listener inside the app, after the first paint (it imports aiohttp)."""

    def build(service: TrainingService) -> Any:
        from listener.service import Listener  # aiohttp: loaded after the first paint

        return Listener(service, secret=webhook_secret or os.environ.get("REPLICATE_WEBHOOK_SECRET") or None,
                        tunnel=tunnel_config(no_tunnel, public_url))

    return build


async def run_demo(*, speed: float = DEMO_SPEED, seed: int = 0, home: Path | None = None,
                   **app_options: Any) -> int:
    """The demo: the window paints at once, the simulated Replicate starts behind it. Its store
    is its own (`home`, else the demo folder), cleared first: every demo starts fresh."""
    parts = demo_parts(prepare_demo_home(home or demo_home()))

    async def boot(app: ReplitrackApp) -> None:
        try:
            await boot_demo(parts, speed=speed, seed=seed)
        finally:
            app.simulator, app.listener = parts.simulator, parts.listener

    app = create_app(parts.service, mode="demo", boot=boot, **app_options)
    try:  # from here on, whatever happens, the simulator, listener and store are stopped
        await app.run_async()
        return int(app.return_code or 0)
    finally:
        await parts.close()


async def run_live(*, no_tunnel: bool = False, public_url: str | None = None,
                   webhook_secret: str | None = None, **app_options: Any) -> int:
    parts, sign_in = await start_live()
    app: ReplitrackApp = create_app(
        parts.service, mode="live", sign_in=sign_in, import_on_start=True, start_listener=True,
        listener_factory=listener_factory(no_tunnel, public_url, webhook_secret), **app_options)
    try:
        await app.run_async()
        return int(app.return_code or 0)
    finally:
        parts.listener = app.listener
        parts.client = parts.service.client  # sign-in may have replaced it
        await parts.close()
