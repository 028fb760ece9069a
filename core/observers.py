"""The one small observer list: whoever is interested subscribes a callback and gets back the
function that unsubscribes it; `notify` calls each callback with the news, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Observers(Generic[T]):
    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], None]] = []

    def subscribe(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call `callback(news)` on every `notify`; returns a function that unsubscribes (twice is fine)."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def notify(self, news: T) -> None:
        for callback in list(self._callbacks):  # a callback may unsubscribe itself
            callback(news)

    def __len__(self) -> int:
        return len(self._callbacks)
