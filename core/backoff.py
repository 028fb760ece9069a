"""The one backoff: waits that double after each failure in a row, from `first` up to `cap`, with
± `jitter` (a fraction) so that many clients do not retry in step. The API client, the tunnel's
watchdog and the CLI's followers each keep one."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, first: float, cap: float, *, jitter: float = 0.0,
                 rng: Callable[[], float] = random.random) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"a backoff needs 0 < first <= cap (got first={first}, cap={cap})")
        self.first, self.cap, self.jitter, self.rng = first, cap, jitter, rng
        self.failures = 0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (0: the first wait)."""
        base = min(self.cap, self.first * 2.0 ** min(failures, 60))
        return min(self.cap, base * (1 + self.jitter * (2 * self.rng() - 1)))

    def next(self) -> float:
        """The wait after one more failure."""
        wait = self.delay(self.failures)
        self.failures += 1
        return wait

    def reset(self) -> None:
        """After a success: the next failure waits `first` again."""
        self.failures = 0
