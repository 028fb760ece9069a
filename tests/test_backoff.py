"""core.backoff and core.observers: the small shared helpers the client, the tunnel, the
followers, the listener and the app use."""

from __future__ import annotations

import pytest

from core.backoff import Backoff
from core.observers import Observers


def test_waits_double_up_to_the_cap_and_start_over_after_a_success() -> None:
    backoff = Backoff(5.0, 60.0)
    assert [backoff.next() for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    backoff.reset()
    assert backoff.next() == 5
    assert Backoff(0.5, 20.0).delay(1000) == 20.0  # no overflow after a long outage


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 0.75), (0.5, 1.0), (1.0, 1.25)])
def test_jitter_spreads_each_wait_by_its_fraction(draw: float, expected: float) -> None:
    assert Backoff(0.5, 20.0, jitter=0.25, rng=lambda: draw).delay(1) == pytest.approx(expected)
    assert Backoff(0.5, 20.0, jitter=0.25, rng=lambda: draw).delay(10) <= 20.0  # never past the cap


def test_a_backoff_without_a_positive_first_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="0 < first <= cap"):
        Backoff(0.0, 10.0)
    with pytest.raises(ValueError, match="0 < first <= cap"):
        Backoff(20.0, 10.0)


def test_observers_hear_in_order_until_they_unsubscribe() -> None:
    observers: Observers[int] = Observers()
    heard: list[tuple[str, int]] = []
    stop_a = observers.subscribe(lambda n: heard.append(("a", n)))

    def once(n: int) -> None:
        heard.append(("once", n))
        stop_once()  # unsubscribing while being told is fine

    stop_once = observers.subscribe(once)
    observers.notify(1)
    observers.notify(2)
    stop_a()
    stop_a()  # twice is fine
    observers.notify(3)
    assert heard == [("a", 1), ("once", 1), ("a", 2)]
    assert len(observers) == 0
