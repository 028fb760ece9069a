"""The TUI's pure parts: formatting, the braille chart, the stage timeline, the log file index and
search, the new-training form's values, and the completion hooks."""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.errors import BadArgumentError
from tui.format import ago_short, bar, duration, eta_text, number, progress_cell, rate
from tui.hooks import run_hook
from tui.training_form import fields_of, images_field, parse_pairs
from tui.widgets.chart import Series, plot, smooth
from tui.widgets.log_file import LogFile, display, read_tail
from tui.widgets.stages import timeline

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ----- formatting ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "text"), [
    (None, "–"), (-1, "–"), (float("nan"), "–"), (0, "0s"), (59.9, "59s"), (60, "1m 00s"),
    (3599, "59m 59s"), (3600, "1h 00m"), (49 * 3600, "2d 01h"),
])
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_numbers_rates_and_ages() -> None:
    assert number(None) == "–" and number(0.2472) == "0.2472" and number(4e-4) == "4.000e-04"
    assert rate(2.5) == "2.50 it/s" and rate(0.5) == "2.00 s/it" and rate(None) == "–"
    assert ago_short(iso(NOW - timedelta(seconds=5)), NOW) == "5s ago"
    assert ago_short(iso(NOW - timedelta(hours=3, minutes=2)), NOW) == "3h ago"
    assert ago_short(None, NOW) == "–"


def test_eta_counts_down_from_eta_at_between_updates() -> None:
    record = {"status": "processing", "eta_at": iso(NOW + timedelta(minutes=5)), "eta_seconds": 999}
    assert eta_text(record, NOW) == "5m 00s"
    assert eta_text(record, NOW + timedelta(minutes=1)) == "4m 00s"
    assert eta_text(record, NOW + timedelta(hours=1)) == "0s"  # never negative
    assert eta_text({"status": "succeeded"}, NOW) == "done"
    assert eta_text({"status": "failed", "eta_seconds": 10}, NOW) == "–"


def test_bars_have_the_width_asked_and_fill_in_eighths() -> None:
    for fraction in (0, 0.01, 0.5, 0.999, 1, 1.5, -1):
        assert len(bar(fraction, 12).plain) == 12
    assert bar(0.5, 12).plain == "██████" + "░" * 6
    assert bar(1 / 24, 12).plain.startswith("▌")
    assert progress_cell({"overall_percent": 42.4, "status": "processing"}).plain.endswith(" 42%")


# ----- chart --------------------------------------------------------------------------------------
def test_smoothing_is_debiased_and_follows_the_trend() -> None:
    points = [(float(i), 1.0) for i in range(1, 50)]
    assert all(abs(y - 1.0) < 1e-9 for _, y in smooth(points))  # no pull towards zero at the start
    falling = [(float(i), 10.0 - i) for i in range(10)]
    smoothed = smooth(falling, 0.5)
    assert all(b[1] < a[1] for a, b in zip(smoothed, smoothed[1:]))


def test_plot_draws_axes_labels_and_a_line_inside_its_box() -> None:
    losses = [(float(i), 0.5 * math.exp(-i / 200) + 0.1) for i in range(1, 1001)]
    lrs = [(float(i), 4e-4) for i in range(1, 1001)]
    text = plot([Series("loss", losses, "white"), Series("lr", lrs, "yellow", axis="right")], 80, 14).plain
    lines = text.split("\n")
    assert len(lines) == 14 and all(len(line) <= 80 for line in lines)
    assert lines[0].lstrip().startswith("0.6") and "┤" in lines[0]  # top of the loss axis (padded)
    assert "4.400e-04" in lines[0]  # top of the lr axis
    assert lines[10].lstrip().startswith("0.0") and lines[11].strip().startswith("└")
    assert re.search(r"\b1\b.*step 500.*1,000", lines[12])
    assert "━━ loss" in lines[13] and "lr (right axis)" in lines[13]
    dots = [ch for line in lines[:11] for ch in line if 0x2800 < ord(ch) <= 0x28FF]
    assert len(dots) > 60  # the curve is drawn across the plot


def test_plot_without_points_says_why_and_survives_nan_and_tiny_boxes() -> None:
    assert "no loss reported yet" in plot([Series("loss", [], "white")], 60, 10).plain
    nan = [(1.0, float("nan")), (2.0, float("inf"))]
    assert "no loss reported yet" in plot([Series("loss", nan, "white")], 60, 10).plain
    assert "too small" in plot([Series("loss", [(1.0, 1.0)], "white")], 10, 3).plain
    single = plot([Series("loss", [(5.0, 0.3)], "white")], 60, 10).plain
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in single)  # one point still shows


# ----- stage timeline -----------------------------------------------------------------------------
def test_timeline_shows_done_current_and_to_come_with_durations() -> None:
    start = NOW - timedelta(minutes=10)
    view = {"status": "processing", "stages": [
        ["queued", iso(start)], ["downloading", iso(start + timedelta(seconds=30))],
        ["training", iso(start + timedelta(seconds=90))]]}
    rows = timeline(view, NOW)
    assert rows[0] == ("done", "queued", "30s")
    assert rows[1] == ("done", "downloading weights", "1m 00s")
    assert rows[2] == ("current", "training", "8m 30s")
    assert [r[1] for r in rows[3:]] == ["saving weights", "uploading"]
    assert all(r[0] == "next" for r in rows[3:])


def test_timeline_of_a_failed_training_ends_with_the_failure() -> None:
    start = NOW - timedelta(minutes=10)
    view = {"status": "failed", "completed_at": iso(start + timedelta(minutes=4)), "stages": [
        ["queued", iso(start)], ["training", iso(start + timedelta(minutes=1))], ["failed", iso(start + timedelta(minutes=4))]]}
    rows = timeline(view, NOW)
    assert rows == [("done", "queued", "1m 00s"), ("done", "training", "3m 00s"), ("failed", "failed", "")]
    assert timeline({"status": "starting", "stages": []}, NOW)[0] == ("current", "queued", "")


# ----- the whole log ------------------------------------------------------------------------------
def test_log_file_indexes_appends_and_finds_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)) + "Error: boom\npartial")
    log = LogFile(path)
    assert log.update()
    assert log.line_count == 1002 and log.line(0) == "line 0" and log.line(1001) == "partial"
    needle = re.compile(re.escape(b"error"), re.IGNORECASE)
    assert log.find(needle, 0) == 1000
    assert log.find(needle, 1000) == 1000  # wraps around to the only match
    assert log.find(re.compile(b"line 5\\b"), 900, backwards=True) == 5
    assert log.find(re.compile(b"nowhere"), 0) is None
    with open(path, "a") as file:
        file.write(" end\nmore\n")
    assert log.update() and log.line(1001) == "partial end" and log.line_count == 1003
    assert not log.update()  # nothing new
    log.close()


def test_log_lines_show_like_a_terminal_and_tails_read_from_the_end(tmp_path: Path) -> None:
    assert display(b"10%|#   \r50%|#####\r") == "50%|#####"
    assert display(b"a\x1b[31mred\x07") == "ared"  # core.text: the whole sequence goes
    path = tmp_path / "big.log"
    path.write_text("".join(f"{i}\n" for i in range(100_000)))
    assert read_tail(path, 3, block=64) == "99997\n99998\n99999\n"
    assert read_tail(tmp_path / "missing.log", 3) == ""


# ----- new-training form --------------------------------------------------------------------------
SCHEMA = {
    "required": ["input_images"],
    "properties": {
        "steps": {"type": "integer", "default": 1000, "minimum": 3, "maximum": 6000, "x-order": 2},
        "input_images": {"type": "string", "format": "uri", "x-order": 0, "description": "A zip of images"},
        "autocaption": {"type": "boolean", "default": True, "x-order": 3},
        "optimizer": {"allOf": [{"enum": ["adamw8bit", "prodigy"], "type": "string"}], "default": "adamw8bit",
                      "x-order": 4},
        "learning_rate": {"type": "number", "default": 0.0004, "x-order": 1},
    },
}


def test_schema_fields_come_in_order_with_kinds_and_choices() -> None:
    fields = fields_of(SCHEMA)
    assert [f.name for f in fields] == ["input_images", "learning_rate", "steps", "autocaption", "optimizer"]
    assert fields[0].kind == "file" and fields[0].required
    assert fields[4].choices == ("adamw8bit", "prodigy")
    assert images_field(fields) == "input_images"


def test_extra_inputs_are_name_value_pairs() -> None:
    # The values are typed by core.inputs (tests/test_inputs.py runs its table through this form).
    assert parse_pairs("steps=10 trigger_word='A B'") == {"steps": "10", "trigger_word": "A B"}
    with pytest.raises(BadArgumentError, match="name=value"):
        parse_pairs("steps")


# ----- hooks --------------------------------------------------------------------------------------
async def test_completion_hook_gets_the_training_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "hook.json"
    command = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())\""
    view = {"id": "abc", "status": "succeeded", "output_version": "me/m:1"}
    assert await run_hook(command, view) == 0
    assert json.loads(out.read_text()) == view
    assert await run_hook("exit 3", view) == 3


async def test_a_burst_far_longer_than_the_live_tail_shows_exactly_its_last_lines() -> None:
    """A million-line log's webhook brings MBs at once: the tail keeps its last TAIL_LINES whole
    lines (split from the end only), and the unfinished last line waits for its end."""
    from textual.app import App, ComposeResult

    from tui.widgets.live_log import TAIL_CHARS_PER_LINE, TAIL_LINES, LiveLog

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield LiveLog()

    burst = "".join(f"step {n:06d} loss 0.{n % 97:02d}\n" for n in range(60_000))
    assert len(burst) > TAIL_LINES * TAIL_CHARS_PER_LINE  # long enough to be split from its end
    async with Host().run_test(size=(100, 30)) as pilot:
        log = pilot.app.query_one(LiveLog)
        log.feed("first\r\n" + burst[:1000])
        log.feed(burst[1000:] + "step 060000 lo")
        log.flush()
        assert len(log.lines) == TAIL_LINES
        assert log.lines[0] == f"step {60_000 - TAIL_LINES:06d} loss 0.{(60_000 - TAIL_LINES) % 97:02d}"
        assert log.lines[-1] == "step 059999 loss 0.53"
        log.feed("ss 0.55\n")
        log.flush()
        assert log.lines[-1] == "step 060000 loss 0.55" and len(log.lines) == TAIL_LINES
