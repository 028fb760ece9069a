"""tqdm's text meter, reproduced exactly as it lands in Replicate logs (no terminal: 10-cell bar)."""

from __future__ import annotations

_BLOCKS = " ▏▎▍▌▋▊▉█"
BAR_CELLS = 10


def format_interval(seconds: float) -> str:
    """tqdm's `[elapsed<remaining]` clock: `MM:SS`, or `H:MM:SS` from one hour on."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def bar(fraction: float, cells: int = BAR_CELLS) -> str:
    steps = len(_BLOCKS) - 1
    full, partial = divmod(int(max(0.0, min(1.0, fraction)) * cells * steps), steps)
    if full >= cells:
        return _BLOCKS[-1] * cells
    return _BLOCKS[-1] * full + _BLOCKS[partial] + " " * (cells - full - 1)


def format_rate(rate: float | None) -> str:
    """`2.38it/s`, or `1.05s/it` when one iteration takes more than a second; 5.2f-padded."""
    if not rate:
        return "?it/s"
    if 1 / rate > 1:
        return f"{1 / rate:5.2f}s/it"
    return f"{rate:5.2f}it/s"


def meter(
    n: int,
    total: int,
    elapsed: float,
    rate: float | None,
    *,
    desc: str = "",
    postfix: str = "",
) -> str:
    """One refresh of a tqdm bar, e.g.
    `flux_train_replicate:  83%|████████▎ | 2482/3000 [43:27<09:04,  1.05s/it, lr: 4.0e-04 loss: 2.472e-01]`.
    """
    fraction = n / total if total else 0.0
    remaining = format_interval((total - n) / rate) if rate else "?"
    left = (f"{desc}: " if desc else "") + f"{fraction * 100:3.0f}%|"
    tail = f", {postfix}" if postfix else ""
    return (
        f"{left}{bar(fraction)}| {n}/{total} "
        f"[{format_interval(elapsed)}<{remaining}, {format_rate(rate)}{tail}]"
    )


class SmoothedRate:
    """tqdm's rate: an exponential moving average (smoothing 0.3) of iterations per second."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self._alpha = smoothing
        self._value = 0.0
        self._calls = 0

    def update(self, iterations: float, seconds: float) -> float:
        sample = iterations / seconds if seconds > 0 else 0.0
        self._value = self._alpha * sample + (1 - self._alpha) * self._value
        self._calls += 1
        # bias correction, as tqdm's EMA does, so early values are not dragged towards 0
        return self._value / (1 - (1 - self._alpha) ** self._calls)
