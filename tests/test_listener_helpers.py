"""Shared pieces of the listener tests (no tests here): signed webhook bodies and a running Listener."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from standardwebhooks import Webhook

from core.client import ReplicateClient
from core.service import TrainingService
from core.store import Store
from listener.service import Listener
from listener.tunnel import TunnelConfig

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
TID = "zz4ibbonubfz7carwiefibzgga"
BAR = "flux_train_replicate:  {p:>2}%|███       | {s}/1000 [02:10<04:50,  2.38it/s, lr: 4.0e-04 loss: 3.2e-01]\n"


def training(status: str, logs: str | None = "", tid: str = TID, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tid, "model": "ostris/flux-dev-lora-trainer", "version": "a" * 64, "status": status,
        "input": {"steps": 1000}, "logs": logs, "output": None, "error": None,
        "urls": {"get": f"https://api.example.invalid/v1/trainings/{tid}"},
        "created_at": "2024-09-10T05:09:00.123Z",
        "started_at": None if status == "starting" else "2024-09-10T05:10:00.123456Z",
    }
    data.update(extra)
    return data


def bars(*steps: int) -> str:
    return "Starting train job\n" + "".join(BAR.format(p=s // 10, s=s) for s in steps)


def signed(payload: dict[str, Any] | bytes, msg_id: str, *, secret: str = SECRET,
           timestamp: float | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers exactly as Replicate sends them, signed by the reference implementation."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    from datetime import datetime, timezone

    stamp = int(time.time() if timestamp is None else timestamp)
    try:
        signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, tz=timezone.utc), body.decode())
    except UnicodeDecodeError:  # the package signs text only; the scheme itself signs bytes
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature,
                  "content-type": "application/json"}


@asynccontextmanager
async def running_listener(*, base_url: str = "http://127.0.0.1:9", token: str | None = None,
                           **options: Any) -> AsyncIterator[Listener]:
    """A started Listener on loopback with its own store (closed afterwards)."""
    store = Store()
    client = ReplicateClient(token=token, base_url=base_url, max_retries=0)
    options.setdefault("secret", SECRET)
    options.setdefault("tunnel", TunnelConfig.off())
    listener = Listener(TrainingService(store, client), **options)
    try:
        await listener.start()
        yield listener
    finally:
        await listener.stop()
        await client.aclose()
        store.close()


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as answer:
            text = await answer.text()
            try:
                data = json.loads(text)
            except ValueError:
                data = {}
            return answer.status, data, answer.headers.get("Content-Type", "")


async def get(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, **kwargs) as answer:
            text = await answer.text()
            try:
                return answer.status, json.loads(text)
            except ValueError:
                return answer.status, text
