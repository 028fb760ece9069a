"""Fault injection: what can go wrong between a client and Replicate, switchable while running.

Every setting is either "the next N times" (a counter that counts down) or "with probability p"
(drawn from the simulator's own seeded `random.Random`, so a seed replays the same faults).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields

from .errors import BadFaultSpecError


@dataclass
class Faults:
    # 429 Too Many Requests, with Replicate's body and ratelimit headers
    throttle_next: int = 0
    throttle_probability: float = 0.0
    throttle_reset: int = 30  # seconds in the body, `ratelimit-reset` and `Retry-After`
    # 5xx answers (problem+json body)
    error_next: int = 0
    error_probability: float = 0.0
    error_status: int = 500
    # slow answers: wall-clock delay before answering
    slow_seconds: float = 0.0
    slow_probability: float = 1.0
    # webhook deliveries
    drop_webhooks_next: int = 0
    drop_webhooks_probability: float = 0.0
    duplicate_webhooks_next: int = 0
    duplicate_webhooks_probability: float = 0.0
    reorder_webhooks_next: int = 0  # hold one back and send it after the next one
    reorder_webhooks_probability: float = 0.0
    # trainings created from now on that never leave `starting` (until canceled)
    stuck_next: int = 0
    # HTTP methods the 429/5xx/slow faults apply to; None means every method
    methods: frozenset[str] | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def _take(self, kind: str) -> bool:
        """Consume one "next N" fault of this kind, else draw against its probability."""
        remaining = getattr(self, f"{kind}_next")
        if remaining > 0:
            setattr(self, f"{kind}_next", remaining - 1)
            return True
        probability = getattr(self, f"{kind}_probability")
        return probability > 0 and self.rng.random() < probability

    def _applies(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods

    def take_throttle(self, method: str) -> bool:
        return self._applies(method) and self._take("throttle")

    def take_error(self, method: str) -> bool:
        return self._applies(method) and self._take("error")

    def take_slow(self, method: str) -> float:
        if self.slow_seconds <= 0 or not self._applies(method):
            return 0.0
        if self.slow_probability >= 1 or self.rng.random() < self.slow_probability:
            return self.slow_seconds
        return 0.0

    def take_drop(self) -> bool:
        return self._take("drop_webhooks")

    def take_duplicate(self) -> bool:
        return self._take("duplicate_webhooks")

    def take_reorder(self) -> bool:
        return self._take("reorder_webhooks")

    def take_stuck(self) -> bool:
        if self.stuck_next > 0:
            self.stuck_next -= 1
            return True
        return False

    def clear(self) -> None:
        """Back to a well-behaved Replicate (the seeded generator keeps its position)."""
        for spec in fields(self):
            if spec.name != "rng":
                setattr(self, spec.name, getattr(Faults(), spec.name))

    def apply(self, spec: str) -> None:
        """Apply one `NAME=VALUE` setting, as given to `replitrack sim --fault`."""
        name, sep, raw = spec.partition("=")
        key = name.strip().lower().replace("_", "-")
        if not sep or key not in FAULT_FLAGS:
            raise BadFaultSpecError(
                f"unknown fault {spec!r}. Use NAME=VALUE with NAME one of: "
                + ", ".join(sorted(FAULT_FLAGS))
            )
        attribute, kind = FAULT_FLAGS[key]
        value: object
        try:
            if kind == "methods":
                methods = frozenset(m.strip().upper() for m in raw.split(",") if m.strip())
                if not methods:
                    raise ValueError("empty")
                value = methods
            elif kind == "count":
                value = int(raw)
                if value < 0:
                    raise ValueError("negative")
            elif kind == "status":
                value = int(raw)
                if not 500 <= value <= 599:
                    raise ValueError("not 5xx")
            else:
                value = float(raw)
                if value < 0 or (kind == "probability" and value > 1):
                    raise ValueError("out of range")
        except ValueError:
            expected = {
                "count": "a whole number ≥ 0",
                "probability": "a probability between 0 and 1",
                "seconds": "a number of seconds ≥ 0",
                "status": "a 5xx status code",
                "methods": "HTTP methods separated by commas, e.g. GET,POST",
            }[kind]
            raise BadFaultSpecError(
                f"bad value in fault {spec!r}: {name.strip()} takes {expected}."
            ) from None
        setattr(self, attribute, value)


# `--fault` names → (attribute, kind of value)
FAULT_FLAGS: dict[str, tuple[str, str]] = {
    "throttle": ("throttle_probability", "probability"),
    "throttle-next": ("throttle_next", "count"),
    "throttle-reset": ("throttle_reset", "count"),
    "error": ("error_probability", "probability"),
    "error-next": ("error_next", "count"),
    "error-status": ("error_status", "status"),
    "slow": ("slow_seconds", "seconds"),
    "slow-probability": ("slow_probability", "probability"),
    "drop-webhooks": ("drop_webhooks_probability", "probability"),
    "drop-webhooks-next": ("drop_webhooks_next", "count"),
    "duplicate-webhooks": ("duplicate_webhooks_probability", "probability"),
    "duplicate-webhooks-next": ("duplicate_webhooks_next", "count"),
    "reorder-webhooks": ("reorder_webhooks_probability", "probability"),
    "reorder-webhooks-next": ("reorder_webhooks_next", "count"),
    "stuck-next": ("stuck_next", "count"),
    "methods": ("methods", "methods"),
}
