"""tqdm's text meter, as it lands in Replicate logs: tqdm's own `format_meter`, so the simulator and
the test logs print exactly what a trainer's bar prints (10-cell bar when there is no terminal width,
`1002it [...]` past the total, colour codes around the cells with `colour=`)."""

from __future__ import annotations

from tqdm import tqdm

BAR_CELLS = 10
_ANSI_COLOURS = {"blue": "\x1b[34m", "green": "\x1b[32m"}


def format_interval(seconds: float) -> str:
    """tqdm's `[elapsed<remaining]` clock: `MM:SS`, or `H:MM:SS` from one hour on."""
    return tqdm.format_interval(seconds)


def meter(
    n: int,
    total: int | None,
    elapsed: float,
    rate: float | None,
    *,
    desc: str = "",
    postfix: str = "",
    colour: str | None = None,
) -> str:
    """One refresh of a tqdm bar, e.g.
    `flux_train_replicate:  83%|████████▎ | 2482/3000 [43:27<09:04,  1.05s/it, lr: 4.0e-04 loss: 2.472e-01]`.
    `rate` is iterations per second (tqdm's smoothed rate); None before the first update.
    """
    return tqdm.format_meter(
        n, total, elapsed, prefix=desc, rate=rate or None, postfix=postfix or None, colour=colour
    )


class SmoothedRate:
    """tqdm's rate: an exponential moving average (smoothing 0.3) of iterations per second."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self._alpha = smoothing
        self._value = 0.0
        self._calls = 0

    def peek(self) -> float | None:
        """The current rate, without a new measurement (None before the first)."""
        return self._value / (1 - (1 - self._alpha) ** self._calls) if self._calls else None

    def update(self, iterations: float, seconds: float) -> float:
        sample = iterations / seconds if seconds > 0 else 0.0
        self._value = self._alpha * sample + (1 - self._alpha) * self._value
        self._calls += 1
        # bias correction, as tqdm's EMA does, so early values are not dragged towards 0
        return self._value / (1 - (1 - self._alpha) ** self._calls)
