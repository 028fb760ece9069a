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
    """REPLICATE_API_TOKEN, else the token saved in the config file (refused if unusable)."""
    if token := os.environ.get("REPLICATE_API_TOKEN", "").strip():
        return check_token(token, source="REPLICATE_API_TOKEN")
    try:
        saved = json.loads(config_path().read_text()).get("api_token")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(saved, str) or not saved.strip():
        return None
    return check_token(saved.strip(), source=f"the token saved in {config_path()}")


def check_token(token: str | None, *, source: str = "the API token") -> str | None:
    """A token is sent in an HTTP header and shown masked: one with a control character or a space
    (a paste gone wrong, or a hostile file) is refused before any use, and never echoed."""
    if token is None:
        return None
    bad = next((i for i, char in enumerate(token) if not char.isprintable() or char.isspace()), None)
    if bad is not None:
        from core.errors import ConfigError

        raise ConfigError(f"{source} contains a control character or a space (character {bad + 1} of "
                          f"{len(token)}), so it was not used and is not shown; copy it again from "
                          "https://replicate.com/account/api-tokens")
    return token


def mask_token(token: str | None) -> str:
    """`r8_…abcd`: enough to tell tokens apart, never enough to use one."""
    if not token:
        return "(not set)"
    if not token.isprintable() or any(char.isspace() for char in token):
        return "(unusable: control characters)"
    prefix = token[:3] if token.startswith("r8_") else ""
    return f"{prefix}…{token[-4:]}" if len(token) > 8 else "…"
