"""`replitrack demo` in a real terminal (tmux), read the way a person reads it: the list appears,
a training's progress goes up, Enter opens its detail, q quits cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Terminal:
    def __init__(self, socket: str, session: str) -> None:
        self.socket, self.session = socket, session

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check,
                              timeout=10)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.session, check=False).returncode == 0

    def wait(self, condition: Callable[[str], object], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen() if self.alive() else ""
            if condition(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen showed:\n{text}")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    socket = f"replitrack-test-{tmp_path.name}"
    rc_file = tmp_path / "exit-code"
    # REPLITRACK_HOME is the user's real store: the demo must leave it alone and use its own home.
    command = (f"cd {ROOT} && REPLITRACK_HOME={tmp_path / 'home'} REPLITRACK_DEMO_HOME={tmp_path / 'demo'} "
               f"TERM=xterm-256color {sys.executable} -m tui.cli demo --speed 20; echo $? > {rc_file}")
    term = Terminal(socket, "demo")
    term.command = command  # type: ignore[attr-defined]
    term.tmux("new-session", "-d", "-s", "demo", "-x", "120", "-y", "36", "sh", "-c", command)
    try:
        yield term, rc_file
    finally:
        term.tmux("kill-server", check=False)


def percents(screen: str, name: str) -> list[int]:
    return [int(p) for p in re.findall(rf"{re.escape(name)}.*?(\d+)%", screen)]


def test_demo_in_a_real_terminal(terminal: tuple[Terminal, Path], tmp_path: Path) -> None:
    term, rc_file = terminal
    # The window paints at once; the simulated Replicate starts behind it and the list fills.
    screen = term.wait(lambda s: "sdxl-sketches" in s and "webhooks" in s, 20, "the list of trainings")
    assert "DEMO" in screen and "7 trainings" in screen
    # The SDXL training is live: its row's percent goes up as webhooks arrive.
    first = term.wait(lambda s: "sdxl-sketches" in s and "processing" in s, 20, "the SDXL training to run")
    start = percents(first, "sdxl-sketches")[0]
    later = term.wait(lambda s: percents(s, "sdxl-sketches") and percents(s, "sdxl-sketches")[0] > start + 2,
                      30, "the SDXL training's progress to go up")
    assert percents(later, "sdxl-sketches")[0] > start
    # Enter on the highlighted row opens its detail: the big bar, the stages and the live log.
    term.keys("Enter")
    detail = term.wait(lambda s: "Stages" in s and "Log (following" in s and "esc Back" in s, 10,
                       "the detail screen")
    assert re.search(r"\d+\.\d%", detail)  # the big bar's percent
    term.keys("Escape")
    term.wait(lambda s: "Model" in s and "Status" in s, 10, "the list again")  # Trainer goes first at 80 columns

    # A command beside it, with no token of its own, acts on the demo (its store, its simulator).
    env = {**os.environ, "REPLITRACK_HOME": str(tmp_path / "home"), "REPLITRACK_DEMO_HOME": str(tmp_path / "demo")}
    for name in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL"):
        env.pop(name, None)
    beside = subprocess.run([sys.executable, "-m", "tui.cli", "list", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert beside.returncode == 0, beside.stderr
    assert "acting on the running demo" in beside.stderr
    listed = json.loads(beside.stdout)
    assert len(listed) == 7 and any(view["destination"] == "demo-user/sdxl-sketches" for view in listed)

    term.keys("q")
    wait_for_exit(rc_file)
    assert rc_file.read_text().strip() == "0", "the demo did not exit cleanly"
    assert not (tmp_path / "home").exists(), "the demo wrote into REPLITRACK_HOME"
    assert (tmp_path / "demo").is_dir()

    # Started again, it starts fresh (the same ids, no stale copies) and moves.
    rc_file.unlink()
    deadline = time.monotonic() + 10
    while term.alive() and time.monotonic() < deadline:  # the first session closes after its shell
        time.sleep(0.1)
    term.tmux("new-session", "-d", "-s", "demo", "-x", "120", "-y", "36", "sh", "-c", term.command)  # type: ignore[attr-defined]
    screen = term.wait(lambda s: "sdxl-sketches" in s and "7 trainings" in s and "processing" in s, 30,
                       "the list again, fresh")
    start = percents(screen, "sdxl-sketches")[0]
    term.wait(lambda s: percents(s, "sdxl-sketches") and percents(s, "sdxl-sketches")[0] > start + 2,
              30, "the second demo to move")
    term.keys("C-c")  # Ctrl+C leaves it too, with the interrupted status
    wait_for_exit(rc_file)
    assert rc_file.read_text().strip() == "130"


def wait_for_exit(rc_file: Path) -> None:
    deadline = time.monotonic() + 15
    while not rc_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
