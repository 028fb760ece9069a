"""The webhook ids already handled, so that Replicate's retries (same id) change nothing. They
reach this file at each checkpoint; in between, the journal holds them."""

from __future__ import annotations

from pathlib import Path

from core.store.files import append_whole, atomic_write

WEBHOOK_IDS_FILE = "webhook-ids.txt"
SEEN_WEBHOOKS_KEPT = 50_000  # Replicate retries within minutes; this covers days of traffic


def load(home: Path) -> set[str]:
    try:
        lines = (home / WEBHOOK_IDS_FILE).read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError):
        return set()  # dedup is a convenience; status rules still keep the store right
    return {line for line in lines[-SEEN_WEBHOOKS_KEPT:] if line}


def append(home: Path, webhook_ids: list[str]) -> None:
    path = home / WEBHOOK_IDS_FILE
    payload = "".join(f"{i.replace(chr(10), ' ')}\n" for i in webhook_ids).encode()
    end = append_whole(path, payload, fsync=True, line_aligned=True) + len(payload)
    if end > SEEN_WEBHOOKS_KEPT * 80:  # compact: keep only the newest ids
        kept = path.read_text(encoding="utf-8").split("\n")[-SEEN_WEBHOOKS_KEPT - 1:]
        atomic_write(path, "\n".join(kept).encode())
