"""A user keymap: the config file's `"keymap"` maps binding ids (shown by `?`) to keys, e.g.

    {"keymap": {"models.sort": "S", "quit": "ctrl+q", "list.down": "down,j,ctrl+n"}}

It is handed to Textual's `App.set_keymap`; every binding of the app carries an id for this."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.binding import Binding


def read_keymap(path: Path) -> tuple[dict[str, str], list[str]]:
    """The keymap in the config file at `path`, and what was wrong with it (said, never fatal)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as error:
        return {}, [f"{path} could not be read as JSON ({error}); the default keys apply"]
    raw = data.get("keymap") if isinstance(data, dict) else None
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f'"keymap" in {path} must be an object of binding id → keys; the default keys apply']
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in raw.items():
        if isinstance(keys, str) and keys.strip():
            keymap[str(binding_id)] = keys.strip()
        else:
            problems.append(f'keymap: "{binding_id}" needs keys as text like "ctrl+s" or "s,S", not {keys!r}')
    return keymap, problems


def binding_ids(*owners: Any) -> set[str]:
    """Every binding id declared by these classes (screens, widgets, the app)."""
    ids: set[str] = set()
    for owner in owners:
        for binding in getattr(owner, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


def app_binding_ids(app_class: type) -> set[str]:
    """Every binding id of the app: its own, and those of every screen and widget in `tui`."""
    import importlib
    import pkgutil

    import tui.screens
    import tui.widgets
    from textual.dom import DOMNode

    for package in (tui.screens, tui.widgets):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    classes: list[type] = [app_class]
    pending = [DOMNode]
    while pending:
        for subclass in pending.pop().__subclasses__():
            pending.append(subclass)
            if subclass.__module__.startswith("tui."):
                classes.append(subclass)
    return binding_ids(*classes)
