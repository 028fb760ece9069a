"""The CLI on a real terminal (a pseudo-terminal): colour and live bars only there, untrusted
log text never able to drive the terminal, and Ctrl+C leaving quietly."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from cli_helpers import ROOT, cli_env, run, start
from core.store import Store
from core.updates import Updater
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
TID = "ttyescapes0000000000000000"
HOSTILE_LOG = "step one\n\x1b]0;pwned title\x07\x1b[2J\x1b[31mred [/] [link=x]\n\x07done\n"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=600.0, seed=13)
    await simulator.start()
    simulator.add_model("demo-user/portraits")
    yield simulator
    await simulator.stop()


async def run_on_tty(*args: str, env: dict[str, str], timeout: float = 30.0) -> tuple[int, str]:
    """Run `replitrack ARGS` with stdout and stderr on a pseudo-terminal; (exit code, screen bytes)."""
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", *args, cwd=ROOT, env={**env, "COLUMNS": "120", "TERM": "xterm-256color"},
        stdin=asyncio.subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                return b"".join(chunks)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    reader = asyncio.get_running_loop().run_in_executor(None, read_all)
    code = await asyncio.wait_for(process.wait(), timeout)
    screen = (await asyncio.wait_for(reader, timeout)).decode(errors="replace")
    os.close(master)
    assert "Traceback" not in screen
    return code, screen


def seed_hostile_log() -> None:
    """A finished training whose log carries terminal control sequences and markup."""
    with Store() as store:
        Updater(store).apply({"id": TID, "status": "succeeded", "model": FLUX, "version": "v1",
                              "logs": HOSTILE_LOG, "created_at": "2026-11-20T10:00:00Z",
                              "completed_at": "2026-11-20T10:30:00Z",
                              "output": {"version": "demo-user/portraits:abc", "weights": "https://x/w.tar"}},
                             source="import")
        store.flush()


async def test_colour_on_a_terminal_only_and_never_with_no_color() -> None:
    seed_hostile_log()
    code, screen = await run_on_tty("list", env=cli_env())
    assert code == 0 and "\x1b[32msucceeded\x1b[0m" in screen, "status coloured on a terminal"
    code, screen = await run_on_tty("list", env=cli_env(NO_COLOR="1"))
    assert code == 0 and "\x1b[" not in screen and "succeeded" in screen


async def test_log_text_cannot_drive_the_terminal() -> None:
    seed_hostile_log()
    code, screen = await run_on_tty("logs", TID, env=cli_env())
    assert code == 0
    assert "\x1b]0;" not in screen and "\x1b[2J" not in screen and "\x07" not in screen
    assert "step one" in screen and "red [/] [link=x]" in screen, "markup-like text shows as typed"
    piped = await run("logs", TID)
    assert piped.out == HOSTILE_LOG, "piped, the log is passed on byte for byte"


async def test_watch_draws_bars_on_a_terminal(sim: Simulator) -> None:
    created = await sim.create_training(FLUX, "demo-user/portraits",
                                        {"input_images": "https://example.invalid/i.zip", "steps": 1500})
    code, screen = await run_on_tty("watch", created["id"], "--interval", "0.1",
                                    env=cli_env(sim.base_url, sim.token))
    assert code == 0
    assert "━" in screen and "100%" in screen, "a rich progress bar"
    assert "\x1b[?25l" in screen and "\x1b[?25h" in screen, "cursor hidden while drawing, then restored"
    assert f"{created['id']} succeeded" in screen


async def test_ctrl_c_while_following_exits_130_quietly(sim: Simulator) -> None:
    sim.hold(at="end")  # still running when Ctrl+C comes
    created = await sim.create_training(FLUX, "demo-user/portraits",
                                        {"input_images": "https://example.invalid/i.zip", "steps": 60})
    process = await start("logs", created["id"], "--follow", "--interval", "0.1",
                          env=cli_env(sim.base_url, sim.token))
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readline(), 20)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 130
    assert "Traceback" not in err.decode()
    with Store(readonly=True) as store:  # what was fetched before the interrupt was kept
        assert store.get(created["id"]) is not None
