"""The JSON shapes shared by the CLI and the local API (core/views.py), and the CLI's small pure
helpers: exit codes, `-i key=value` parsing and checking, text safe for a terminal."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import BadArgumentError
from core.views import LOGS_KEYS, STATUS_KEYS, logs_view, status_view, tail_offset
from tui.cli import _common as c
from tui.cli import _output as o
from tui.cli.train import check_inputs, parse_inputs

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
RUNNING = {"id": "abc", "status": "processing", "stage": "training", "overall_percent": 40.0, "step": 100,
           "eta_seconds": 999.0, "input": {"steps": 1000}, "stages": [["booting", "2026-11-24T11:00:00Z"]]}


def test_status_view_has_every_key_in_order_even_for_a_sparse_record() -> None:
    view = status_view({"id": "abc", "status": "starting"})
    assert list(view) == list(STATUS_KEYS)
    assert view["terminal"] is False and view["input"] == {} and view["stages"] == [] and view["loss"] is None


def test_live_progress_overrides_the_stored_figures() -> None:
    live = {"stage": "training", "step": 150, "total_steps": 1000, "train_percent": 15.0,
            "overall_percent": 22.75, "eta_seconds": 600.0, "rate": 1.2, "loss": 0.25, "lr": 4e-4}
    view = status_view(RUNNING, live, now=NOW)
    assert view["step"] == 150 and view["overall_percent"] == 22.75 and view["loss"] == 0.25
    assert view["eta_at"] == "2026-11-24T12:10:00Z"
    view["input"]["steps"] = 1
    assert RUNNING["input"] == {"steps": 1000}, "the view never shares the record's dicts"


def test_a_finished_training_has_no_eta_and_ignores_live_progress() -> None:
    done = dict(RUNNING, status="succeeded", overall_percent=100.0)
    view = status_view(done, {"overall_percent": 50.0, "eta_seconds": 10.0})
    assert view["terminal"] is True and view["overall_percent"] == 100.0
    assert view["eta_seconds"] is None and view["eta_at"] is None


def test_logs_view_pages_by_offset_and_tails_by_lines() -> None:
    log = "one\ntwo\nthree\n"
    view = logs_view({"id": "abc", "status": "failed"}, log)
    assert list(view) == list(LOGS_KEYS) and view["logs"] == log and view["terminal"] is True
    later = logs_view({"id": "abc"}, log, since=view["next_offset"] - 6)
    assert later["logs"] == "three\n" and later["offset"] == len(log) - 6
    assert logs_view({"id": "abc"}, log, tail=2)["logs"] == "two\nthree\n"
    assert logs_view({"id": "abc"}, log, since=10_000)["logs"] == ""


@given(st.lists(st.text(alphabet="ab \t", max_size=5), max_size=8), st.booleans(), st.integers(0, 10))
def test_tail_offset_gives_the_last_n_lines(lines: list[str], trailing: bool, n: int) -> None:
    log = "\n".join(lines) + ("\n" if trailing and lines else "")
    tail = log[tail_offset(log, n):]
    expected = log.splitlines(keepends=True)[-n:] if n else []
    assert tail == "".join(expected)


def test_exit_codes() -> None:
    assert [c.exit_code_for(s) for s in ("succeeded", "failed", "canceled", "aborted")] == [0, 1, 2, 1]
    assert c.combined_exit_code(["succeeded", "canceled"]) == 2
    assert c.combined_exit_code(["canceled", "failed", "succeeded"]) == 1
    assert c.combined_exit_code(["succeeded", "succeeded"]) == 0


def test_inputs_are_key_value_text_read_later_by_the_schema() -> None:
    assert parse_inputs(["steps=1000", "word=TOK", "empty=", "eq=a=b"]) == {
        "steps": "1000", "word": "TOK", "empty": "", "eq": "a=b"}
    with pytest.raises(BadArgumentError, match="key=value"):
        parse_inputs(["novalue"])


SCHEMA = {"required": ["input_images"], "properties": {
    "input_images": {"type": "string"}, "steps": {"type": "integer", "minimum": 3, "maximum": 6000},
    "resolution": {"type": "string"}, "optimizer": {"type": "string", "enum": ["adamw8bit", "prodigy"]},
    "learning_rate": {"type": "number"}, "autocaption": {"type": "boolean"}}}


def test_inputs_checked_against_the_schema() -> None:
    checked = check_inputs({"steps": "1000.0", "resolution": "512", "learning_rate": "1"}, SCHEMA, "t/t",
                           images_later=True)
    assert checked == {"steps": 1000, "resolution": "512", "learning_rate": 1}
    for given_input, message in [({"stepz": "1"}, "has no input 'stepz'; its inputs are: autocaption, input_images"),
                                 ({"steps": "2"}, "at least 3"), ({"steps": "7000"}, "at most 6000"),
                                 ({"steps": "true"}, "whole number"), ({"optimizer": "sgd"}, "one of adamw8bit, prodigy"),
                                 ({"autocaption": "maybe"}, "true or false"), ({"learning_rate": "fast"}, "a number")]:
        with pytest.raises(BadArgumentError, match=message):
            check_inputs(given_input, SCHEMA, "t/t", images_later=True)
    with pytest.raises(BadArgumentError, match="needs 'input_images'"):
        check_inputs({}, SCHEMA, "t/t", images_later=False)


def test_text_for_a_terminal_loses_its_control_sequences() -> None:
    hostile = "a\x1b[2J\x1b]0;title\x07b\x9b31mc\r\nd\re\tf\x00\n"
    assert o.safe_text(hostile, terminal=True) == "abc\nd\ne\tf\n"  # core.text drops the whole 8-bit CSI
    assert o.safe_text(hostile, terminal=False) == hostile
