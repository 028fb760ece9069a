"""Replicate's cursor pagination, newest first, for every list the simulator serves (trainings,
predictions): opaque `next`/`previous` cursors that name the edge item's sort key."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Protocol, TypeVar

from .errors import problem

PAGE_SIZE = 100


class _Sorted(Protocol):
    @property
    def sort_key(self) -> tuple[int, int]: ...


Item = TypeVar("Item", bound=_Sorted)


def page(everything: Sequence[Item], cursor: str | None,
         size: int = PAGE_SIZE) -> tuple[list[Item], str | None, str | None]:
    """One page of `everything` (newest first) and the next/previous cursors."""
    if cursor:
        direction, key = _decode(cursor)
        chunk = ([item for item in everything if item.sort_key < key][:size] if direction == "next"
                 else [item for item in everything if item.sort_key > key][-size:])
    else:
        chunk = list(everything[:size])
    if not chunk:
        return [], None, None
    older = everything[-1].sort_key < chunk[-1].sort_key
    newer = everything[0].sort_key > chunk[0].sort_key
    return (chunk, _encode("next", chunk[-1].sort_key) if older else None,
            _encode("prev", chunk[0].sort_key) if newer else None)


def _encode(direction: str, key: tuple[int, int]) -> str:
    raw = f"{direction}:{key[0]}:{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, tuple[int, int]]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        direction, stamp, seq = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if direction not in ("next", "prev"):
            raise ValueError(direction)
        return direction, (int(stamp), int(seq))
    except (ValueError, UnicodeDecodeError):
        raise problem(400, "Invalid cursor", "The cursor is not valid: follow `next` and `previous` verbatim.") from None
