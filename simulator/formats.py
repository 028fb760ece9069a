"""How Replicate spells ids, version hashes, timestamps and signing secrets."""

from __future__ import annotations

import base64
import random
import string
from datetime import datetime, timezone

# Replicate's ids: 26 characters of lowercase RFC 4648 base32 (e.g. zz4ibbonubfz7carwiefibzgga).
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_MSG_ALPHABET = string.ascii_letters + string.digits


def new_id(rng: random.Random) -> str:
    return "".join(rng.choice(ID_ALPHABET) for _ in range(26))


def new_version_id(rng: random.Random) -> str:
    """A 64-hex version id, like the sha256 Replicate shows for every model version."""
    return f"{rng.getrandbits(256):064x}"


def new_message_id(rng: random.Random) -> str:
    """Standard Webhooks message ids look like `msg_p5jXN8AQM9LWM0D4loKWxJek`."""
    return "msg_" + "".join(rng.choice(_MSG_ALPHABET) for _ in range(24))


def new_webhook_secret(rng: random.Random) -> str:
    # 24 random bytes give 32 base64 characters without padding and without `_`, which
    # replicate-python's validator needs (it splits the key on `_`).
    return "whsec_" + base64.b64encode(rng.randbytes(24)).decode("ascii")


def iso(epoch: float, digits: int = 6) -> str:
    """`2024-09-10T05:10:35.123456Z` (6 digits) or with 9 digits; Replicate sends both."""
    whole = int(epoch)
    nanos = int(round((epoch - whole) * 1_000_000_000))
    if nanos >= 1_000_000_000:  # rounding carried into the next second
        whole, nanos = whole + 1, nanos - 1_000_000_000
    stamp = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}"[:digits]
    return f"{stamp}.{fraction}Z" if digits else f"{stamp}Z"


def pget_time(epoch: float) -> str:
    """pget's log timestamps: whole seconds, `Z`."""
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
