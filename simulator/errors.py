"""Errors the simulator reports to the person or code driving it."""

from __future__ import annotations

from typing import Any

from core.errors import ReplitrackError


class SimulatorError(ReplitrackError):
    """Something about the simulated Replicate itself went wrong."""


class PortInUseError(SimulatorError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host, self.port = host, port
        super().__init__(
            f"cannot start the simulator: port {port} on {host} is already in use ({reason}). "
            "Stop whatever holds it, or pick another port with --port (0 picks a free one)."
        )


class BadFaultSpecError(SimulatorError):
    """A `--fault NAME=VALUE` flag that cannot be understood."""


class UnknownScenarioError(SimulatorError):
    pass


class UnknownTrainingError(SimulatorError):
    def __init__(self, training_id: str) -> None:
        self.training_id = training_id
        super().__init__(
            f"the simulator has no training {training_id!r}. "
            "Use an id returned by create_training or listed at GET /v1/trainings."
        )


class RequestRejectedError(SimulatorError):
    """`create_training` / `add_model` called from Python was refused like the HTTP call would be.

    `status` and `body` are exactly what the HTTP endpoint would have answered.
    """

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body
        super().__init__(
            f"the simulator refused the request ({status}): {body.get('detail', body)}. "
            "Fix the arguments (see the detail) and call again."
        )


UNAUTHENTICATED = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}


class Problem(Exception):
    """An error answer (RFC 7807 problem details) on its way out of a request handler."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("detail"))
        self.status, self.body, self.headers = status, body, headers or {}


def problem(status: int, title: str, detail: str, **extra: Any) -> Problem:
    return Problem(status, {"title": title, "detail": detail, "status": status, **extra})
