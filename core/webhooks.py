"""Verify and sign Replicate webhooks (the Standard Webhooks scheme), via `standardwebhooks`.

Why not just `Webhook(secret).verify(...)`: it reads the wall clock itself (no way to pass `now`),
lumps every failure into one exception, and raises a bare ValueError for a malformed signature
entry, a non-UTF-8 or a non-JSON body. So the headers, the timestamp and the body are checked
here, each failure with its own reason, and the signature is computed by the package's `sign`
(the HMAC is never hand-rolled) and compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from core.errors import BadArgumentError, ConfigError, ReplitrackError

TOLERANCE_SECONDS = 300  # Replicate's docs: reject timestamps more than 5 minutes away, either way
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SECRET_PREFIX = "whsec_"

_SECONDS = re.compile(r"^\d{1,12}$")

REASONS = (
    "missing_headers",
    "bad_signature",
    "stale_timestamp",
    "future_timestamp",
    "malformed_signature",
    "not_utf8",
    "not_json",
    "not_a_training",
)


class WebhookVerificationError(ReplitrackError):
    """A webhook that must not be trusted; `reason` is one of REASONS (for logs and counters)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: float | None = None,
    expect_training: bool = True,
) -> dict[str, Any]:
    """Check a webhook's signature and freshness and return its JSON body (a training object).

    `body` must be the raw bytes as received (re-encoding JSON breaks the signature); header
    names are case-insensitive; `now` (epoch seconds) fixes the clock for tests;
    `expect_training=False` accepts any JSON object (the spec's test vector is not a training)."""
    webhook = _webhook(secret)
    lowered = {str(key).lower(): str(value).strip() for key, value in headers.items()}
    missing = [name for name in HEADERS if not lowered.get(name)]
    if missing:
        raise WebhookVerificationError(
            "missing_headers",
            f"webhook lacks the {', '.join(missing)} header{'s' if len(missing) > 1 else ''}: Replicate signs "
            "every webhook, so this one did not come from Replicate (or a proxy dropped the headers)",
        )
    msg_id, stamp, signature_header = (lowered[name] for name in HEADERS)

    timestamp = _check_timestamp(stamp, time.time() if now is None else now)

    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError(
            "not_utf8", "webhook body is not UTF-8 text, so it is not a signed Replicate training: rejected"
        ) from None

    expected = _signature_bytes(webhook.sign(msg_id, _as_datetime(timestamp), text))
    candidates = _v1_signatures(signature_header)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise WebhookVerificationError(
            "bad_signature",
            "webhook signature does not match: the signing secret is wrong (Replicate's is at "
            "GET /v1/webhooks/default/secret) or the body was changed on the way (a proxy re-encoding JSON?)",
        )

    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to ever be a training
        raise WebhookVerificationError("not_json", "webhook is signed but its body is not JSON: ignored") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError(
            "not_a_training", f"webhook is signed JSON but a {type(payload).__name__}, not a training object: ignored"
        )
    if not expect_training:
        return payload
    if not isinstance(payload.get("id"), str) or not payload["id"]:
        raise WebhookVerificationError(
            "not_a_training", "webhook is signed JSON but not a training object (it has no 'id'): ignored"
        )
    if "status" in payload and not isinstance(payload["status"], str):
        raise WebhookVerificationError(
            "not_a_training", "webhook is signed JSON but its 'status' is not a string: not a training, ignored"
        )
    return payload


def sign_webhook(body: bytes, secret: str, msg_id: str, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers Replicate would send with `body` (for the simulator and tests)."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise BadArgumentError("cannot sign a webhook body that is not UTF-8 text: send JSON") from None
    if not isinstance(msg_id, str) or not msg_id or any(ch.isspace() or ch == "." for ch in msg_id):
        raise BadArgumentError(f"webhook id {msg_id!r} must be a non-empty string without spaces or dots")
    signature = _webhook(secret).sign(msg_id, _as_datetime(int(timestamp)), text)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)), "webhook-signature": signature}


# ---------------------------------------------------------------------------------------------


def _webhook(secret: str) -> Webhook:
    """The package's signer for `secret`; a bad secret is a configuration problem, said plainly."""
    key = secret.strip() if isinstance(secret, str) else ""
    encoded = key[len(SECRET_PREFIX) :] if key.startswith(SECRET_PREFIX) else key
    try:
        # The package decodes leniently (invalid characters silently dropped): be strict first.
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        if not decoded:
            raise ValueError("empty")
        return Webhook(key)
    except (binascii.Error, ValueError, EmptyWebhookSecretError):
        raise ConfigError(
            "the webhook signing secret is not a valid whsec_<base64> key: copy it from "
            "GET /v1/webhooks/default/secret (replitrack fetches it for you when a token is set)"
        ) from None


def _check_timestamp(stamp: str, now: float) -> int:
    if not _SECONDS.match(stamp):
        raise WebhookVerificationError(
            "malformed_signature",
            f"webhook-timestamp {stamp[:40]!r} is not whole seconds since 1970: not signed by Replicate",
        )
    timestamp = int(stamp)
    if timestamp < now - TOLERANCE_SECONDS:
        raise WebhookVerificationError(
            "stale_timestamp",
            f"webhook was signed {_span(now - timestamp)} ago (more than 5 minutes): a replay, or this "
            "computer's clock is wrong; check the clock if every webhook is rejected",
        )
    if timestamp > now + TOLERANCE_SECONDS:
        raise WebhookVerificationError(
            "future_timestamp",
            f"webhook is signed {_span(timestamp - now)} in the future (more than 5 minutes): this "
            "computer's clock is probably behind; set it right",
        )
    return timestamp


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1,<base64>` entries; other versions are skipped (Standard Webhooks says so)."""
    found: list[bytes] = []
    well_formed = 0
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if not comma or not version or not encoded:
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        well_formed += 1
        if version == "v1":
            found.append(decoded)
    if not well_formed:
        raise WebhookVerificationError(
            "malformed_signature",
            f"webhook-signature {header[:60]!r} has no entry of the form v1,<base64>: not signed by Replicate",
        )
    return found


def _signature_bytes(signature: str) -> bytes:
    return base64.b64decode(signature.partition(",")[2])


def _as_datetime(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 600:  # near the 5-minute limit, minutes would read "5 min (more than 5 minutes)"
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
