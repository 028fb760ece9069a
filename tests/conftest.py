"""Shared fixtures. Every test gets its own REPLITRACK_HOME and no Replicate credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Facts about the real Replicate, copied into the repository (see its README.md): the suite
# reads nothing outside the checkout.
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reference"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core. Most tests wait (on a subprocess starting, on simulated
    time), so one worker per core would leave the cores idle half the time."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "replitrack-home"
    monkeypatch.setenv("REPLITRACK_HOME", str(home))
    monkeypatch.setenv("REPLITRACK_DEMO_HOME", str(tmp_path / "replitrack-demo"))  # never the user's cache
    for name in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "REPLICATE_WEBHOOK_SECRET", "NGROK_AUTHTOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


# ---- the simulated Replicate (simulator) -----------------------------------------------


@pytest.fixture
async def simulator():  # type: ignore[no-untyped-def]
    """A simulated Replicate on a free loopback port, 50x real time, seed 0; stopped afterwards.

    Tests may change `simulator.speed` or `simulator.faults` while it runs.
    """
    from simulator import Simulator

    sim = Simulator(speed=50, seed=0)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class ReplicateSpec:
    """Response schemas from the official OpenAPI spec, `$ref`s resolved, ready for jsonschema.

    The spec says OpenAPI 3.1 but marks optional-null fields with 3.0's `nullable: true`; that is
    turned into JSON Schema's `type: [X, "null"]` so that `error: null` validates.
    """

    def __init__(self, path: Path) -> None:
        import json

        self.spec = json.loads(path.read_text())
        self.components = self._nullable(self.spec["components"])

    @classmethod
    def _nullable(cls, node):  # type: ignore[no-untyped-def]
        if isinstance(node, list):
            return [cls._nullable(item) for item in node]
        if not isinstance(node, dict):
            return node
        converted = {key: cls._nullable(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") is True:
            if isinstance(converted.get("type"), str):
                converted["type"] = [converted["type"], "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        return converted

    def schema(self, path: str, method: str, status: int) -> dict:  # type: ignore[type-arg]
        operation = self.spec["paths"][path][method.lower()]
        content = operation["responses"][str(status)]["content"]
        media = content.get("application/json") or next(iter(content.values()))
        return {**self._nullable(media["schema"]), "components": self.components}

    def validate(self, body: object, path: str, method: str = "get", status: int = 200) -> None:
        """Raise jsonschema.ValidationError unless `body` matches the spec's response schema."""
        import jsonschema

        jsonschema.Draft202012Validator(
            self.schema(path, method, status), format_checker=_format_checker()
        ).validate(body)


def _format_checker():  # type: ignore[no-untyped-def]
    import re
    from urllib.parse import urlsplit

    import jsonschema

    checker = jsonschema.FormatChecker()
    rfc3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        return not isinstance(value, str) or bool(rfc3339.match(value))

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme and (parts.netloc or parts.scheme in ("data", "mailto")))

    return checker


@pytest.fixture(scope="session")
def replicate_spec() -> ReplicateSpec:
    return ReplicateSpec(REFERENCE / "replicate-openapi.json")
