"""Images in the terminal with textual-image: Kitty graphics or Sixel where the terminal speaks
them, coloured half-blocks elsewhere.

textual-image asks the terminal what it supports when it is first imported (escape sequences,
0.1 s timeouts each when nothing answers), and that only works before Textual owns the terminal.
Paying that at every start (≈ 0.2–0.4 s measured in a pty that does not answer) would slow the
first paint for everyone, so the question is asked at start only in a terminal that says it may
have graphics (`probe`); elsewhere textual-image is imported quietly when the first image is shown,
without a question, and draws half-blocks. REPLITRACK_IMAGES=halfblocks never asks;
REPLITRACK_IMAGES=ask always asks.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

# Terminals that announce themselves and may draw Kitty graphics or Sixel.
_GRAPHICS_HINTS = ("KITTY_WINDOW_ID", "WEZTERM_EXECUTABLE", "KONSOLE_VERSION", "GHOSTTY_RESOURCES_DIR")
_GRAPHICS_TERMS = ("kitty", "foot", "mlterm", "ghostty", "wezterm", "contour")
_GRAPHICS_PROGRAMS = ("wezterm", "ghostty", "iterm.app", "konsole", "mintty")

failure: str | None = None  # why images cannot be drawn here, if textual-image could not load


def _on_a_terminal() -> bool:
    return sys.__stdout__ is not None and sys.__stdout__.isatty()


def may_have_graphics(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    choice = env.get("REPLITRACK_IMAGES", "").lower()
    if choice in ("halfblocks", "half-blocks", "off"):
        return False
    if choice == "ask":
        return True
    term, program = env.get("TERM", "").lower(), env.get("TERM_PROGRAM", "").lower()
    return (any(env.get(name) for name in _GRAPHICS_HINTS) or any(t in term for t in _GRAPHICS_TERMS)
            or program in _GRAPHICS_PROGRAMS)


def probe() -> None:
    """Before the app runs: in a terminal that may have graphics, let textual-image ask it."""
    global failure
    if _on_a_terminal() and may_have_graphics() and "textual_image.widget" not in sys.modules:
        try:
            import textual_image.widget  # noqa: F401  (asks the terminal on import)
        except Exception as error:  # e.g. a pty that reports a 0-column size
            failure = f"{type(error).__name__}: {error}"


def _quiet_import() -> None:
    """Import textual-image without a terminal question: it then picks half-blocks."""
    if "textual_image.widget" in sys.modules:
        return
    from textual_image import _terminal

    if not hasattr(_terminal.get_cell_size, "_result"):
        width = height = 0
        if _on_a_terminal():
            try:  # the window's pixel size, by ioctl: nothing is written to the terminal
                rows, columns, pixels_x, pixels_y = _terminal.get_tiocgwinsz()
                width, height = (pixels_x // columns, pixels_y // rows) if rows and columns else (0, 0)
            except OSError:
                pass
        _terminal.get_cell_size._result = _terminal.CellSize(width or 10, height or 20)  # type: ignore[attr-defined]
    real, sys.__stdout__ = sys.__stdout__, io.StringIO()  # type: ignore[misc]
    try:  # with no terminal to ask, textual-image asks nothing and falls back
        import textual_image.widget  # noqa: F401
    finally:
        sys.__stdout__ = real  # type: ignore[misc]


def image_widget(path: Path | None, **kwargs: Any) -> Any:
    """A widget showing `path`: Kitty graphics or Sixel when the terminal answered that it has
    them, else half-blocks; None when textual-image cannot work here (`failure` says why)."""
    global failure
    if failure is not None:
        return None
    try:
        _quiet_import()
        from textual_image.renderable import Image as Best
        from textual_image.renderable import SixelImage, TGPImage
        from textual_image.widget import HalfcellImage, Image
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        return None
    kind: Any = Image if Best in (SixelImage, TGPImage) else HalfcellImage
    return kind(path, **kwargs)
