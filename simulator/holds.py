"""Hold and step: explicit control over where a simulated training is, for tests and demos.

A hold stops a training just before a point in its run and keeps it there until it is released
(or let through one event at a time with `step`), so a test never has to hope that a client
starts before a fast training ends. The points are:

- `"start"`: still `starting` (queued or booting), before it begins processing;
- `"end"`: processing, every line printed except the last event (success, or the failure's lines);
- any other text: processing, just before the first printed line that contains that text
  (e.g. `"flux_train_replicate"` holds it as the training steps begin).

The check is made by the simulator's runner between script events, so it works for every trainer
script without the scripts knowing about it.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

START = "start"
END = "end"
_ids = itertools.count(1)


@dataclass(eq=False)
class Hold:
    """One hold point; `training_id` None holds every training that gets there."""

    at: str
    training_id: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    held: list[str] = field(default_factory=list)  # ids of trainings that reached it, in order
    released: bool = False
    _credits: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _reached: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def applies_to(self, training_id: str) -> bool:
        return not self.released and self.training_id in (None, training_id)

    async def reached(self, timeout: float = 30.0) -> str:
        """Wait until a training is held here; returns its id. A timeout raises TimeoutError."""
        await asyncio.wait_for(self._reached.wait(), timeout)
        return self.held[0]

    def release(self) -> None:
        """Let every training held here go on at its own pace (and hold no more)."""
        self.released = True
        self._notify()

    def step(self, events: int = 1) -> None:
        """Let a held training go `events` script events further, then hold it again."""
        self._credits += events
        self._notify()

    def _notify(self) -> None:
        self._wake.set()  # wakes every waiter; each checks again whether it may go on

    async def wait(self, training_id: str) -> None:
        """Called by the runner when `training_id` is at the hold point or, once held, before
        each later event: returns when it may go on."""
        if training_id not in self.held:
            self.held.append(training_id)
            self._reached.set()
        while not self.released and self._credits <= 0:
            self._wake.clear()
            await self._wake.wait()
        if not self.released:
            self._credits -= 1

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "at": self.at, "training_id": self.training_id, "held": list(self.held),
                "released": self.released}


class Holds:
    """The simulator's hold points, looked up by the runner between script events."""

    def __init__(self) -> None:
        self._holds: list[Hold] = []

    def add(self, at: str, training_id: str | None = None) -> Hold:
        if not isinstance(at, str) or not at:
            raise ValueError("a hold point is 'start', 'end' or a piece of text from a log line")
        hold = Hold(at=at, training_id=training_id)
        self._holds.append(hold)
        return hold

    def get(self, hold_id: int) -> Hold | None:
        return next((h for h in self._holds if h.id == hold_id), None)

    def release_all(self) -> None:
        for hold in self._holds:
            hold.release()
        self._holds.clear()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._holds))

    async def gate(self, training_id: str, *, starting: bool = False, lines: tuple[str, ...] = (),
                   final: bool = False) -> bool:
        """Wait at every hold that stops this training here; True if it waited at all."""
        waited = False
        for hold in list(self._holds):
            if not hold.applies_to(training_id):
                continue
            here = training_id in hold.held or (
                (hold.at == START and starting)
                or (hold.at == END and final)
                or (hold.at not in (START, END) and not starting and any(hold.at in line for line in lines))
            )
            if here:
                await hold.wait(training_id)
                waited = True
            if hold.released:
                self._holds = [h for h in self._holds if h is not hold]
        return waited
