"""The single update function: ordering, duplicates, terminal finality, logs, significance."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.store import Store
from core.updates import UpdateResult, Updater

T0 = datetime(2024, 9, 10, 5, 10, 0, tzinfo=timezone.utc)
BAR = "flux_train_replicate:  {p:>2}%|███       | {s}/1000 [02:10<04:50,  2.38it/s, lr: 4.0e-04 loss: 3.2e-01]\n"


def body(status: str, logs: str | None = "", **extra: Any) -> dict[str, Any]:
    data = {
        "id": "zz4ibbonubfz7carwiefibzgga", "model": "ostris/flux-dev-lora-trainer",
        "version": "a" * 64, "status": status, "input": {"steps": 1000},
        "logs": logs, "output": None, "error": None, "urls": {},
        "created_at": "2024-09-10T05:09:00.123Z",
        "started_at": "2024-09-10T05:10:00.123456Z" if status != "starting" else None,
    }
    data.update(extra)
    return data


def bars(*steps: int) -> str:
    return "Starting train job\n" + "".join(BAR.format(p=s // 10, s=s) for s in steps)


@pytest.fixture
def updater(isolated_home: Path) -> Updater:
    store = Store()
    clock = iter(T0 + timedelta(seconds=i) for i in range(10_000))
    yield Updater(store, clock=lambda: next(clock))
    store.close()


def test_a_training_moves_forward_and_ends_with_its_output(updater: Updater) -> None:
    seen: list[UpdateResult] = []
    updater.subscribe(seen.append)
    assert updater.apply(body("starting"), source="create").outcome == "created"
    updater.apply(body("processing", bars(100)), source="webhook", webhook_id="msg_1")
    mid = updater.store.get("zz4ibbonubfz7carwiefibzgga")
    assert mid["status"] == "processing" and mid["stage"] == "training"
    assert mid["overall_percent"] == pytest.approx(10 + 0.85 * 10, abs=0.01)
    done = updater.apply(body("succeeded", bars(100, 1000), output={"version": "me/lora:" + "b" * 64,
                                                                    "weights": "https://x/w.tar"},
                              completed_at="2024-09-10T05:40:00.123456789Z"),
                         source="webhook", webhook_id="msg_2")
    assert done.became_terminal and done.written
    record = updater.store.get("zz4ibbonubfz7carwiefibzgga")
    assert record["status"] == "succeeded" and record["overall_percent"] == 100
    assert record["output_version"] == "me/lora:" + "b" * 64
    assert record["destination"] == "me/lora"  # known from the output version
    assert record["completed_at"] == "2024-09-10T05:40:00.123456Z"
    assert [s[0] for s in record["stages"]][-1] == "succeeded"
    assert [r.outcome for r in seen] == ["created", "updated", "updated"]


def test_duplicate_webhook_id_is_a_no_op(updater: Updater) -> None:
    updater.apply(body("processing", bars(100)), source="webhook", webhook_id="msg_1")
    again = updater.apply(body("processing", bars(100, 200)), source="webhook", webhook_id="msg_1")
    assert again.outcome == "duplicate" and not again.accepted
    assert updater.store.read_log("zz4ibbonubfz7carwiefibzgga") == bars(100)


def test_status_never_regresses_and_terminal_is_final(updater: Updater) -> None:
    updater.apply(body("processing", bars(100)), source="webhook", webhook_id="a")
    assert updater.apply(body("starting"), source="webhook", webhook_id="b").outcome == "stale"
    updater.apply(body("canceled", bars(100, 200)), source="cancel")
    after = updater.apply(body("succeeded", bars(100, 200, 300), output={"version": "me/x:1"}),
                          source="webhook", webhook_id="c")
    assert after.outcome == "final"
    record = updater.store.get("zz4ibbonubfz7carwiefibzgga")
    assert record["status"] == "canceled" and record["output_version"] is None
    assert updater.apply(body("processing", bars(100, 200, 300)), source="poll").outcome == "stale"


def test_a_terminal_state_may_still_be_filled_in(updater: Updater) -> None:
    updater.apply(body("failed", bars(100)), source="poll")
    late = updater.apply(body("failed", bars(100) + "Traceback (most recent call last):\nValueError: boom\n",
                              error="boom"), source="webhook", webhook_id="w")
    assert late.outcome == "updated" and not late.became_terminal
    record = updater.store.get("zz4ibbonubfz7carwiefibzgga")
    assert record["error"] == "boom"
    assert "ValueError: boom" in updater.store.read_log("zz4ibbonubfz7carwiefibzgga")


def test_shorter_log_is_ignored_and_longer_appends_only_the_suffix(updater: Updater) -> None:
    updater.apply(body("processing", bars(100, 200)), source="webhook", webhook_id="1")
    shorter = updater.apply(body("processing", bars(100)), source="webhook", webhook_id="2")
    assert shorter.new_log == ""
    longer = updater.apply(body("processing", bars(100, 200, 300)), source="webhook", webhook_id="3")
    assert longer.new_log == BAR.format(p=30, s=300)
    assert updater.store.read_log("zz4ibbonubfz7carwiefibzgga") == bars(100, 200, 300)


def test_progress_is_written_only_when_it_moves_a_point(updater: Updater) -> None:
    updater.apply(body("processing", bars(100)), source="poll")
    written = []
    for step in range(101, 130):  # each step is 0.085 points overall
        steps = list(range(100, step + 1))
        written.append(updater.apply(body("processing", bars(*steps)), source="poll").written)
    assert 1 <= sum(written) <= 3  # 29 steps = ~2.5 points
    # the log itself always grows
    assert updater.store.log_length("zz4ibbonubfz7carwiefibzgga") == len(bars(*range(100, 130)))


def test_only_an_ending_seen_as_it_happens_is_news(updater: Updater) -> None:
    old = updater.apply(body("succeeded", bars(100), id="imported"), source="import")
    assert old.outcome == "created" and not old.became_terminal  # no "training succeeded" for history
    news = updater.apply(body("failed", bars(100), id="hooked"), source="webhook", webhook_id="h")
    assert news.became_terminal  # its completion webhook is the first we hear of it
    updater.apply(body("processing", bars(100)), source="poll")
    assert updater.apply(body("canceled", bars(100)), source="poll").became_terminal


def test_unknown_training_from_a_webhook_is_recorded(updater: Updater) -> None:
    result = updater.apply(body("processing", "Starting train job\n", id="newid"), source="webhook", webhook_id="x")
    assert result.outcome == "created" and updater.store.get("newid")["status"] == "processing"


def test_progress_survives_a_restart(isolated_home: Path) -> None:
    store = Store()
    Updater(store, clock=lambda: T0).apply(body("processing", bars(100, 310)), source="poll")
    store.close()
    reopened = Store()
    tracker = Updater(reopened, clock=lambda: T0).tracker("zz4ibbonubfz7carwiefibzgga")
    assert tracker.state.step == 310 and [s for s, _ in tracker.state.losses] == [100, 310]
    reopened.close()


def test_earlier_runs_of_a_trainer_give_an_eta_when_the_log_says_nothing(updater: Updater) -> None:
    quiet = {"model": "someone/quiet-trainer", "logs": "nothing to parse here\n"}
    assert updater.apply(body("processing", id="first", **quiet), source="poll").progress.eta_seconds is None
    for i, minutes in enumerate((10, 20, 30)):  # imported history, then one that ends while we watch
        done = body("succeeded", id=f"old{i}", **quiet, started_at="2024-09-10T05:00:00Z",
                    completed_at=f"2024-09-10T05:{minutes:02d}:00Z")
        updater.apply(done, source="import")
    fresh = updater.apply(body("processing", id="fresh", **quiet, started_at="2024-09-10T05:09:00Z"),
                          source="poll")
    # median of 10, 20 and 30 minutes = 20 minutes; the clock reads about 05:10 (T0 + a few seconds)
    assert fresh.progress.eta_seconds == pytest.approx(20 * 60 - 60, abs=30)
