"""Untrusted text never controls the terminal, and wrong-typed fields never crash anything later:
core.text on its own, the edge (Training.from_api, the real listener), the real CLI on a
pseudo-terminal with colour on and off, and the real Textual app under run_test."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from cli_helpers import cli_env, run
from core.models import Training
from core.store import Store
from core.text import terminal_safe
from listener.events import INDEX_FILE
from listener.service import EVENTS_DIR
from test_cli_terminal import run_on_tty
from test_listener_helpers import TID, post, running_listener, signed, training
from tui_support import SIZE, screen_text, simulated, wait_for

OSC_TITLE = "\x1b]0;pwned title\x07"
HOSTILE = f"bad{OSC_TITLE}\x1b[2J\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\\x9b31m\x90dcs\x9c\x07\x08end"
# What a terminal would act on: any ESC or C1 control, BEL, backspace.
ACTS = re.compile(r"[\x07\x08\x80-\x9f]|\x1b(?!\[[0-9;]*m)")  # our own SGR colours are allowed


@pytest.mark.parametrize("text, safe", [
    ("plain ✓ 中文 café", "plain ✓ 中文 café"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    (f"a{OSC_TITLE}b", "ab"),
    ("\x1b]2;title\x1b\\x", "x"),  # OSC ended by ST
    ("\x1b[31mred\x1b[0m \x1b[1;1H\x1b[2J", "red "),
    ("c1 \x9b2J csi, \x9d0;t\x9c osc", "c1  csi,  osc"),
    ("\x1bP1$r\x1b\\dcs \x1b_apc\x1b\\", "dcs "),
    ("bell\x07 bs\x08 del\x7f nul\x00 vt\x0b", "bell bs del nul vt"),
    ("charset \x1b(0x", "charset x"),
    ("bar 10%\rbar 50%\r\n", "bar 10%\nbar 50%\n"),
    (None, ""),
    (5, "5"),
])
def test_terminal_safe(text: Any, safe: str) -> None:
    assert terminal_safe(text) == safe


def test_terminal_safe_one_line() -> None:
    assert terminal_safe("two\nlines\tand\r\ncr", one_line=True) == "two lines and cr"


# ----- the edge --------------------------------------------------------------------------------

def test_wrong_typed_fields_become_clean_values() -> None:
    training = Training.from_api({
        "id": TID, "status": "succeeded", "destination": ["me", "x"], "model": {"a": 1}, "version": 7,
        "output": {"version": 12345, "weights": ["w"]}, "source": {"evil": True}, "error": f"boom{OSC_TITLE}\nline 2",
        "urls": {"web": "javascript:alert(1)"}, "input": "not a dict", "metrics": [1],
    })
    assert training.destination is None and training.model == "" and training.version == ""
    assert training.output_version is None and training.output_weights is None and training.source is None
    assert training.error == "boom\nline 2" and training.input == {} and training.metrics == {}
    assert training.web_url == f"https://replicate.com/p/{TID}"


@pytest.mark.parametrize("web", ["http://replicate.com/p/x", "https://replicate.com.evil.example/p/x",
                                 "https://evil.example/?https://replicate.com/", "file:///etc/passwd",
                                 "https://replicate.com/p/x\x1b]0;t\x07"])
def test_only_https_replicate_pages_are_kept(web: str) -> None:
    assert Training.from_api({"id": TID, "urls": {"web": web}}).web_url == f"https://replicate.com/p/{TID}"
    assert Training.from_api({"id": TID, "urls": {"web": "https://replicate.com/p/abc"}}).web_url == \
        "https://replicate.com/p/abc"


@pytest.mark.parametrize("field, value", [("started_at", 5), ("created_at", ["2024"]), ("status", {"s": 1})])
def test_wrong_typed_identity_fields_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        Training.from_api({"id": TID, field: value})


async def test_signed_bodies_that_can_never_be_processed_get_400_not_500(isolated_home: Any) -> None:
    deep = b'{"id": "' + TID.encode() + b'", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with running_listener() as listener:
        url = f"{listener.public_bind_url}/webhooks/replicate"
        status, answer, _ = await post(url, *signed(training("processing", started_at=5), "msg_1"))
        assert status == 400 and "started_at" in answer["detail"], answer
        status, answer, _ = await post(url, *signed(deep, "msg_2"))
        assert status == 400 and answer["title"] == "not json", answer
        hostile = training("processing", "", destination=["a", "b"], output={"version": 1}, source={"x": 1},
                           error=HOSTILE)
        status, answer, _ = await post(url, *signed(hostile, "msg_3"))
        assert status == 200, answer
        record = listener.service.store.get(TID)
        assert record["destination"] is None and record["source"] is None and not ACTS.search(record["error"])
    done = await run("list", "--no-refresh")  # what used to crash later, in `list`
    assert done.code == 0 and TID in done.out and "Traceback" not in done.err


# ----- the CLI ---------------------------------------------------------------------------------

def seed_hostile_store() -> str:
    """A stored training and event whose text carries terminal controls (as an older replitrack
    stored them, before the edge cleaned them), and a log with them."""
    tid = "hostile00000000000000000aa"
    with Store() as store:
        store.put({"id": tid, "status": "failed", "trainer": f"owner/trainer{OSC_TITLE}",
                   "destination": f"me/model{OSC_TITLE}", "error": HOSTILE, "created_at": "2026-11-20T10:00:00Z",
                   "completed_at": "2026-11-20T10:30:00Z", "web_url": "https://replicate.com/p/x",
                   "stage": "failed", "overall_percent": 40})
        store.extend_log(tid, f"step one\n{HOSTILE}\n")
        events = store.home / EVENTS_DIR
        events.mkdir()
        event = {"id": "ev00000001", "received_at": "2026-11-20T10:00:00Z", "method": "POST", "path": "/webhooks",
                 "verdict": "rejected", "reason": f"bad_signature{OSC_TITLE}", "http_status": 401,
                 "training_id": tid, "status": f"x{OSC_TITLE}"}
        (events / INDEX_FILE).write_text(json.dumps(event) + "\n")
    return tid


@pytest.mark.parametrize("colour", [True, False], ids=["colour", "NO_COLOR"])
async def test_cli_output_cannot_drive_the_terminal_colour_on_or_off(colour: bool) -> None:
    tid = seed_hostile_store()
    env = cli_env() if colour else cli_env(NO_COLOR="1")
    for args in (["status", tid], ["list", "--no-refresh"], ["events"], ["logs", tid]):
        code, screen = await run_on_tty(*args, env=env)
        assert code == 0, (args, screen)
        assert not ACTS.search(screen), (args, ACTS.search(screen), screen)
        assert "pwned" not in screen, args
    code, screen = await run_on_tty("logs", tid, "--follow", env={**env, "REPLICATE_API_TOKEN": "r8_unused",
                                                                    "REPLICATE_BASE_URL": "http://127.0.0.1:9"})
    assert code == 1 and f"training {tid} failed: bad" in screen  # the last line, on stderr
    assert not ACTS.search(screen)


async def test_piped_output_is_plain_and_logs_stay_byte_for_byte() -> None:
    tid = seed_hostile_store()
    listed = await run("list", "--no-refresh")
    assert listed.code == 0 and not ACTS.search(listed.out) and "me/model" in listed.out
    logs = await run("logs", tid)
    assert logs.out == f"step one\n{HOSTILE}\n", "piped, the log is passed on as stored"


async def test_listen_prints_webhooks_without_their_controls(isolated_home: Any) -> None:
    from test_listener_listen import ListenProcess
    from test_listener_helpers import SECRET

    listen = await ListenProcess.start("--no-tunnel", "--no-poll", "--webhook-secret", SECRET)
    try:
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:  # the text banner names the receiver
            line = (await listen.process.stdout.readline()).decode()
            found = re.search(r"Receiver: (\S+)", line)
            url = found.group(1) if found else None
        assert url
        status, _, _ = await post(url, *signed(training(f"failed{OSC_TITLE}", "", error=HOSTILE), "msg_1"))
        assert status == 200
        line = ""
        while TID not in line:
            line = (await asyncio.wait_for(listen.process.stdout.readline(), 20)).decode()
        assert not ACTS.search(line) and "pwned" not in line, line
    finally:
        _, err = await listen.stop()
    assert not ACTS.search(err)


# ----- the TUI ---------------------------------------------------------------------------------

async def test_the_app_shows_untrusted_text_inert() -> None:
    from tui.screens.detail import DetailScreen
    from tui.widgets.live_log import LiveLog

    async with simulated() as env:
        tid = "hostile00000000000000000aa"
        env.store.put({"id": tid, "status": "failed", "trainer": f"owner/trainer{OSC_TITLE}",
                       "destination": f"me/model{OSC_TITLE}", "error": HOSTILE, "input": {"prompt": HOSTILE},
                       "created_at": "2026-11-20T10:00:00Z", "completed_at": "2026-11-20T10:30:00Z",
                       "stage": "failed", "overall_percent": 40})
        env.store.extend_log(tid, f"step one\n{HOSTILE}\nTraceback (most recent call last):\n"
                                  f"  File \"x.py\"\nRuntimeError: {HOSTILE}\n")
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "me/model" in screen_text(app), what="the row")
            assert not ACTS.search(screen_text(app)), "models table"
            app.push_screen(DetailScreen(tid))
            await wait_for(pilot, lambda: "step one" in screen_text(app) and "end" in screen_text(app),
                           what="the detail with its log and error")
            log = app.screen.query_one(LiveLog)
            log.feed(f"live {OSC_TITLE}line\n")
            await wait_for(pilot, lambda: any("live line" in line for line in log.lines), what="the live line")
            assert not any(ACTS.search(line) for line in log.lines), "live log"
            assert not ACTS.search(screen_text(app)), "detail: title, error pane, inputs, log"
