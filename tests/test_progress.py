"""Overall progress and ETA: the promised bands, time-based fallbacks, monotonicity, outcomes."""

from __future__ import annotations

from pathlib import Path

import json
from datetime import datetime, timedelta, timezone

import pytest

from core.logparse import Stage
from core.models import Status
from core.progress import (
    FINISHING_SECONDS,
    Progress,
    ProgressTracker,
    history_curve,
    steps_from_input,
    time_curve,
)
from synthlog import JOB, flux_log, tqdm_line

T0 = datetime(2024, 9, 10, 5, 10, 0, tzinfo=timezone.utc)
STEP_LINE = (Path(__file__).resolve().parent / "fixtures" / "trainers" / "flux-training-step-line.txt").read_text(encoding="utf-8").split("\n", 1)[1]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def update(
    tracker: ProgressTracker, logs: str | None, status: Status = Status.PROCESSING, seconds: float = 0.0
) -> Progress:
    return tracker.update(logs, status, now=at(seconds), started_at=T0, created_at=T0 - timedelta(seconds=5))


def test_flux_bar_at_31_percent_is_36_35_overall() -> None:
    line = f"{JOB}:  31%|███       | 310/1000 [02:10<04:50,  2.38it/s, lr: 4.0e-04 loss: 3.2e-01]\n"
    progress = update(ProgressTracker(), line, seconds=200)
    assert progress.stage is Stage.TRAINING
    assert progress.train_percent == 31.0 and progress.overall_percent == 36.35
    assert progress.eta_seconds == 4 * 60 + 50 + FINISHING_SECONDS
    assert progress.rate == pytest.approx(2.38) and progress.loss == pytest.approx(0.32)


def test_150_of_1000_steps_is_22_75_overall() -> None:
    log = "Starting train job\n" + tqdm_line(JOB, 150, 1000, 150, 1.0, ", lr: 4.0e-04 loss: 3.000e-01") + "\n"
    progress = update(ProgressTracker(), log, seconds=400)
    assert (progress.step, progress.total_steps) == (150, 1000)
    assert progress.overall_percent == 22.75


def test_nothing_parseable_two_minutes_in_is_about_14_percent() -> None:
    for logs in (None, "", "Setting up the environment\nstill setting up\n"):
        progress = update(ProgressTracker(), logs, seconds=120)
        assert progress.stage is Stage.BOOTING
        assert progress.overall_percent == pytest.approx(14.0, abs=0.3)
        assert progress.eta_seconds is None  # no history, nothing to count: unknown


def test_time_curve_approaches_but_never_reaches_95() -> None:
    values = [time_curve(t) for t in (0, 60, 120, 600, 3600, 10 * 3600, 1e9)]
    assert values[0] == 0 and values == sorted(values)
    assert time_curve(120) == pytest.approx(14.05, abs=0.01)
    assert all(v < 95 for v in values) and round(values[-1], 2) < 95
    assert history_curve(450, 900) == 50 and history_curve(810, 900) == pytest.approx(90)
    assert 94 < history_curve(5000, 900) < 95


def test_history_gives_time_based_progress_and_eta() -> None:
    tracker = ProgressTracker(history=[600, 900, 1200, -1])  # median 900; nonsense ignored
    progress = update(tracker, "Setting up\n", seconds=450)
    assert progress.overall_percent == 50.0 and progress.eta_seconds == 450.0
    # before training, a known stage's band still bounds the estimate
    progress = update(tracker, "Setting up\nDownloading weights...\n", seconds=460)
    assert progress.stage is Stage.DOWNLOADING and progress.overall_percent == 50.0  # never backwards
    assert progress.eta_seconds == 440.0
    # past the typical duration the history says nothing more
    assert update(tracker, None, seconds=2000).eta_seconds is None


def test_preparation_stages_sit_between_5_and_10_percent() -> None:
    steps = [
        ("2024-09-10T05:10:35Z | INFO  | [ Initiating ] chunk_size=150M dest=. url=x", Stage.DOWNLOADING, 5.0),
        ("Extracted 5 files from zip to input_images", Stage.PREPARING, 6.0),
        ("Caption for input_images/a.png: a dog", Stage.CAPTIONING, 7.0),
        ("Loading Flux model", Stage.LOADING, 8.0),
        ("Caching latents for input_images", Stage.CACHING, 9.0),
    ]
    log = ""
    tracker = ProgressTracker()
    for line, stage, percent in steps:
        log += line + "\n"
        progress = tracker.update(log, Status.PROCESSING, now=at(0), started_at=None, created_at=None)
        assert (progress.stage, progress.overall_percent) == (stage, percent)
    # with time known, a long download creeps up its band but stays in it
    progress = update(ProgressTracker(), steps[0][0] + "\n", seconds=100)
    assert 5 < progress.overall_percent <= 6


def test_overall_never_goes_backwards() -> None:
    tracker = ProgressTracker()
    assert update(tracker, "", seconds=300).overall_percent == 31.32
    # the log then turns out to be merely downloading: the number holds
    assert update(tracker, "Downloading weights...\n", seconds=301).overall_percent == 31.32
    log = "Starting train job\n" + tqdm_line(JOB, 500, 1000, 500, 1.0, ", lr: 4.0e-04 loss: 3.000e-01") + "\n"
    assert update(tracker, log, seconds=900).overall_percent == 52.5


def test_outcomes() -> None:
    log = STEP_LINE
    tracker = ProgressTracker()
    update(tracker, log, seconds=2700)
    failed = update(tracker, log, Status.FAILED, seconds=2710)
    assert failed.stage is Stage.FAILED and failed.overall_percent == 80.32 and failed.eta_seconds is None
    # status never goes back: a late "processing" webhook does not revive it
    assert update(tracker, log, Status.PROCESSING, seconds=2720).stage is Stage.FAILED

    tracker = ProgressTracker()
    update(tracker, log, seconds=2700)
    done = update(tracker, log, Status.SUCCEEDED, seconds=3300)
    assert (done.stage, done.overall_percent, done.eta_seconds) == (Stage.SUCCEEDED, 100.0, None)

    for status in (Status.CANCELED, Status.ABORTED):
        ended = update(ProgressTracker(), None, status, seconds=10)
        assert (ended.stage, ended.overall_percent, ended.eta_seconds) == (Stage.CANCELED, 0.0, None)


def test_terminal_status_reads_the_unterminated_last_line() -> None:
    tracker = ProgressTracker()
    log = STEP_LINE.rstrip("\n")
    assert update(tracker, log, seconds=10).step is None  # could still be growing
    assert update(tracker, log, Status.FAILED, seconds=11).step == 2482


def test_starting_is_queued_within_0_to_5_percent() -> None:
    tracker = ProgressTracker(history=[900])
    progress = tracker.update(None, Status.STARTING, now=at(600), started_at=None, created_at=T0)
    assert progress.stage is Stage.QUEUED and progress.overall_percent == 5.0
    assert progress.eta_seconds == 900.0  # not started: the whole typical run is ahead
    progress = ProgressTracker().update(None, Status.STARTING, now=at(10), started_at=None, created_at=T0)
    assert 0 < progress.overall_percent < 5 and progress.eta_seconds is None


def test_eta_counts_the_trainers_remaining_time_down() -> None:
    tracker = ProgressTracker()
    progress = update(tracker, STEP_LINE, seconds=2700)
    assert progress.eta_seconds == 544 + FINISHING_SECONDS
    assert tracker.estimate(at(2800)).eta_seconds == 444 + FINISHING_SECONDS
    assert tracker.estimate(at(99999)).eta_seconds == FINISHING_SECONDS
    # the same log again is no news: the countdown goes on
    assert update(tracker, STEP_LINE, seconds=2750).eta_seconds == 494 + FINISHING_SECONDS


def test_eta_from_the_step_rate_measured_over_wall_time() -> None:
    tracker = ProgressTracker()
    log = "".join(f"step {n}/1000 loss={1 / n:.4f}\n" for n in range(1, 101))
    first = update(tracker, log, seconds=100)
    assert first.step == 100 and first.eta_seconds is None  # one observation: no rate yet
    log += "".join(f"step {n}/1000 loss={1 / n:.4f}\n" for n in range(101, 141))
    second = update(tracker, log, seconds=120)  # 40 steps in 20 s
    assert second.rate == pytest.approx(2.0)
    assert second.eta_seconds == pytest.approx(859 / 2.0 + FINISHING_SECONDS)  # the last step is 999
    # a pause (sampling, a checkpoint): the ETA counts down meanwhile, and the rate takes it in
    assert tracker.estimate(at(150)).eta_seconds == pytest.approx(859 / 2.0 - 30 + FINISHING_SECONDS)
    log += "".join(f"step {n}/1000 loss={1 / n:.4f}\n" for n in range(141, 161))
    third = update(tracker, log, seconds=160)  # 60 steps in 60 s, the pause included
    assert third.rate == pytest.approx(1.0)
    assert third.eta_seconds == pytest.approx(839 + FINISHING_SECONDS)


def test_finishing_eta_and_percent() -> None:
    tracker = ProgressTracker()
    log = flux_log(20)
    progress = update(tracker, log, seconds=100)
    assert progress.stage is Stage.SAVING and progress.overall_percent == 95.0
    assert progress.eta_seconds == FINISHING_SECONDS
    assert tracker.estimate(at(110)).eta_seconds == FINISHING_SECONDS - 10
    log += "Uploading to Hugging Face: me/lora\n"
    assert update(tracker, log, seconds=120).overall_percent == 97.5


def test_configured_steps_from_input() -> None:
    assert steps_from_input({"steps": 1000, "input_images": "x"}) == 1000
    assert steps_from_input({"max_train_steps": "500"}) == 500
    assert steps_from_input({"steps": True}) is None and steps_from_input({"steps": 0}) is None
    assert steps_from_input(None) is None and steps_from_input({}) is None
    tracker = ProgressTracker(configured_steps=1000)
    progress = update(tracker, "Starting train job\n35%|███▌      | 350/1000 [02:10<04:02,  2.68it/s]\n", seconds=200)
    assert (progress.stage, progress.step, progress.overall_percent) == (Stage.TRAINING, 350, 39.75)


def test_to_dict_is_json_ready_with_exact_keys() -> None:
    progress = update(ProgressTracker(), STEP_LINE, seconds=2700)
    data = progress.to_dict()
    assert list(data) == [
        "stage", "step", "total_steps", "train_percent", "overall_percent", "eta_seconds", "rate", "loss", "lr",
        "estimated",
    ]  # fmt: skip
    assert json.loads(json.dumps(data)) == data
    assert data["stage"] == "training" and data["overall_percent"] == 80.32 and data["train_percent"] == 82.73
    with pytest.raises(AttributeError):
        progress.stage = Stage.FAILED  # type: ignore[misc]


def test_state_exposes_the_series_and_traceback() -> None:
    tracker = ProgressTracker()
    log = flux_log(50) + "Traceback (most recent call last):\nFile \"x.py\", line 1, in <module>\nRuntimeError: boom\n"
    update(tracker, log, Status.FAILED, seconds=500)
    assert len(tracker.state.losses) == 50 and tracker.state.traceback is not None
    assert tracker.state.traceback.endswith("RuntimeError: boom")


def test_finishing_allowance_is_learned_from_the_trainers_history() -> None:
    from core.progress import RunRecord

    runs = [RunRecord(900, steps=1000, preparation=100, training=780, finishing=f) for f in (8.0, 12.0, 40.0)]
    tracker = ProgressTracker(history=runs)
    assert tracker.finishing_allowance() == 12.0  # the median measured, not a fixed 30 s
    progress = update(tracker, flux_log(20), seconds=100)
    assert progress.stage is Stage.SAVING and progress.eta_seconds == 12.0
    assert tracker.estimate(at(105)).eta_seconds == 7.0
    assert ProgressTracker().finishing_allowance() == FINISHING_SECONDS  # no history: the default


def test_history_eta_before_the_bar_scales_with_the_configured_steps() -> None:
    from core.progress import RunRecord

    runs = [RunRecord(900 + d, steps=1000, preparation=100, training=780 + d, finishing=20) for d in (-20, 0, 20)]
    short = ProgressTracker(history=runs, configured_steps=40)
    assert update(short, "Setting up\n", seconds=10).eta_seconds == pytest.approx(100 + 40 * 0.78 + 20 - 10)
    long = ProgressTracker(history=runs, configured_steps=1000)
    assert update(long, "Setting up\n", seconds=10).eta_seconds == pytest.approx(100 + 780 + 20 - 10)


def test_a_run_record_from_a_stored_training() -> None:
    from core.progress import run_record

    record = {
        "status": "succeeded", "started_at": "2024-09-10T05:10:00Z", "completed_at": "2024-09-10T05:30:00Z",
        "input": {"steps": 1000}, "total_steps": 1000, "training_done_at": "2024-09-10T05:29:10Z",
        "stages": [["booting", "2024-09-10T05:10:00Z"], ["training", "2024-09-10T05:13:00Z"],
                   ["saving", "2024-09-10T05:29:30Z"], ["succeeded", "2024-09-10T05:30:00Z"]],
    }
    run = run_record(record)
    assert run is not None
    assert (run.duration, run.steps, run.preparation, run.training, run.finishing) == (1200, 1000, 180, 970, 50)
    assert run_record({**record, "status": "failed"}) is None


def test_sampling_pauses_ahead_count_whole() -> None:
    """ai-toolkit samples every `sample_every` steps (its config) while its bar waits; the last
    sampling's own bar says how long one takes."""
    tracker = ProgressTracker()
    head = '"sample_every": 100,\n' + "Generating Images: 100%|██████████| 4/4 [00:40<00:00, 10.00s/it]\n"
    log = head + tqdm_line(JOB, 10, 1000, 10, 1.0, ", lr: 4.0e-04 loss: 3.000e-01") + "\n"
    update(tracker, log, seconds=100)
    log += tqdm_line(JOB, 150, 1000, 150, 1.0, ", lr: 4.0e-04 loss: 3.000e-01") + "\n"
    progress = update(tracker, log, seconds=280)  # 140 steps and one 40 s sampling in 180 s
    assert progress.eta_seconds == pytest.approx(849 * 1.0 + 8 * 40 + FINISHING_SECONDS)
