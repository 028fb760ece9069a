"""Floods and slow clients: both faces count their connections and time them out, so that stalled
connections (hundreds of them, or as many as the open-file limit allows) can never starve a real
webhook or a CLI call.

- a request's headers must arrive within `header_timeout` of the connection (or of the previous
  answer, on a kept-alive connection);
- a body must keep coming (no silence longer than `body_idle_timeout`) and end within
  `body_timeout`; handling it afterwards (a commit, an import) is not limited here;
- at most `max_connections` are open per face; one more closes the longest-stalled one (one that
  is not being answered), so a newcomer always gets in;
- a client that goes away mid-body is one quiet line (the `on_dropped` callback: the event log),
  never a traceback on stderr.

aiohttp has no header or body read timeout of its own, hence this wrapper around its protocol.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)


def default_max_connections() -> int:
    """Per face: well under the open-file limit (two faces, the store, the tunnel share it)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 512
    return max(16, min(512, (soft - 64) // 3))


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    body_idle_timeout: float = 15.0
    body_timeout: float = 120.0  # 64 MiB at ~5 Mbit/s
    keepalive_timeout: float = 15.0
    max_connections: int = 0  # 0: default_max_connections()
    check_every: float = 0.5


class _Connection(asyncio.Protocol):
    """Stands between the transport and aiohttp's protocol, noting when bytes arrive."""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None
        now = guard.now()
        self.waiting_since: float | None = now  # waiting for a request's headers since
        self.last_data = now
        self.request: web.BaseRequest | None = None
        self.dispatched_at = 0.0
        self.closed_for: str | None = None  # why the guard closed it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.guard.opened(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_data = self.guard.now()
        if self.request is None and self.waiting_since is None:
            self.waiting_since = self.last_data  # the next request on a kept-alive connection
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    @property
    def busy(self) -> bool:
        """Being answered, its request whole: never evicted."""
        return self.request is not None and self.request.content.is_eof()

    def overdue(self, now: float, limits: Limits) -> str | None:
        if self.request is None:
            if self.waiting_since is not None and now - self.waiting_since > limits.header_timeout:
                return "header_timeout"
            return None  # idle between requests: aiohttp's keep-alive timeout closes it
        if not self.request.content.is_eof():
            if now - self.last_data > limits.body_idle_timeout or now - self.dispatched_at > limits.body_timeout:
                return "body_timeout"
        return None

    def close(self, reason: str) -> None:
        self.closed_for = reason
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    """One per face: the site factory, the middleware and the watchdog."""

    def __init__(self, limits: Limits | None = None, *,
                 on_dropped: Callable[[web.BaseRequest, str], Awaitable[None]] | None = None) -> None:
        self.limits = limits or Limits()
        self.max_connections = self.limits.max_connections or default_max_connections()
        self.on_dropped = on_dropped
        self.connections: dict[_Connection, None] = {}  # oldest first
        self._by_handler: dict[Any, _Connection] = {}
        self.cut: dict[str, int] = {}  # reason → connections the guard closed
        self._watchdog: asyncio.Task[None] | None = None

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    # ----- connections -------------------------------------------------------------------------
    def protocol_factory(self, server: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            inner = server()
            connection = _Connection(self, inner)
            self._by_handler[inner] = connection
            return connection
        return make

    def opened(self, connection: _Connection) -> None:
        if len(self.connections) >= self.max_connections:
            victim = next((c for c in self.connections if not c.busy), None)
            (victim or connection).close("too_many_connections")
            self._count("too_many_connections")
        self.connections[connection] = None
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    def closed(self, connection: _Connection) -> None:
        self.connections.pop(connection, None)
        self._by_handler.pop(connection.inner, None)

    def _count(self, reason: str) -> None:
        self.cut[reason] = self.cut.get(reason, 0) + 1

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.limits.check_every)
            now = self.now()
            for connection in list(self.connections):
                reason = connection.overdue(now, self.limits)
                if reason:
                    connection.close(reason)
                    self._count(reason)

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None

    # ----- requests ----------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        connection = self._by_handler.get(request.protocol)
        if connection is not None:
            connection.request, connection.dispatched_at = request, self.now()
            connection.waiting_since = None
        try:
            return await handler(request)
        except (ConnectionError, HttpProcessingError, asyncio.TimeoutError) as error:
            # The client went away (or was cut off) before its body was whole: nothing was
            # applied; say so once, quietly. The answer below reaches no one.
            reason = (connection.closed_for if connection is not None and connection.closed_for
                      else "client_disconnected")
            log.debug("request dropped: %s (%s)", reason, error)
            if self.on_dropped is not None:
                await self.on_dropped(request, reason)
            return web.Response(status=499 if reason == "client_disconnected" else 408)
        finally:
            if connection is not None:
                connection.request = None


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        # TCPSite.start with the guarded protocol factory.
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.protocol_factory(server), self._host, self._port,
                                                backlog=self._backlog, reuse_address=self._reuse_address)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
