"""core.formats: the one way durations, percents, numbers and stages read, in the CLI, the app and
the local API alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core import formats
from tui.cli.status import print_status
from tui.format import eta_text
from tui.widgets.progress import stage_label as progress_stage_label

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "–"), (-1, "–"), (float("nan"), "–"), (float("inf"), "–"), (0, "0s"), (59.9, "59s"),
    (185, "3m 05s"), (3599, "59m 59s"), (3600, "1h 00m"), (47 * 3600 + 59 * 60, "47h 59m"), (49 * 3600, "2d 01h"),
])
def test_durations(seconds: float | None, text: str) -> None:
    assert formats.duration(seconds) == text


def test_percents_numbers_and_stages() -> None:
    assert [formats.percent(v) for v in (None, 0, 7.46, 10, 99.6, float("nan"))] == ["–", "0%", "7.5%", "10%", "100%", "–"]
    assert formats.number(0.2472) == "0.2472" and formats.number(4e-4) == "4.000e-04" and formats.number(None) == "–"
    assert formats.stage_label("downloading") == "downloading weights"
    assert formats.stage_label("something-new") == "something-new" and formats.stage_label(None) == "–"


def test_remaining_time_counts_down_from_eta_at_and_stops_at_the_end() -> None:
    view = {"status": "processing", "eta_at": "2026-11-24T09:03:05Z", "eta_seconds": 999}
    assert formats.remaining_seconds(view, NOW) == 185
    assert formats.remaining_seconds(view, NOW + timedelta(hours=1)) == 0
    assert formats.remaining_seconds({"status": "processing", "eta_seconds": 42}, NOW) == 42
    assert formats.remaining_seconds({"status": "succeeded", "eta_seconds": 42}, NOW) is None


def test_the_command_line_and_the_app_read_alike(capsys: pytest.CaptureFixture[str]) -> None:
    view = {key: None for key in ("id", "destination", "trainer", "step", "total_steps", "loss", "created_at",
                                  "completed_at", "output_version", "error", "web_url", "eta_at")}
    view |= {"status": "processing", "terminal": False, "stage": "downloading", "overall_percent": 7.46,
             "eta_seconds": 185}
    print_status(view)
    lines = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in capsys.readouterr().out.splitlines()
             if line.strip()}
    assert lines["ETA"] == eta_text(view, NOW) == "3m 05s"
    assert lines["Stage"] == progress_stage_label("downloading") == "downloading weights"
    assert lines["Progress"] == "7.5%"


async def test_the_app_draws_in_its_theme_colours() -> None:
    from tui.format import bar, status_colour
    from tui_support import SIZE, simulated

    async with simulated() as env:
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            dark = app.get_css_variables()
            assert status_colour("succeeded") == dark["success"] and status_colour("failed") == dark["error"]
            assert str(bar(0.5, 4).style) == dark["primary"]
            app.theme = "textual-light"
            await pilot.pause()
            light = app.get_css_variables()
            assert light["primary"] != dark["primary"]
            assert status_colour("processing") == light["primary"] and str(bar(0.5, 4).style) == light["primary"]
