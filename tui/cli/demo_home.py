"""The demo's own home: a folder of its own (never REPLITRACK_HOME, the user's real store),
cleared when the next demo starts, and how commands beside a running demo find it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from core import config
from core.errors import ReplitrackError

DEMO_MARKER = ".replitrack-demo"  # in a demo's home: it may be cleared when the next demo starts
DEMO_INFO = "demo.json"  # the running demo's simulator address and (public, demo-only) token


def demo_home() -> Path:
    """The demo's own folder: REPLITRACK_DEMO_HOME, else `demo` in the user's cache directory.
    Never the store (REPLITRACK_HOME): a demo must not write into a real account's data."""
    if explicit := os.environ.get("REPLITRACK_DEMO_HOME"):
        return Path(explicit).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("replitrack", appauthor=False) / "demo"


def prepare_demo_home(home: Path) -> Path:
    """Make `home` a fresh, empty demo home: a demo started again starts from nothing (the
    simulator's ids repeat, so an old store would only hold stale copies). Only a folder that is
    empty or was a demo's own is cleared; a running demo's is refused."""
    from core.store import read_owner

    home = home.expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise ReplitrackError(f"demo home {home} is a file: give a folder (or none)")
    owner = read_owner(home) if home.exists() else None
    if owner is not None:
        raise ReplitrackError(f"a demo already runs in {home} (PID {owner.get('pid') or '?'}): use that one, "
                              "or start this one elsewhere with `replitrack demo --home DIR`")
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            raise ReplitrackError(f"{home} is not empty and is not a demo's folder: the demo clears its "
                                  "folder when it starts, so give it an empty or new one (--home DIR)")
        for entry in home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / DEMO_MARKER).write_text("replitrack demo: this folder is cleared when a demo starts\n")
    except OSError as error:
        raise ReplitrackError(f"cannot use {home} for the demo: {error.strerror or error}") from None
    return home


def running_demo() -> tuple[Path, dict[str, Any]] | None:
    """(home, {"pid", "base_url", "token"}) of a demo running now, looked for in REPLITRACK_HOME
    (a `demo --home` there) and in the demo folder."""
    import json

    from core.store import read_owner

    for home in (config.home(), demo_home()):
        owner = read_owner(home)
        if owner is None or not (home / DEMO_MARKER).exists():
            continue
        try:
            info = json.loads((home / DEMO_INFO).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("base_url") and info.get("token"):
            return home, {**info, "pid": owner.get("pid")}
    return None
