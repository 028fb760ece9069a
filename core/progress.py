"""How far along a training is, as one number, and how long it still needs.

Overall progress, as the product has always promised it:

    starting (queued)                      0 – 5 %
    preparation (download … caching)       5 – 10 %   one fifth of the band per stage
    training                              10 – 95 %   = 10 + 0.85 × train %
    finishing (saving, uploading)         95 – 100 %  saving 95, uploading 97.5
    succeeded                                  100 %

A tracker never lets the number go backwards (failed and canceled keep the last value), so nothing
uncertain may raise it: the parser only enters the finishing stages on certain signals, and time
alone never reaches the finishing band. Where the log has nothing to count (downloading, or a
trainer that prints nothing), time stands in for progress:
- with history (earlier successful runs of the same trainer): elapsed / the typical duration of a
  run of this many steps, as a percent, up to 90 %, then easing towards 95 % without reaching it;
- without: 95 × (1 − e^(−t/750 s)) (≈ 14 % two minutes in), capped at GUESS_CAP and flagged as an
  estimate (`estimated: true`), inside a known stage clamped to that stage's band.

ETA (seconds for the whole job), in order of preference, while training:
1. the remaining steps at the step rate measured over wall time (a window of several minutes, so
   sampling and checkpoint pauses are part of it), counted down since the last step;
2. the remaining steps at the per-step time of earlier runs;
3. the trainer's own `[elapsed<remaining]`, counted down since it was seen;
4. the remaining steps at the trainer's own rate;
each plus the finishing allowance: the median measured finishing time (saving, archive, upload)
of earlier runs of the trainer, or FINISHING_SECONDS without any. Before training: the typical
duration for the configured steps, minus elapsed. Otherwise unknown (None): nothing is invented.
A finished training (any outcome) has no ETA.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.logparse import LogParser, LogState, Stage
from core.models import Status, parse_time

# Default finishing allowance (saving the weights, the archive, the platform's upload) when no
# earlier run of the trainer measured it: the reference's flux run spends about this long.
FINISHING_SECONDS = 30.0
# Time constant of the no-history curve: 95 × (1 − e^(−120/750)) ≈ 14.05 % at two minutes.
TIME_CONSTANT = 750.0
# Time-based estimates stop here, so that even rounded to 2 decimals they stay below 95.
TIME_CEILING = 94.99
# A guess (no history, nothing to count) never shows more than this: far from the finishing band.
GUESS_CAP = 50.0
# The measured step rate looks back at least this far, so that a sampling pause every 100 steps is
# inside the window …
RATE_WINDOW = 180.0
RATE_SHARE = 0.9  # … and this share of the training so far: sampling every N steps averages out
RATE_MIN_SPAN = 20.0  # seconds of observations before the measured rate is trusted

_TRAINING_FROM, _TRAINING_TO = 10.0, 95.0
_PREPARATION = (Stage.DOWNLOADING, Stage.PREPARING, Stage.CAPTIONING, Stage.LOADING, Stage.CACHING)
_BANDS: dict[Stage, tuple[float, float]] = {
    Stage.QUEUED: (0.0, 5.0),
    Stage.BOOTING: (0.0, _TRAINING_TO),  # running, but its log tells us nothing: time only
    **{stage: (5.0 + i, 6.0 + i) for i, stage in enumerate(_PREPARATION)},
    Stage.TRAINING: (_TRAINING_FROM, _TRAINING_TO),
    Stage.SAVING: (95.0, 95.0),
    Stage.UPLOADING: (97.5, 97.5),
}
_OUTCOMES = {
    Status.SUCCEEDED: Stage.SUCCEEDED,
    Status.FAILED: Stage.FAILED,
    Status.CANCELED: Stage.CANCELED,
    Status.ABORTED: Stage.CANCELED,
}
_DONE_TRAINING = (Stage.SAVING, Stage.UPLOADING, Stage.SUCCEEDED)
_STEP_INPUTS = ("steps", "max_train_steps", "max_steps", "num_train_steps")


@dataclass(frozen=True)
class Progress:
    stage: Stage
    step: int | None
    total_steps: int | None
    train_percent: float | None  # 0–100, rounded to 2 decimals
    overall_percent: float  # 0–100, rounded to 2 decimals
    eta_seconds: float | None  # the whole job's remaining time
    rate: float | None  # steps per second
    loss: float | None
    lr: float | None
    estimated: bool = False  # overall_percent is a guess from the clock alone
    training_done: bool = False  # the training bar reached its last step (not in the JSON shapes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": str(self.stage),
            "step": self.step,
            "total_steps": self.total_steps,
            "train_percent": self.train_percent,
            "overall_percent": self.overall_percent,
            "eta_seconds": self.eta_seconds,
            "rate": self.rate,
            "loss": self.loss,
            "lr": self.lr,
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class RunRecord:
    """What an earlier successful run of a trainer measured (seconds)."""

    duration: float  # started → completed
    steps: int | None = None  # the steps it ran (asked for, or as its log counted them)
    preparation: float | None = None  # started → training seen
    training: float | None = None  # training seen → its last step
    finishing: float | None = None  # its last step → completed (final sampling, saves, archive, upload)
    epochs: int | None = None  # the epochs it was asked for (LLM fine-tunes count in epochs)


def run_record(record: Mapping[str, Any]) -> RunRecord | None:
    """A stored training as history, if it succeeded: its duration, and from the times its stages
    were first seen (`stages`), how long preparation, training and finishing took."""
    if record.get("status") != "succeeded":
        return None
    start = parse_time(record.get("started_at") or record.get("created_at"))
    end = parse_time(record.get("completed_at"))
    if not start or not end or end <= start:
        return None
    seen: dict[str, datetime] = {}
    for item in record.get("stages") or []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and (at := parse_time(item[1])):
            seen.setdefault(str(item[0]), at)
    training = seen.get("training")
    finishing = parse_time(record.get("training_done_at")) or min(
        (seen[s] for s in ("saving", "uploading") if s in seen), default=None
    )
    steps = steps_from_input(record.get("input"))
    total = record.get("total_steps")
    if isinstance(total, int) and total > 0:
        steps = total
    epochs = epochs_from_input(record.get("input"))

    def span(a: datetime | None, b: datetime | None) -> float | None:
        return (b - a).total_seconds() if a and b and b >= a else None

    return RunRecord(
        duration=(end - start).total_seconds(),
        steps=steps,
        preparation=span(start, training),
        training=span(training, finishing),
        finishing=span(finishing, end),
        epochs=epochs,
    )


class History:
    """Earlier successful runs of one trainer: typical durations, per-step time, finishing time."""

    def __init__(self, runs: Sequence[float | RunRecord] = ()) -> None:
        records = [r if isinstance(r, RunRecord) else RunRecord(float(r)) for r in runs if _valid(r)]
        self.durations = [r.duration for r in records]
        per_step = [r.training / r.steps for r in records if r.training and r.steps]
        self.per_step = statistics.median(per_step) if per_step else None
        preparation = [r.preparation for r in records if r.preparation is not None and r.training]
        self.preparation = statistics.median(preparation) if preparation else None
        per_epoch = [r.training / r.epochs for r in records if r.training and r.epochs]
        self.per_epoch = statistics.median(per_epoch) if per_epoch else None
        finishing = [r.finishing for r in records if r.finishing is not None]
        self.finishing = statistics.median(finishing) if finishing else None

    def __bool__(self) -> bool:
        return bool(self.durations)

    def typical(self, steps: int | None, epochs: int | None = None) -> float | None:
        """The expected duration of a run: for `steps` steps (or `epochs` epochs) when earlier
        runs measured the time of one (a 40-step run is not as long as a 1,000-step one), else
        the median duration."""
        if not self.durations:
            return None
        if self.preparation is not None:
            if steps and self.per_step is not None:
                return self.preparation + steps * self.per_step + (self.finishing or 0.0)
            if epochs and self.per_epoch is not None:
                return self.preparation + epochs * self.per_epoch + (self.finishing or 0.0)
        return statistics.median(self.durations)


def _valid(run: float | RunRecord) -> bool:
    if isinstance(run, RunRecord):
        return run.duration > 0 and math.isfinite(run.duration)
    return isinstance(run, (int, float)) and not isinstance(run, bool) and run > 0 and math.isfinite(run)


def steps_from_input(training_input: Mapping[str, Any] | None) -> int | None:
    """The number of steps a training was asked for, from its input (`steps` and its aliases)."""
    for key in _STEP_INPUTS:
        value = (training_input or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
            return int(value)
        if isinstance(value, str) and value.strip().isdigit() and int(value) >= 1:
            return int(value)
    return None


def epochs_from_input(training_input: Mapping[str, Any] | None) -> int | None:
    """The number of epochs a training was asked for (`num_train_epochs`), for trainers that count
    in epochs rather than steps (the LLM fine-tunes)."""
    value = (training_input or {}).get("num_train_epochs")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


def time_curve(elapsed: float) -> float:
    """Percent for a run we know nothing about, `elapsed` seconds in: approaches 95, never reaches it."""
    return min(TIME_CEILING, _TRAINING_TO * (1.0 - math.exp(-max(0.0, elapsed) / TIME_CONSTANT)))


def history_curve(elapsed: float, typical: float) -> float:
    """Percent from elapsed / typical duration: linear to 90 %, then easing towards 95 %."""
    fraction = max(0.0, elapsed) / typical
    if fraction <= 0.9:
        return 100.0 * fraction
    return min(TIME_CEILING, 90.0 + 5.0 * (1.0 - math.exp(-(fraction - 0.9) / 0.1)))


class ProgressTracker:
    """Progress and ETA of one training, updated with each poll or webhook."""

    def __init__(
        self, history: Sequence[float | RunRecord] = (), *, configured_steps: int | None = None,
        configured_epochs: int | None = None,
    ) -> None:
        """`history`: earlier successful runs of the same trainer (`RunRecord`s, or durations)."""
        self.history = History(history)
        self._configured = configured_steps if configured_steps and configured_steps > 0 else None
        self._epochs = configured_epochs if configured_epochs and configured_epochs > 0 else None
        self._done_at: datetime | None = None  # when the training bar reached its last step
        self.parser = LogParser(configured_steps)
        self._status = Status.STARTING
        self._started_at: datetime | None = None
        self._created_at: datetime | None = None
        self._best = 0.0  # overall percent never goes backwards
        self._bar_seen: tuple[tuple[int | None, float | None, float | None], datetime] | None = None
        self._steps: deque[tuple[datetime, int]] = deque()  # (when, step) at each step change
        self._finishing_since: datetime | None = None

    @property
    def state(self) -> LogState:
        return self.parser.state

    def update(
        self,
        logs: str | None,
        status: Status,
        *,
        now: datetime,
        started_at: datetime | None,
        created_at: datetime | None,
    ) -> Progress:
        """Take the latest cumulative log and status; return the current estimate."""
        if status.rank >= self._status.rank:  # statuses only move forward
            self._status = status
        self._started_at = started_at or self._started_at
        self._created_at = created_at or self._created_at
        changed = self.parser.feed(logs)
        if self._status.terminal:
            changed = self.parser.finish() or changed
        if changed:
            self._observe(now)
        return self.estimate(now)

    def _observe(self, now: datetime) -> None:
        """Note when the bar and the step were seen, for countdowns and the measured rate."""
        state = self.parser.state
        bar = (state.step, state.bar_elapsed, state.bar_remaining)
        if state.bar_remaining is not None and (self._bar_seen is None or self._bar_seen[0] != bar):
            self._bar_seen = (bar, now)
        elif state.bar_remaining is None:
            self._bar_seen = None
        step = state.step
        if step is not None and state.stage is Stage.TRAINING:
            steps = self._steps
            if steps and step < steps[-1][1]:
                steps.clear()  # the run restarted its count
            if not steps or step > steps[-1][1]:
                steps.append((now, step))
                # keep what the window needs (and one observation before it)
                window = max(RATE_WINDOW, RATE_SHARE * (now - steps[0][0]).total_seconds())
                while len(steps) > 2 and (now - steps[1][0]).total_seconds() > window:
                    steps.popleft()
        if state.stage in (Stage.SAVING, Stage.UPLOADING) and self._finishing_since is None:
            self._finishing_since = now
        if self._done_at is None and (self._training_done() or state.stage in (Stage.SAVING, Stage.UPLOADING)):
            self._done_at = now

    def _training_done(self) -> bool:
        return self.parser.state.stage is Stage.TRAINING and self.parser.training_done()

    def measured_rate(self) -> float | None:
        """Steps per second over wall time across the window (pauses included), or None."""
        if len(self._steps) < 2:
            return None
        (first_at, first), (last_at, last) = self._steps[0], self._steps[-1]
        span = (last_at - first_at).total_seconds()
        if span < RATE_MIN_SPAN or last <= first:
            return None
        return (last - first) / span

    def _span(self) -> float:
        return (self._steps[-1][0] - self._steps[0][0]).total_seconds() if len(self._steps) > 1 else 0.0

    def finishing_allowance(self) -> float:
        """Seconds from the end of training to success, as this trainer's earlier runs measured."""
        return self.history.finishing if self.history.finishing is not None else FINISHING_SECONDS

    def estimate(self, now: datetime) -> Progress:
        """The estimate at `now` from what is known so far (no new logs)."""
        state = self.parser.state
        stage = self._stage()
        overall, guessed = self._overall(stage, state, now)
        estimated = False
        if stage is not Stage.SUCCEEDED:
            if overall >= self._best:
                estimated = guessed and overall > 0
            overall = self._best = max(self._best, overall)
        measured = self.measured_rate()
        rate = measured if measured is not None else state.rate
        step, train_percent = state.step, state.train_percent
        if stage in _DONE_TRAINING and step is not None and state.total_steps and step >= state.total_steps - 1:
            # training is over: ai-toolkit's bar stops at steps − 1, the run did all its steps
            step, train_percent = max(step, state.total_steps), 100.0
        return Progress(
            stage=stage,
            step=step,
            total_steps=state.total_steps,
            train_percent=None if train_percent is None else round(train_percent, 2),
            overall_percent=round(overall, 2),
            eta_seconds=self._eta(stage, state, now),
            rate=rate,
            loss=state.loss,
            lr=state.lr,
            estimated=estimated,
            training_done=self._done_at is not None,
        )

    # --- parts -----------------------------------------------------------------------------------
    def _stage(self) -> Stage:
        """Outcomes come from the status; otherwise the furthest of log and status."""
        if outcome := _OUTCOMES.get(self._status):
            return outcome
        return self._running_stage()

    def _running_stage(self) -> Stage:
        from_log = self.parser.state.stage
        from_status = Stage.BOOTING if self._status is Status.PROCESSING else Stage.QUEUED
        return from_log if from_log.order >= from_status.order else from_status

    def _elapsed(self, now: datetime) -> float | None:
        """Seconds since the run started (or, while queued, since it was created)."""
        since = self._started_at or (self._created_at if self._status is Status.STARTING else None)
        return max(0.0, (now - since).total_seconds()) if since else None

    def _overall(self, stage: Stage, state: LogState, now: datetime, *, by_time: bool = True) -> tuple[float, bool]:
        """The percent, and whether it is a guess from the clock alone."""
        if stage is Stage.SUCCEEDED:
            return 100.0, False
        if stage.terminal:
            # the last percent: the most the log showed (the clock stopped with the run)
            last, _ = self._overall(self._running_stage(), state, now, by_time=False)
            return max(self._best, last), False
        if stage is Stage.TRAINING and state.train_percent is not None:
            return _TRAINING_FROM + (_TRAINING_TO - _TRAINING_FROM) * state.train_percent / 100.0, False
        low, high = _BANDS[stage]
        elapsed = self._elapsed(now) if by_time else None
        if elapsed is None or high <= low:
            return low, False
        # Nothing to count: the trainer prints nothing we can read (yet), or runs out of sight.
        silent = stage is Stage.BOOTING or state.opaque or stage is Stage.TRAINING
        if silent:
            high = TIME_CEILING  # the whole run is out of sight: not only this stage's band
        typical = self._typical() if self._status is not Status.STARTING else None
        if typical:
            return min(high, max(low, history_curve(elapsed, typical))), False
        guess = time_curve(elapsed)
        if silent:
            return min(GUESS_CAP, max(low, guess)), True
        return min(high, max(low, guess)), False

    def _steps_asked(self) -> int | None:
        return self._configured or self.parser.state.total_steps

    def _typical(self) -> float | None:
        return self.history.typical(self._steps_asked(), self._epochs)

    def _eta(self, stage: Stage, state: LogState, now: datetime) -> float | None:
        if stage.terminal:
            return None  # a finished training has nothing left to wait for
        allowance = self.finishing_allowance()
        if self._done_at is not None:  # after the last step: what earlier runs spent from there on
            return _round(max(0.0, allowance - (now - self._done_at).total_seconds()))
        if stage is Stage.TRAINING and state.step is not None and state.total_steps:
            left = max(0, state.total_steps - 1 - state.step)
            measured = self.measured_rate()
            per_step = 1.0 / measured if measured else None
            pauses = 0.0
            if measured and state.sample_every and state.sample_seconds:
                # ai-toolkit pauses to sample every N steps: the samplings still ahead count whole,
                # and the measured window's own samplings come out of the per-step time
                every, pause = state.sample_every, state.sample_seconds
                (_, first), (_, last) = self._steps[0], self._steps[-1]
                inside = last // every - first // every
                pure = (self._span() - inside * pause) / (last - first)
                if pure > 0:
                    per_step = pure
                    pauses = ((state.total_steps - 1) // every - state.step // every) * pause
            if self.history.per_step is not None and self._steps:
                # the first minutes of a run have not seen a sampling pause yet, earlier runs
                # have: their per-step time counts less as this run's own measure grows
                weight = min(1.0, self._span() / RATE_WINDOW) if per_step is not None else 0.0
                per_step = weight * (per_step or 0.0) + (1.0 - weight) * self.history.per_step
            if per_step is not None:
                waited = (now - self._steps[-1][0]).total_seconds()
                return _round(max(0.0, left * per_step + pauses - waited) + allowance)
            if self._bar_seen is not None and state.bar_remaining is not None:
                waited = (now - self._bar_seen[1]).total_seconds()
                return _round(max(0.0, state.bar_remaining - waited) + allowance)
            if state.rate:
                return _round(left / state.rate + allowance)
        typical = self._typical()
        if typical is not None:
            elapsed = self._elapsed(now) if self._started_at else 0.0
            remaining = typical - (elapsed or 0.0)
            return _round(remaining) if remaining > 0 else None
        return None


def _round(seconds: float) -> float:
    return round(seconds, 1)
