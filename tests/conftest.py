"""Shared fixtures. Every test gets its own REPLITRACK_HOME and no Replicate credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "replitrack-home"
    monkeypatch.setenv("REPLITRACK_HOME", str(home))
    for name in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "REPLICATE_WEBHOOK_SECRET", "NGROK_AUTHTOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home
