"""Webhook verification: the Standard Webhooks test vector, every failure reason, and agreement
with the two other implementations installed (standardwebhooks' own verify, replicate-python's
validate), including over a real aiohttp receiver on loopback."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import replicate
from aiohttp import ClientSession, web
from hypothesis import given, settings
from hypothesis import strategies as st
from replicate.webhook import WebhookSigningSecret, WebhookValidationError
from standardwebhooks import Webhook

from core.errors import BadArgumentError, ConfigError, ReplitrackError
from core.webhooks import REASONS, TOLERANCE_SECONDS, WebhookVerificationError, sign_webhook, verify_webhook

# The Standard Webhooks suite's vector, quoted in replicate-api.md.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(b"replitrack-test-secret-32-bytes!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"some-other-secret-of-32-bytes!!!").decode()
NOW = 1_726_000_000
TRAINING = {
    "id": "zz4ibbonubfz7carwiefibzgga",
    "model": "ostris/flux-dev-lora-trainer",
    "status": "processing",
    "logs": "flux_train_replicate:  31%|███       | 310/1000 [02:10<04:50,  2.38it/s, lr: 4.0e-04 loss: 3.2e-01]\n",
    "created_at": "2024-09-10T05:10:31.018467Z",
}
BODY = json.dumps(TRAINING, ensure_ascii=False).encode()


def signed(body: bytes = BODY, *, secret: str = SECRET, msg_id: str = "msg_2lCCvTSzEn2xzVj4pe7Nd3y5", at: int = NOW) -> dict[str, str]:
    return sign_webhook(body, secret, msg_id, at)


def reason_of(body: bytes, headers: dict[str, str], *, secret: str = SECRET, now: float = NOW) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, secret, now=now)
    error = caught.value
    assert error.reason in REASONS and isinstance(error, ReplitrackError)
    return error


# ---------------------------------------------------------------------------------------------


def test_the_spec_test_vector() -> None:
    headers = sign_webhook(VECTOR_BODY, VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    given_headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": VECTOR_SIGNATURE}
    payload = verify_webhook(VECTOR_BODY, given_headers, VECTOR_SECRET, now=VECTOR_TIMESTAMP, expect_training=False)
    assert payload == {"test": 2432232314}
    # Not a training, so the default (training) check rejects it, but only after the signature passed.
    assert reason_of(VECTOR_BODY, given_headers, secret=VECTOR_SECRET, now=VECTOR_TIMESTAMP).reason == "not_a_training"


def test_a_signed_training_verifies_and_comes_back_parsed() -> None:
    assert verify_webhook(BODY, signed(), SECRET, now=NOW) == TRAINING


def test_header_names_are_case_insensitive() -> None:
    headers = {name.upper() if i % 2 else name.title(): value for i, (name, value) in enumerate(signed().items())}
    assert set(headers) == {"Webhook-Id", "WEBHOOK-TIMESTAMP", "Webhook-Signature"}
    assert verify_webhook(BODY, headers, SECRET, now=NOW)["id"] == TRAINING["id"]


def test_any_one_valid_signature_among_several_suffices() -> None:
    good = signed()["webhook-signature"]
    wrong = signed(secret=OTHER_SECRET)["webhook-signature"]
    for header in (
        f"{wrong} {good}",  # key rotation: old and new
        f"{good} {wrong}",
        f"v1a,{base64.b64encode(b'x' * 64).decode()} {good}",  # another scheme version is skipped
        f"garbage  v1,@@@ {good}",  # malformed neighbours do not spoil a valid one
    ):
        headers = {**signed(), "webhook-signature": header}
        assert verify_webhook(BODY, headers, SECRET, now=NOW)["id"] == TRAINING["id"], header


def test_tolerance_is_five_minutes_both_ways() -> None:
    assert TOLERANCE_SECONDS == 300
    assert verify_webhook(BODY, signed(at=NOW - 300), SECRET, now=NOW)
    assert verify_webhook(BODY, signed(at=NOW + 300), SECRET, now=NOW)
    stale = reason_of(BODY, signed(at=NOW - 301))
    assert stale.reason == "stale_timestamp" and "301 s ago" in str(stale) and "clock" in str(stale)
    future = reason_of(BODY, signed(at=NOW + 3 * 3600))
    assert future.reason == "future_timestamp" and "3 h in the future" in str(future)


def test_missing_headers() -> None:
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = {k: v for k, v in signed().items() if k != name}
        error = reason_of(BODY, headers)
        assert error.reason == "missing_headers" and name in str(error), name
        blank = reason_of(BODY, {**signed(), name: "  "})
        assert blank.reason == "missing_headers"
    assert "webhook-id, webhook-timestamp, webhook-signature headers" in str(reason_of(BODY, {}))


def test_bad_signature() -> None:
    headers = signed()
    cases = {
        "wrong secret": (BODY, signed(secret=OTHER_SECRET)),
        "body changed": (BODY.replace(b"processing", b"succeeded!"), headers),
        "body re-encoded": (json.dumps(TRAINING).encode(), headers),  # ensure_ascii differs from the raw bytes
        "id changed": (BODY, {**headers, "webhook-id": "msg_other"}),
        "timestamp changed": (BODY, {**headers, "webhook-timestamp": str(NOW + 1)}),
        "only other versions": (BODY, {**headers, "webhook-signature": "v2," + headers["webhook-signature"][3:]}),
    }
    for label, (body, case_headers) in cases.items():
        error = reason_of(body, case_headers)
        assert error.reason == "bad_signature", label
        assert "does not match" in str(error) and "/v1/webhooks/default/secret" in str(error)


def test_malformed_signatures_and_timestamps() -> None:
    for header in ("v1", "v1,", "nonsense", "v1,not base64!", ",abc="):
        error = reason_of(BODY, {**signed(), "webhook-signature": header})
        assert error.reason == "malformed_signature" and "v1,<base64>" in str(error), header
    for stamp in ("soon", "1.5e9", "-5", "0x10"):
        error = reason_of(BODY, {**signed(), "webhook-timestamp": stamp})
        assert error.reason == "malformed_signature" and "not whole seconds" in str(error), stamp


def test_body_that_is_not_utf8() -> None:
    error = reason_of(b'{"id": "\xff\xfe"}', signed())
    assert error.reason == "not_utf8" and "not UTF-8" in str(error)


def test_signed_body_that_is_not_json() -> None:
    body = b"status=succeeded&id=abc"
    error = reason_of(body, signed(body))
    assert error.reason == "not_json" and "not JSON" in str(error)


@pytest.mark.parametrize("payload", [[1, 2], "a string", {"status": "succeeded"}, {"id": 42}, {"id": ""}, {"id": "x", "status": 3}])
def test_signed_json_that_is_not_a_training(payload: Any) -> None:
    body = json.dumps(payload).encode()
    error = reason_of(body, signed(body))
    assert error.reason == "not_a_training" and "not a training" in str(error)


def test_bad_secrets_are_config_errors() -> None:
    for secret in ("", "whsec_", "whsec_!!!!", "not base64 at all"):
        with pytest.raises(ConfigError, match="not a valid whsec_<base64> key"):
            verify_webhook(BODY, signed(), secret, now=NOW)
        with pytest.raises(ConfigError):
            sign_webhook(BODY, secret, "msg_1", NOW)


def test_signing_refuses_what_cannot_be_signed() -> None:
    with pytest.raises(BadArgumentError, match="not UTF-8"):
        sign_webhook(b"\xff", SECRET, "msg_1", NOW)
    for msg_id in ("", "msg 1", "msg.1"):
        with pytest.raises(BadArgumentError, match="webhook id"):
            sign_webhook(BODY, SECRET, msg_id, NOW)


def test_real_clock_is_used_when_now_is_not_given() -> None:
    fresh = signed(at=int(time.time()))
    assert verify_webhook(BODY, fresh, SECRET)["id"] == TRAINING["id"]
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(BODY, signed(at=int(time.time()) - 3600), SECRET)
    assert caught.value.reason == "stale_timestamp"


# ---------------------------------------------------------------------------------------------
# Agreement with the other implementations


def test_our_signatures_pass_the_packages_own_verify_and_vice_versa() -> None:
    at = int(time.time())  # the package's verify reads the wall clock
    headers = signed(at=at)
    assert Webhook(SECRET).verify(BODY, headers) == TRAINING
    from datetime import datetime, timezone

    theirs = Webhook(SECRET).sign("msg_theirs", datetime.fromtimestamp(at, tz=timezone.utc), BODY.decode())
    their_headers = {"webhook-id": "msg_theirs", "webhook-timestamp": str(at), "webhook-signature": theirs}
    assert verify_webhook(BODY, their_headers, SECRET)["id"] == TRAINING["id"]


def test_our_signatures_pass_replicate_pythons_validate() -> None:
    at = int(time.time())
    headers = signed(at=at)
    key = WebhookSigningSecret(key=SECRET)
    assert replicate.webhooks.validate(headers=headers, body=BODY.decode(), secret=key, tolerance=300) is None
    # ...and both reject the same tampering.
    tampered = BODY.replace(b"processing", b"succeeded!")
    with pytest.raises(WebhookValidationError):
        replicate.webhooks.validate(headers=headers, body=tampered.decode(), secret=key, tolerance=300)
    assert reason_of(tampered, headers, now=at).reason == "bad_signature"
    old = signed(at=at - 3600)
    with pytest.raises(WebhookValidationError):
        replicate.webhooks.validate(headers=old, body=BODY.decode(), secret=key, tolerance=300)
    assert reason_of(BODY, old, now=at).reason == "stale_timestamp"


def _whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


_keys = st.binary(min_size=16, max_size=48)
_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=40)
_training_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=26, max_size=26)


@settings(max_examples=60, deadline=None)
@given(key=_keys, msg_id=_ids, tid=_training_ids, logs=st.text(max_size=200), wrong_key=st.booleans())
def test_replicate_python_and_replitrack_agree(key: bytes, msg_id: str, tid: str, logs: str, wrong_key: bool) -> None:
    """For any key, id and body: both accept our signature under the right secret, and both
    reject it under another one. (The other key differs in its first byte: HMAC pads keys with
    zeros, so keys differing only by trailing zero bytes are genuinely the same key.)"""
    at = int(time.time())
    body = json.dumps({"id": tid, "status": "processing", "logs": logs}).encode()
    headers = sign_webhook(body, _whsec(key), msg_id, at)
    check_secret = _whsec(bytes([key[0] ^ 1]) + key[1:]) if wrong_key else _whsec(key)
    try:
        replicate.webhooks.validate(headers=headers, body=body.decode(), secret=WebhookSigningSecret(key=check_secret), tolerance=300)
        theirs = True
    except WebhookValidationError:
        theirs = False
    try:
        verify_webhook(body, headers, check_secret, now=at)
        ours = True
    except WebhookVerificationError as error:
        assert error.reason == "bad_signature"
        ours = False
    assert ours == theirs == (not wrong_key)


async def test_verifies_raw_bytes_and_headers_from_a_real_aiohttp_request() -> None:
    """What the listener will do: read the raw body, pass aiohttp's case-insensitive headers."""
    outcomes: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        try:
            training = verify_webhook(await request.read(), request.headers, SECRET)
        except WebhookVerificationError as error:
            outcomes.append(error.reason)
            return web.Response(status=401, text=str(error))
        outcomes.append(training["status"])
        return web.Response(status=204)

    app = web.Application()
    app.add_routes([web.post("/hook", hook)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        headers = {k.title(): v for k, v in signed(at=int(time.time())).items()}
        async with ClientSession() as session:
            async with session.post(url, data=BODY, headers={**headers, "Content-Type": "application/json"}) as response:
                assert response.status == 204
            async with session.post(url, data=BODY + b" ", headers=headers) as response:
                assert response.status == 401 and "does not match" in await response.text()
            async with session.post(url, data=BODY) as response:
                assert response.status == 401
    finally:
        await runner.cleanup()
    assert outcomes == ["processing", "bad_signature", "missing_headers"]
