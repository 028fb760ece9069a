"""The tunnel through pyngrok's real code path, driving the stand-in agent in tests/fake_ngrok:
start, tunnel created and forwarding, agent killed, fallback to polling, restore, error messages."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from core.errors import BadArgumentError
from fake_ngrok import install_fake_ngrok
from listener.tunnel import TunnelConfig, TunnelState, check_public_url, explain
from test_listener_helpers import TID, bars, get, post, running_listener, signed, training


@pytest.fixture
def ngrok_config(tmp_path: Path) -> TunnelConfig:
    binary = install_fake_ngrok(tmp_path / "bin")
    return TunnelConfig(authtoken="goodtoken123", ngrok_path=str(binary), config_path=str(tmp_path / "ngrok.yml"),
                        allow_install=False, startup_timeout=10, check_interval=0.1, retry_interval=0.3)


async def wait_for(condition, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_webhooks_arrive_through_the_tunnel(isolated_home: Path, ngrok_config: TunnelConfig) -> None:
    async with running_listener(tunnel=ngrok_config) as listener:
        status = listener.status
        assert status.tunnel == "up" and status.public_url and status.public_url != listener.public_bind_url
        assert status.tunnel_state is TunnelState.UP and status.tunnel_reason is None
        assert status.webhook_url == status.public_url + "/webhooks/replicate"
        assert listener.service.webhook_url == status.webhook_url  # new trainings get this URL
        body, headers = signed(training("processing", bars(100)), "msg_1")
        code, data, _ = await post(status.webhook_url, body, headers)
        assert code == 200 and data["outcome"] == "created"
        assert listener.service.store.get(TID)["status"] == "processing"
        # The local API is not reachable through the tunnel.
        code, data = await get(status.public_url + "/api/events")
        assert code == 404
        assert (await get(listener.local_url + "/api/events"))[0] == 200
        agent = listener.tunnel.agent_pid
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(agent, 0)  # stopping the listener stopped the agent


async def test_a_killed_agent_falls_back_to_polling_and_the_tunnel_comes_back(
        isolated_home: Path, ngrok_config: TunnelConfig) -> None:
    async with running_listener(tunnel=ngrok_config) as listener:
        states: list[str] = []
        listener.subscribe_status(lambda status: states.append(status.tunnel))
        first_url = listener.public_url
        listener.service.updater.last_webhook[TID] = listener.service.clock()
        os.kill(listener.tunnel.agent_pid, signal.SIGKILL)
        await wait_for(lambda: listener.status.tunnel.startswith("down"), timeout=3)
        assert "agent stopped" in listener.status.tunnel and "polling" in listener.status.tunnel
        assert listener.service.webhook_url is None and listener.webhook_url is None
        assert listener.service.updater.last_webhook == {}  # the poller goes back to 5 s
        await wait_for(lambda: listener.status.tunnel == "up")
        assert listener.public_url and listener.public_url != first_url
        assert listener.service.webhook_url == listener.public_url + "/webhooks/replicate"
        assert states[0].startswith("down") and states[-1] == "up"
        body, headers = signed(training("processing", bars(100)), "msg_after")
        assert (await post(listener.webhook_url, body, headers))[0] == 200


@pytest.mark.parametrize("token, expected", [
    (None, "ngrok needs an authtoken (ERR_NGROK_4018)"),
    ("bad", "the ngrok authtoken is not valid (ERR_NGROK_105)"),
])
async def test_authtoken_problems_are_clear_and_the_app_keeps_working(
        isolated_home: Path, ngrok_config: TunnelConfig, token: str | None, expected: str) -> None:
    ngrok_config.authtoken = token
    started = time.monotonic()
    async with running_listener(tunnel=ngrok_config) as listener:
        assert time.monotonic() - started < 5
        assert listener.status.tunnel.startswith("down: " + expected)
        status = listener.status
        assert status.tunnel_state is TunnelState.DOWN and status.tunnel_reason and status.tunnel_reason.startswith(expected)
        assert "NGROK_AUTHTOKEN" in listener.status.tunnel and "polling" in listener.status.tunnel
        assert listener.webhook_url is None and listener.service.webhook_url is None
        # Still a working app: the receiver (for a tunnel of the user's own) and the local API.
        body, headers = signed(training("processing", bars(100)), "msg_1")
        assert (await post(listener.public_bind_url + "/webhooks/replicate", body, headers))[0] == 200
        assert (await get(listener.local_url + f"/api/models/{TID}/status"))[0] == 200


async def test_the_authtoken_comes_from_the_environment(isolated_home: Path, ngrok_config: TunnelConfig,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ngrok_config.authtoken = None
    monkeypatch.setenv("NGROK_AUTHTOKEN", "envtoken12345")
    async with running_listener(tunnel=ngrok_config) as listener:
        assert listener.status.tunnel == "up"


async def test_no_ngrok_binary_is_a_clear_message(isolated_home: Path, tmp_path: Path) -> None:
    config = TunnelConfig(authtoken="goodtoken123", ngrok_path=str(tmp_path / "missing" / "ngrok"),
                          config_path=str(tmp_path / "ngrok.yml"), allow_install=False)
    async with running_listener(tunnel=config) as listener:
        assert listener.status.tunnel.startswith("down: ngrok is not installed")
        assert "--public-url" in listener.status.tunnel and "--no-tunnel" in listener.status.tunnel


def test_pyngrok_errors_become_clear_sentences() -> None:
    from pyngrok.exception import PyngrokError, PyngrokNgrokError, PyngrokNgrokInstallError

    failed = explain(PyngrokNgrokInstallError("An error occurred while downloading ngrok: <urlopen error>"))
    assert failed.permanent and "could not be downloaded" in str(failed) and "PYNGROK_NGROK_PATH" in str(failed)
    auth = explain(PyngrokNgrokError("The ngrok process errored on start", [], "authentication failed ERR_NGROK_4018"))
    assert auth.permanent and "authtoken" in str(auth)
    other = explain(PyngrokNgrokError("The ngrok process was unable to start.", [], None))
    assert not other.permanent and "retrying" in str(other)
    assert not explain(PyngrokError("boom")).permanent


async def test_a_public_url_of_the_users_own(isolated_home: Path) -> None:
    async with running_listener(tunnel=TunnelConfig.url("https://hooks.example.org/webhooks/replicate/")) as lis:
        assert lis.status.tunnel == "up"
        assert lis.webhook_url == "https://hooks.example.org/webhooks/replicate"
        assert lis.service.webhook_url == lis.webhook_url
    with pytest.raises(BadArgumentError, match="not an http"):
        check_public_url("hooks.example.org")


async def test_no_tunnel_is_polling_only(isolated_home: Path) -> None:
    async with running_listener(tunnel=TunnelConfig.off()) as listener:
        assert listener.status.tunnel == "off (polling only)"
        assert listener.webhook_url is None and listener.service.webhook_url is None


async def test_an_agent_that_exits_on_its_own_is_noticed(isolated_home: Path, ngrok_config: TunnelConfig,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NGROK_EXIT_AFTER", "0.5")  # the agent loses its session and exits 1
    async with running_listener(tunnel=ngrok_config) as listener:
        assert listener.status.tunnel == "up"
        await wait_for(lambda: listener.status.tunnel.startswith("down"), timeout=5)
        assert "exit code 1" in listener.status.tunnel and listener.service.webhook_url is None
