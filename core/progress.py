"""How far along a training is, as one number, and how long it still needs.

Overall progress, as the product has always promised it:

    starting (queued)                      0 – 5 %
    preparation (download … caching)       5 – 10 %   one fifth of the band per stage
    training                              10 – 95 %   = 10 + 0.85 × train %
    finishing (saving, uploading)         95 – 100 %  saving 95, uploading 97.5
    succeeded                                  100 %

Inside a band with nothing to count (downloading, or a trainer whose log says nothing we can read),
time stands in for progress, clamped to the band:
- with history (durations of earlier successful runs of the same trainer): elapsed / median, as a
  percent, up to 90 %, then easing towards 95 % without reaching it;
- without: 95 × (1 − e^(−t/750 s)). That gives ≈ 14 % two minutes in, ≈ 52 % after ten minutes,
  ≈ 93 % after an hour, and never reaches 95 (capped at 94.99 once floating point would round up).
A tracker never lets the number go backwards; failed and canceled keep the last value.

ETA (seconds for the whole job), in order of preference:
1. the trainer's own `[elapsed<remaining]`, counted down since it was seen, + FINISHING_SECONDS;
2. the remaining steps at the step rate (measured across updates and exponentially smoothed, or the
   trainer's own rate until two updates exist), + FINISHING_SECONDS;
3. median(history) − elapsed;
otherwise unknown (None): nothing is invented. Succeeded → 0; failed/canceled → None.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.logparse import LogParser, LogState, Stage
from core.models import Status

# Saving the LoRA, the tar and the platform's upload of the weights: typically well under a minute.
FINISHING_SECONDS = 30.0
# Time constant of the no-history curve: 95 × (1 − e^(−120/750)) ≈ 14.05 % at two minutes.
TIME_CONSTANT = 750.0
# Time-based estimates stop here, so that even rounded to 2 decimals they stay below 95.
TIME_CEILING = 94.99
# Weight of the newest measurement in the smoothed step rate.
RATE_SMOOTHING = 0.3

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
        }


def steps_from_input(training_input: Mapping[str, Any] | None) -> int | None:
    """The number of steps a training was asked for, from its input (`steps` and its aliases)."""
    for key in _STEP_INPUTS:
        value = (training_input or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
            return int(value)
        if isinstance(value, str) and value.strip().isdigit() and int(value) >= 1:
            return int(value)
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

    def __init__(self, history: Sequence[float] = (), *, configured_steps: int | None = None) -> None:
        """`history`: started→completed seconds of earlier successful runs of the same trainer."""
        durations = [float(d) for d in history if isinstance(d, (int, float)) and d > 0 and math.isfinite(d)]
        self._typical: float | None = statistics.median(durations) if durations else None
        self.parser = LogParser(configured_steps)
        self._status = Status.STARTING
        self._started_at: datetime | None = None
        self._created_at: datetime | None = None
        self._best = 0.0  # overall percent never goes backwards
        self._bar_seen: tuple[tuple[int | None, float | None, float | None], datetime] | None = None
        self._last_step: tuple[int, datetime] | None = None
        self._rate: float | None = None  # smoothed steps per second, measured across updates
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
        if step is not None:
            if self._last_step is None or step < self._last_step[0]:
                self._last_step = (step, now)
            elif step > self._last_step[0]:
                seconds = (now - self._last_step[1]).total_seconds()
                if seconds > 0:
                    measured = (step - self._last_step[0]) / seconds
                    self._rate = (
                        measured
                        if self._rate is None
                        else RATE_SMOOTHING * measured + (1 - RATE_SMOOTHING) * self._rate
                    )
                    self._last_step = (step, now)
        if state.stage in (Stage.SAVING, Stage.UPLOADING) and self._finishing_since is None:
            self._finishing_since = now

    def estimate(self, now: datetime) -> Progress:
        """The estimate at `now` from what is known so far (no new logs)."""
        state = self.parser.state
        stage = self._stage()
        overall = self._overall(stage, state, now)
        if stage is not Stage.SUCCEEDED:
            overall = self._best = max(self._best, overall)
        rate = state.rate if state.rate is not None else self._rate
        return Progress(
            stage=stage,
            step=state.step,
            total_steps=state.total_steps,
            train_percent=None if state.train_percent is None else round(state.train_percent, 2),
            overall_percent=round(overall, 2),
            eta_seconds=self._eta(stage, state, now),
            rate=rate,
            loss=state.loss,
            lr=state.lr,
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

    def _overall(self, stage: Stage, state: LogState, now: datetime, *, by_time: bool = True) -> float:
        if stage is Stage.SUCCEEDED:
            return 100.0
        if stage.terminal:
            # the last percent: the most the log showed (the clock stopped with the run)
            return max(self._best, self._overall(self._running_stage(), state, now, by_time=False))
        if stage is Stage.TRAINING and state.train_percent is not None:
            return _TRAINING_FROM + (_TRAINING_TO - _TRAINING_FROM) * state.train_percent / 100.0
        low, high = _BANDS[stage]
        elapsed = self._elapsed(now) if by_time else None
        if elapsed is None or high <= low:
            return low
        if self._typical and self._status is not Status.STARTING:
            guess = history_curve(elapsed, self._typical)
        else:
            guess = time_curve(elapsed)
        return min(high, max(low, guess))

    def _eta(self, stage: Stage, state: LogState, now: datetime) -> float | None:
        if stage is Stage.SUCCEEDED:
            return 0.0
        if stage.terminal:
            return None
        if stage in (Stage.SAVING, Stage.UPLOADING):
            since = self._finishing_since or now
            return _round(max(0.0, FINISHING_SECONDS - (now - since).total_seconds()))
        if stage is Stage.TRAINING:
            if self._bar_seen is not None and state.bar_remaining is not None:
                waited = (now - self._bar_seen[1]).total_seconds()
                return _round(max(0.0, state.bar_remaining - waited) + FINISHING_SECONDS)
            rate = self._rate if self._rate is not None else state.rate
            if rate and state.step is not None and state.total_steps:
                return _round(max(0, state.total_steps - state.step) / rate + FINISHING_SECONDS)
        if self._typical is not None:
            elapsed = self._elapsed(now) if self._started_at else 0.0
            remaining = self._typical - (elapsed or 0.0)
            return _round(remaining) if remaining > 0 else None
        return None


def _round(seconds: float) -> float:
    return round(seconds, 1)
