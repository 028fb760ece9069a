"""Where replitrack keeps its files and which settings are in effect."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_BASE_URL = "https://api.replicate.com"


def home() -> Path:
    """The data directory: REPLITRACK_HOME if set (tests always set it), else the user's data dir."""
    if explicit := os.environ.get("REPLITRACK_HOME"):
        return Path(explicit).expanduser()
    from platformdirs import user_data_path  # platformdirs: loaded when used, for start-up time

    return user_data_path("replitrack", appauthor=False)


def config_path() -> Path:
    """The config file (token saved by the sign-in screen); lives beside the data."""
    return home() / "config.json"


def base_url() -> str:
    return (os.environ.get("REPLICATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def api_token() -> str | None:
    """REPLICATE_API_TOKEN, else the token saved in the config file."""
    if token := os.environ.get("REPLICATE_API_TOKEN", "").strip():
        return token
    try:
        saved = json.loads(config_path().read_text()).get("api_token")
    except (OSError, ValueError, AttributeError):
        return None
    return saved.strip() if isinstance(saved, str) and saved.strip() else None


def mask_token(token: str | None) -> str:
    """`r8_…abcd`: enough to tell tokens apart, never enough to use one."""
    if not token:
        return "(not set)"
    prefix = token[:3] if token.startswith("r8_") else ""
    return f"{prefix}…{token[-4:]}" if len(token) > 8 else "…"
