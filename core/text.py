"""Untrusted text (logs, errors, names from Replicate or a webhook) made inert for a terminal.

Printed raw, an escape sequence in a training's log can retitle the window (OSC), move the
cursor, clear the screen, ring the bell, or hide the lines around it; some terminals act on C1
controls too, even UTF-8 encoded. Every place that shows such text (the TUI and every human
output of the CLI) goes through `terminal_safe`, whether colour is on or not. Only `logs` piped
to a file or a program passes the log on byte for byte, as documented.
"""

from __future__ import annotations

import re

# Longest first: whole sequences go, so that their parameters do not show up as litter.
_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"                              # CSI (colours, cursor moves, clears)
    r"|\x9b[0-?]*[ -/]*[@-~]?"                               # the same as one C1 character
    r"|[\x1b][\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC (titles, links), DCS, SOS, PM, APC strings
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # the same opened by a C1 character
    r"|\x1b[ -/]*[0-~]?"                                     # any other escape (charset, keypad, reset)
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def terminal_safe(text: object, *, one_line: bool = False, mark: str = "") -> str:
    """`text` with every escape sequence and control character removed (tabs and newlines kept),
    or replaced by `mark` where the reader should see that something was there (the inspector).

    A bare `\\r` (a progress bar redrawing itself) becomes a line break; `one_line` turns every
    line break and tab into a space, for a table cell or a title.
    """
    value = text if isinstance(text, str) else ("" if text is None else str(text))
    if value.isprintable() and not one_line:
        return value  # the usual case, checked in C
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROLS.sub(mark, _SEQUENCES.sub(mark, value))
    if one_line:
        value = _LINE_BREAKS.sub(" ", value).replace("\t", " ")
    return value
