"""The tunnel that makes the public face reachable by Replicate: an ngrok agent driven by pyngrok,
a URL the user already exposes (cloudflared, a reverse proxy), or none (polling only).

Every ngrok failure becomes a state the app shows (DOWN, with what happened and what to do) while
the app goes on by polling: a missing binary that cannot be downloaded, a missing or bad
authtoken (ERR_NGROK_4018), an agent that dies mid-session (then the tunnel is restored, with
backoff). pyngrok blocks (subprocess, urllib), so each of its calls runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from core.backoff import Backoff
from core.errors import BadArgumentError

log = logging.getLogger(__name__)
# pyngrok logs every agent line; with no handler Python would print its errors over the TUI.
logging.getLogger("pyngrok").addHandler(logging.NullHandler())

TunnelMode = Literal["ngrok", "url", "off"]


class TunnelState(StrEnum):
    OFF = "off"  # no tunnel: polling only
    STARTING = "starting"
    UP = "up"
    DOWN = "down"  # the tunnel's `reason` says why, and what to do


_AUTH_CODES = {
    "ERR_NGROK_4018": "ngrok needs an authtoken (ERR_NGROK_4018)",
    "ERR_NGROK_105": "the ngrok authtoken is not valid (ERR_NGROK_105)",
    "ERR_NGROK_107": "the ngrok authtoken was reset or revoked (ERR_NGROK_107)",
}
_AUTH_ADVICE = ("set NGROK_AUTHTOKEN to the authtoken from your ngrok dashboard, or use --public-url URL "
                "/ --no-tunnel; following trainings by polling meanwhile")


@dataclass
class TunnelConfig:
    """How the public face is exposed. `mode` "ngrok" uses pyngrok; "url" a URL the user runs;
    "off" none (polling only)."""

    mode: TunnelMode = "ngrok"
    public_url: str | None = None
    authtoken: str | None = None  # else NGROK_AUTHTOKEN (pyngrok reads it), else ngrok's own config
    ngrok_path: str | None = None  # else PYNGROK_NGROK_PATH, else pyngrok's default location
    config_path: str | None = None  # ngrok's config file; tests pass a temporary one
    allow_install: bool = True  # let pyngrok download a missing binary (never in tests)
    startup_timeout: int = 15
    check_interval: float = 1.0  # how often the agent's liveness is checked
    retry_interval: float = 5.0  # first delay before restoring a lost tunnel; doubles up to max
    max_retry_interval: float = 120.0

    @classmethod
    def off(cls) -> TunnelConfig:
        return cls(mode="off")

    @classmethod
    def url(cls, public_url: str) -> TunnelConfig:
        return cls(mode="url", public_url=check_public_url(public_url))


def check_public_url(url: str) -> str:
    text = (url or "").strip().rstrip("/")
    if not (text.startswith("https://") or text.startswith("http://")) or len(text.split("://", 1)[1]) == 0:
        raise BadArgumentError(f"--public-url {url!r} is not an http(s) URL: give the base URL your tunnel "
                               "or reverse proxy exposes, e.g. https://hooks.example.org")
    if text.endswith("/webhooks/replicate"):
        text = text[: -len("/webhooks/replicate")]  # the user pasted the full webhook URL
    return text


class TunnelError(Exception):
    """Why the tunnel could not be opened: `message` for the user; `permanent` when retrying
    cannot help until the user changes something (binary, authtoken)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def explain(error: BaseException) -> TunnelError:
    """Turn pyngrok's exceptions into one clear sentence each."""
    from pyngrok.exception import PyngrokError, PyngrokNgrokError, PyngrokNgrokInstallError  # pyngrok: loaded when used, for start-up time

    if isinstance(error, TunnelError):
        return error
    if isinstance(error, PyngrokNgrokInstallError):
        return TunnelError("ngrok is not installed and could not be downloaded (no network?): install ngrok "
                           "and set PYNGROK_NGROK_PATH, or use --public-url URL / --no-tunnel; following "
                           "trainings by polling meanwhile", permanent=True)
    if isinstance(error, PyngrokNgrokError):
        text = error.ngrok_error or str(error)
        code = error.ngrok_error_code or next((c for c in _AUTH_CODES if c in text), None)
        if code in _AUTH_CODES:
            return TunnelError(f"{_AUTH_CODES[code]}: {_AUTH_ADVICE}", permanent=True)
        detail = (error.ngrok_error or str(error)).strip().rstrip(".")
        return TunnelError(f"ngrok failed: {detail[:300]}; retrying, following trainings by polling meanwhile",
                           permanent=False)
    if isinstance(error, PyngrokError):
        return TunnelError(f"ngrok failed: {str(error)[:300]}; retrying, following trainings by polling "
                           "meanwhile", permanent=False)
    return TunnelError(f"ngrok failed ({type(error).__name__}: {error}); retrying, following trainings by "
                       "polling meanwhile", permanent=False)


class Tunnel:
    """Keeps the public face exposed and says how it is: `state` (with a `reason` when DOWN);
    `public_url` is set only while it is up."""

    def __init__(self, config: TunnelConfig, port: int,
                 on_change: Callable[[Tunnel], None] | None = None) -> None:
        self.config = config
        self.port = port
        self.public_url: str | None = None
        self.state = TunnelState.OFF
        self.reason: str | None = None
        self.agent_pid: int | None = None
        self._on_change = on_change
        self._pyngrok_config: Any = None
        self._process: Any = None  # pyngrok's NgrokProcess of the running agent
        self._watchdog: asyncio.Task[None] | None = None
        self._next_attempt = 0.0
        self._backoff = Backoff(config.retry_interval, max(config.retry_interval, config.max_retry_interval))
        self._delay = config.retry_interval  # the wait before the next attempt, as announced
        self._permanent = False
        self._stopping = False

    @property
    def up(self) -> bool:
        return self.state is TunnelState.UP

    def describe(self) -> str:
        """The state in words, as the local API and `listen --json` report it."""
        if self.state is TunnelState.DOWN:
            return f"down: {self.reason}"
        return "off (polling only)" if self.state is TunnelState.OFF else str(self.state)

    async def start(self) -> None:
        """Open the tunnel (first attempt awaited); afterwards a watchdog keeps it up."""
        if self.config.mode == "off":
            self._set(TunnelState.OFF, None)
            return
        if self.config.mode == "url":
            self._set(TunnelState.UP, check_public_url(self.config.public_url or ""))
            return
        await self._attempt()
        self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self.config.mode == "ngrok" and self._pyngrok_config is not None:
            await asyncio.to_thread(self._close_agent)
        self._set(TunnelState.OFF, None)

    # ----- the ngrok agent ---------------------------------------------------------------------
    async def _attempt(self) -> None:
        self._set(TunnelState.STARTING, None)
        try:
            url, process = await asyncio.to_thread(self._connect)
        except BaseException as error:  # pyngrok raises a wide range; each becomes a message
            if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            problem = explain(error)
            self._permanent = problem.permanent
            self._schedule_retry()
            self._set(TunnelState.DOWN, None, str(problem))
            return
        self._process = process
        self.agent_pid = getattr(getattr(process, "proc", None), "pid", None)
        self._backoff.reset()
        self._set(TunnelState.UP, url)

    def _connect(self) -> tuple[str, Any]:
        from pyngrok import conf, ngrok, process  # pyngrok: loaded when a tunnel is asked for

        cfg = conf.PyngrokConfig(
            ngrok_path=self.config.ngrok_path, config_path=self.config.config_path,
            auth_token=self.config.authtoken, startup_timeout=self.config.startup_timeout,
            monitor_thread=True,
        )
        self._pyngrok_config = cfg
        if not self.config.allow_install and not os.path.exists(cfg.ngrok_path):
            raise TunnelError(f"ngrok is not installed (no binary at {cfg.ngrok_path}): install ngrok and set "
                              "PYNGROK_NGROK_PATH, or use --public-url URL / --no-tunnel; following trainings "
                              "by polling meanwhile", permanent=True)
        ngrok.kill(cfg)  # a dead or stale agent from an earlier attempt
        tunnel = ngrok.connect(f"http://127.0.0.1:{self.port}", "http", pyngrok_config=cfg)
        agent = process.get_process(cfg)  # the agent `connect` started (public API; it installs nothing)
        if not tunnel.public_url:
            raise TunnelError("ngrok opened a tunnel without a public URL; retrying", permanent=False)
        return tunnel.public_url.rstrip("/"), agent

    def _agent_alive(self) -> bool:
        proc = getattr(self._process, "proc", None)
        return proc is not None and proc.poll() is None

    def _close_agent(self) -> None:
        from pyngrok import ngrok  # pyngrok: loaded when used, for start-up time

        try:
            if self.public_url and self._agent_alive():
                ngrok.disconnect(self.public_url, pyngrok_config=self._pyngrok_config)
        except Exception:  # the agent is going away anyway
            pass
        try:
            ngrok.kill(self._pyngrok_config)
        except Exception:
            pass
        self._process = None
        self.agent_pid = None

    async def _watch(self) -> None:
        """Notice a dead agent within `check_interval` and restore the tunnel with backoff."""
        while not self._stopping:
            await asyncio.sleep(self.config.check_interval)
            if self.state is TunnelState.UP and not self._agent_alive():
                code = getattr(getattr(self._process, "proc", None), "returncode", None)
                self._process, self.agent_pid = None, None
                self._permanent = False
                self._backoff.reset()
                self._schedule_retry()
                self._set(TunnelState.DOWN, None, f"the ngrok agent stopped (exit code {code}); following "
                          f"trainings by polling, restoring the tunnel in {self._delay:g} s")
            elif self.state is TunnelState.DOWN and not self._permanent and time.monotonic() >= self._next_attempt:
                await self._attempt()

    def _schedule_retry(self) -> None:
        self._delay = self._backoff.next()
        self._next_attempt = time.monotonic() + self._delay

    def _set(self, state: TunnelState, url: str | None, reason: str | None = None) -> None:
        changed = (state, url, reason) != (self.state, self.public_url, self.reason)
        self.state, self.public_url, self.reason = state, url, reason
        if changed and self._on_change is not None:
            self._on_change(self)
