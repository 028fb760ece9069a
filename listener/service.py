"""The Listener: the public face (webhooks), the local face (debugging API) and the tunnel, run in
the caller's event loop (the TUI's or `replitrack listen`'s). Nothing here blocks the loop.

It keeps `service.webhook_url` in step with the tunnel (None while down, so new trainings are
not given a dead URL) and, when the tunnel goes down, forgets when webhooks last came so the
poller goes back to polling running trainings every few seconds.
"""

from __future__ import annotations

import errno
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from core.errors import BadArgumentError, StoreWriteError
from core.models import format_time, utcnow
from core.observers import Observers
from core.service import TrainingService
from core.webhooks import sign_webhook
from listener.connections import ConnectionGuard, GuardedSite, Limits
from listener.events import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EVENTS, EventLog, EventRecord
from listener.localapi import LocalApi, is_loopback
from listener.receiver import DEFAULT_MAX_BODY, WEBHOOK_PATH, WebhookReceiver, WebhookSecret
from listener.tunnel import Tunnel, TunnelConfig, TunnelState

EVENTS_DIR = "events"


@dataclass(frozen=True)
class ListenerStatus:
    """What the TUI header shows about webhooks."""

    tunnel: str  # the state in words: "up", "starting", "down: <reason>", "off (polling only)"
    public_url: str | None
    webhook_url: str | None
    local_url: str | None
    accepted: int
    rejected: int
    last_webhook_at: str | None  # ISO, Z
    secret: str  # where the signing secret comes from (never the secret)
    tunnel_state: TunnelState = TunnelState.OFF
    tunnel_reason: str | None = None  # why it is down

    @property
    def tunnel_up(self) -> bool:
        return self.tunnel_state is TunnelState.UP

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Listener:
    def __init__(self, service: TrainingService, *, secret: str | None = None, public_port: int = 0,
                 local_port: int = 0, local_host: str = "127.0.0.1", max_body: int = DEFAULT_MAX_BODY,
                 tunnel: TunnelConfig | None = None, events_dir: Path | None = None,
                 expose_local: bool = False, forward_to: str | None = None,
                 forward_events: set[str] | None = None, secret_source: str = "--webhook-secret",
                 max_events: int = DEFAULT_MAX_EVENTS, max_event_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 limits: Limits | None = None) -> None:
        if not is_loopback(local_host) and not expose_local:
            raise BadArgumentError(f"the local API holds your trainings and can sync them: binding it to "
                                   f"{local_host} needs --expose-local-api (or keep 127.0.0.1)")
        if max_body < 1024:
            raise BadArgumentError(f"--max-body {max_body} bytes is too small: Replicate's webhooks carry the "
                                   "whole log; keep the default 64MiB unless you know your logs are short")
        self.service = service
        self.public_port, self.local_port, self.local_host = public_port, local_port, local_host
        self.tunnel_config = tunnel or TunnelConfig.off()
        self.events_dir = Path(events_dir) if events_dir else service.store.home / EVENTS_DIR
        self._secret_arg, self._secret_source = secret, secret_source
        self.max_body = max_body
        self.forward_to, self.forward_events = forward_to, forward_events
        self.max_events, self.max_event_bytes = max_events, max_event_bytes
        self.public_url: str | None = None
        self.webhook_url: str | None = None
        self.local_url: str | None = None
        self.public_bind_url: str | None = None  # where the public face listens (what the tunnel forwards to)
        self.events: EventLog | None = None
        self.receiver: WebhookReceiver | None = None
        self.secret: WebhookSecret | None = None
        self.tunnel: Tunnel | None = None
        self._runners: list[web.AppRunner] = []
        self._guards: list[ConnectionGuard] = []
        self.limits = limits or Limits()  # read timeouts and the connection cap of both faces
        self._subscribers: Observers[EventRecord] = Observers()
        self._forward_subscribers: Observers[EventRecord] = Observers()
        self._status_subscribers: Observers[ListenerStatus] = Observers()
        self._started = False
        self.api_token = secrets.token_urlsafe(32)  # per instance: what changing local routes want

    # ----- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.secret = WebhookSecret(self._secret_arg, self.service.client.default_webhook_secret,
                                    explicit_source=self._secret_source)
        if self.secret.known:
            sign_webhook(b"{}", await self.secret.get() or "", "msg_check", 0)  # a bad secret fails now
        self.events = EventLog(self.events_dir, max_events=self.max_events, max_body_bytes=self.max_event_bytes)
        self.events.subscribe(self._subscribers.notify)
        self.receiver = WebhookReceiver(self.service, self.secret, self.events, max_body=self.max_body,
                                        forward_to=self.forward_to, forward_events=self.forward_events)
        self.receiver.subscribe_forwards(self._forward_subscribers.notify)
        local = LocalApi(self.service, self.receiver, lambda: self.status.to_dict(),
                         loopback_only=is_loopback(self.local_host), token=self.api_token)
        try:
            self.public_port = await self._serve(self.receiver.public_app(), "127.0.0.1", self.public_port, "--port",
                                                 ConnectionGuard(self.limits, on_dropped=self._dropped))
            self.local_port = await self._serve(local.app(), self.local_host, self.local_port, "--api-port",
                                                ConnectionGuard(self.limits))
        except BaseException:
            await self._cleanup_runners()
            self.events.close()
            raise
        self._started = True
        self.public_bind_url = f"http://127.0.0.1:{self.public_port}"
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        self.local_url = f"http://{host}:{self.local_port}"
        self.service.store.announce_api(self.local_url, self.api_token)  # the owner file is 0600
        await self.secret.get(wait=10.0)  # fetched once now, so the start banner can say where it came from
        self.tunnel = Tunnel(self.tunnel_config, self.public_port, on_change=self._tunnel_changed)
        await self.tunnel.start()

    async def stop(self) -> None:
        if self.tunnel is not None:
            await self.tunnel.stop()
        await self._cleanup_runners()  # the public face first closes: no webhook is half-handled
        if self.receiver is not None:
            await self.receiver.close()
        if self.events is not None:
            self.events.close()
        try:
            await self.service.store.commit()
        except StoreWriteError:
            pass  # the store keeps the changes in memory; whoever closes it reports the failure
        if self._started:
            self.service.store.announce_api(None)
            self._started = False

    async def __aenter__(self) -> Listener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, app: web.Application, host: str, port: int, flag: str,
                     guard: ConnectionGuard) -> int:
        app.middlewares.append(guard.middleware)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5,
                               keepalive_timeout=guard.limits.keepalive_timeout)
        await runner.setup()
        self._runners.append(runner)
        self._guards.append(guard)
        try:
            await GuardedSite(runner, host, port, guard).start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise BadArgumentError(f"port {port} on {host} is already in use (another listener?): choose "
                                       f"another with {flag}, or 0 for any free port") from None
            raise BadArgumentError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        return int(runner.addresses[-1][1])

    async def _cleanup_runners(self) -> None:
        while self._runners:
            await self._runners.pop(0).cleanup()
        while self._guards:
            await self._guards.pop(0).stop()

    async def _dropped(self, request: web.BaseRequest, reason: str) -> None:
        """A webhook whose sender went away (or was cut off) mid-body: one line in the event log."""
        assert self.events is not None and self.receiver is not None
        headers = {k.lower(): v for k, v in request.headers.items()}
        what = ("the sender closed the connection" if reason == "client_disconnected"
                else "the body did not arrive in time")
        record = EventRecord(id=self.events.new_id(), received_at=format_time(utcnow()) or "",
                             method=request.method, path=request.path_qs, verdict="rejected", reason=reason,
                             http_status=499 if reason == "client_disconnected" else 408, headers=headers,
                             body_size=request.content_length or 0, webhook_id=headers.get("webhook-id"))
        record.response = {"detail": f"{what} before the whole body arrived; nothing was applied"}
        self.receiver.rejected += 1
        await self.events.add(record, None)

    # ----- state -------------------------------------------------------------------------------
    @property
    def status(self) -> ListenerStatus:
        receiver = self.receiver
        return ListenerStatus(
            tunnel=self.tunnel.describe() if self.tunnel else "off (polling only)",
            tunnel_state=self.tunnel.state if self.tunnel else TunnelState.OFF,
            tunnel_reason=self.tunnel.reason if self.tunnel else None,
            public_url=self.public_url, webhook_url=self.webhook_url, local_url=self.local_url,
            accepted=receiver.accepted if receiver else 0, rejected=receiver.rejected if receiver else 0,
            last_webhook_at=receiver.last_webhook_at if receiver else None,
            secret=self.secret.describe() if self.secret else "not resolved yet",
        )

    def _tunnel_changed(self, tunnel: Tunnel) -> None:
        self.public_url = tunnel.public_url if tunnel.up else None
        self.webhook_url = self.public_url + WEBHOOK_PATH if self.public_url else None
        self.service.webhook_url = self.webhook_url
        if not tunnel.up:
            self.service.updater.last_webhook.clear()  # no webhooks will come: poll every few seconds
        self._status_subscribers.notify(self.status)

    # ----- subscriptions -----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[EventRecord], None]) -> Callable[[], None]:
        """`callback(record)` once per received request (accepted or rejected)."""
        return self._subscribers.subscribe(callback)

    def subscribe_forwards(self, callback: Callable[[EventRecord], None]) -> Callable[[], None]:
        """`callback(record)` once a forwarded webhook got its answer (`record.forward`)."""
        return self._forward_subscribers.subscribe(callback)

    def subscribe_status(self, callback: Callable[[ListenerStatus], None]) -> Callable[[], None]:
        """`callback(status)` whenever the tunnel state changes."""
        return self._status_subscribers.subscribe(callback)
