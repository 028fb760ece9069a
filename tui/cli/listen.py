"""`replitrack listen`: receive Replicate's webhooks headless, like `stripe listen`.

Prints the public webhook URL and where the signing secret comes from, then one line per webhook
(time, training, event, status, progress, verdict), or one JSON object per line with --json.
While it runs it owns the store: it also polls running trainings (so nothing is missed when a
webhook is), and serves the local API. Ctrl+C stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import BadArgumentError
from core.text import terminal_safe

if TYPE_CHECKING:  # the listener (aiohttp) is imported only when the command runs
    from listener.events import EventRecord
    from listener.service import Listener, ListenerStatus

EVENT_NAMES = ("start", "output", "logs", "completed")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "listen", help="receive Replicate webhooks and print them (headless)",
        description="Receive Replicate's webhooks through a tunnel, verify them, save the updates and print "
                    "one line per webhook. Also serves the local API and polls running trainings.",
    )
    parser.add_argument("--port", type=int, default=0,
                        help="port of the public face on 127.0.0.1 (what the tunnel forwards to); default: any free port")
    tunnel = parser.add_mutually_exclusive_group()
    # SUPPRESS: `replitrack --no-tunnel listen` (the app's global flags) must not be reset here.
    tunnel.add_argument("--no-tunnel", action="store_true", default=argparse.SUPPRESS,
                        help="no tunnel: follow trainings by polling alone")
    tunnel.add_argument("--public-url", metavar="URL", default=argparse.SUPPRESS,
                        help="a tunnel you already run (cloudflared, a reverse proxy) that reaches --port")
    parser.add_argument("--forward-to", metavar="URL",
                        help="relay each verified webhook (same bytes and signature headers) to this URL")
    parser.add_argument("--events", metavar="LIST",
                        help="only print and forward these events: " + ",".join(EVENT_NAMES) + " (all are saved)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--webhook-secret", metavar="WHSEC", default=argparse.SUPPRESS,
                        help="the signing secret (else REPLICATE_WEBHOOK_SECRET, else fetched from Replicate)")
    parser.add_argument("--api-port", type=int, default=0, help="port of the local API; default: any free port")
    parser.add_argument("--api-host", default="127.0.0.1", help="address of the local API (default 127.0.0.1)")
    parser.add_argument("--expose-local-api", action="store_true",
                        help="allow --api-host to be a non-loopback address (anyone reaching it can read your trainings)")
    parser.add_argument("--max-body", default="64MiB", metavar="SIZE",
                        help="largest webhook body accepted (default 64MiB; every logs webhook carries the whole log)")
    parser.add_argument("--no-poll", action="store_true", help="do not poll running trainings")
    parser.set_defaults(run=run)


def parse_size(text: str) -> int:
    match = _SIZE.match(text or "")
    if not match:
        raise BadArgumentError(f"--max-body {text!r} is not a size: write e.g. 64MiB, 500MB or 1048576")
    number, unit = float(match.group(1)), (match.group(2) or "b").lower()
    factor = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(unit[0], 1)
    return int(number * factor)


def parse_events(text: str | None) -> set[str] | None:
    if not text:
        return None
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(EVENT_NAMES))
    if unknown or not names:
        raise BadArgumentError(f"--events: unknown event {', '.join(unknown) or '(none)'}; "
                               f"choose from {','.join(EVENT_NAMES)}")
    return names


def _check_port(value: int, flag: str) -> int:
    if not 0 <= value <= 65535:
        raise BadArgumentError(f"{flag} {value} is not a port: use 1-65535, or 0 for any free port")
    return value


def _check_forward(url: str | None) -> str | None:
    if url is None:
        return None
    if not re.match(r"^https?://[^/\s]+", url):
        raise BadArgumentError(f"--forward-to {url!r} is not an http(s) URL: e.g. "
                               "http://localhost:3000/api/webhooks/replicate")
    return url


def run(args: argparse.Namespace) -> int:
    from listener.tunnel import TunnelConfig  # aiohttp: loaded when used, for start-up time

    for name, default in (("no_tunnel", False), ("public_url", None), ("webhook_secret", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.no_tunnel and args.public_url:
        raise BadArgumentError("--no-tunnel and --public-url contradict each other: choose one")
    _check_port(args.port, "--port")
    _check_port(args.api_port, "--api-port")
    no_authtoken = False
    if args.no_tunnel:
        tunnel = TunnelConfig.off()
    elif args.public_url:
        tunnel = TunnelConfig.url(args.public_url)
    elif not os.environ.get("NGROK_AUTHTOKEN", "").strip():
        # ngrok cannot open a tunnel without an authtoken: neither download it nor try
        tunnel, no_authtoken = TunnelConfig.off(), True
    else:
        tunnel = TunnelConfig()
    options = {"events": parse_events(args.events), "max_body": parse_size(args.max_body),
               "forward_to": _check_forward(args.forward_to), "tunnel": tunnel, "no_authtoken": no_authtoken}
    return asyncio.run(_listen(args, options))


class _Printer:
    """Writes what happens, as text lines or JSON lines, to stdout (flushed: it is often piped)."""

    def __init__(self, as_json: bool, events: set[str] | None) -> None:
        self.as_json = as_json
        self.events = events
        self._last_error: str | None = None

    def emit(self, data: dict[str, Any], text: str) -> None:
        print(json.dumps(data, ensure_ascii=False) if self.as_json else terminal_safe(text), flush=True)

    def note(self, kind: str, message: str, **extra: Any) -> None:
        if self.as_json:
            self.emit({"type": kind, "message": message, **extra}, "")
        else:
            print(terminal_safe(message), file=sys.stderr, flush=True)

    def shown(self, record: EventRecord) -> bool:
        return not self.events or record.event is None or record.event in self.events

    def webhook(self, record: EventRecord) -> None:
        if not self.shown(record):
            return
        data = {"type": "webhook", "id": record.id, "time": record.received_at, "training_id": record.training_id,
                "event": record.event, "event_inferred": record.event_inferred, "status": record.status,
                "progress": record.progress, "verdict": record.verdict, "reason": record.reason,
                "http_status": record.http_status, "webhook_id": record.webhook_id, "replay_of": record.replay_of,
                "duration_ms": record.duration_ms}
        if not record.accepted:
            data["detail"] = record.response.get("detail")
        progress = f"{record.progress:5.1f}%" if isinstance(record.progress, (int, float)) else "     -"
        event = f"{record.event}*" if record.event else "-"
        text = (f"{record.received_at}  {record.training_id or '-':<26}  {event:<10}  {record.status or '-':<10}  "
                f"{progress}  {record.verdict} ({record.reason}) [{record.http_status}]")
        if record.replay_of:
            text += f"  replay of {record.replay_of}"
        if not record.accepted:
            text += f"\n    {record.response.get('detail')}"
        self.emit(data, text)

    def forwarded(self, record: EventRecord) -> None:
        if not self.shown(record) or record.forward is None:
            return
        forward = record.forward
        answer = f"[{forward['status']}]" if forward.get("status") is not None else f"failed: {forward.get('error')}"
        self.emit({"type": "forward", "id": record.id, "training_id": record.training_id, **forward},
                  f"    <-- {answer} POST {forward['url']} ({forward.get('duration_ms', 0):.0f} ms)")

    def tunnel(self, status: ListenerStatus) -> None:
        self.emit({"type": "tunnel", "state": status.tunnel, "webhook_url": status.webhook_url},
                  f"tunnel: {status.tunnel}" + (f" ({status.webhook_url})" if status.webhook_url else ""))

    def poll_error(self, error: Exception) -> None:
        message = str(error)
        if message != self._last_error:  # the poller retries every few seconds: say it once
            self._last_error = message
            self.note("poll_error", f"polling: {message}")


async def _listen(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from core.client import ReplicateClient  # httpx: loaded when used, for start-up time
    from core.service import TrainingService
    from core.store import Store
    from listener.service import Listener

    printer = _Printer(args.json, options["events"])
    store = Store()
    for notice in store.notices:
        printer.note("notice", notice)
    client = ReplicateClient()
    poller: asyncio.Task[None] | None = None
    details: asyncio.Task[int] | None = None
    quiet: Callable[[], None] | None = None  # unsubscribes the tunnel lines: none while stopping
    listener: Listener | None = None
    try:
        service = TrainingService(store, client)
        if args.api_host != "127.0.0.1" and args.expose_local_api:
            printer.note("warning", f"WARNING: the local API listens on {args.api_host}: anyone who can reach it "
                         "can read your trainings, their inputs and logs, and the webhooks received (headers "
                         "and bodies); changing routes (start, cancel, retry, import, sync, replay) still "
                         "need the token in the store's replitrack.lock")
        listener = Listener(
            service, secret=args.webhook_secret, public_port=args.port, local_port=args.api_port,
            local_host=args.api_host, expose_local=args.expose_local_api, max_body=options["max_body"],
            tunnel=options["tunnel"], forward_to=options["forward_to"], forward_events=options["events"],
        )
        listener.subscribe(printer.webhook)
        listener.subscribe_forwards(printer.forwarded)
        await listener.start()
        # Ctrl+C is how listen is stopped: caught before "ready" is said, so it always ends cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        _banner(printer, listener, args, options)
        quiet = listener.subscribe_status(printer.tunnel)
        if not args.no_poll:
            poller = asyncio.create_task(service.poll_forever(printer.poll_error))
            # finished trainings imported without their log: fetched in the background, resumably
            details = asyncio.create_task(service.fetch_details())
        await stop.wait()
    finally:
        if quiet is not None:
            quiet()
        for task in (poller, details):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if listener is not None:
            await listener.stop()
        await client.aclose()
        store.close()
    printer.note("stopped", "Stopped: every accepted webhook is saved.")
    return 0


def _banner(printer: _Printer, listener: Listener, args: argparse.Namespace, options: dict[str, Any]) -> None:
    status = listener.status
    receiver_url = f"{listener.public_bind_url}/webhooks/replicate"
    data = {"type": "ready", "webhook_url": status.webhook_url, "public_url": status.public_url,
            "tunnel": status.tunnel, "secret_source": status.secret, "local_api": status.local_url,
            "receiver": receiver_url, "forward_to": options["forward_to"],
            "events": sorted(options["events"]) if options["events"] else None, "polling": not args.no_poll}
    lines = []
    if status.webhook_url:
        how = "ngrok tunnel" if options["tunnel"].mode == "ngrok" else "your tunnel, --public-url"
        lines.append(f"Ready! Webhook URL: {status.webhook_url}  ({how})")
    elif options.get("no_authtoken"):
        data["tunnel"] = "off: no NGROK_AUTHTOKEN"
        lines.append("polling only, no tunnel: set NGROK_AUTHTOKEN or pass --public-url URL")
        lines.append(f"Receiver (for a tunnel of your own, see --public-url): {receiver_url}")
    elif options["tunnel"].mode == "off":
        lines.append(f"No tunnel (--no-tunnel): following trainings by polling. Receiver: {receiver_url}")
    else:
        lines.append(f"No public webhook URL: {status.tunnel}")
        lines.append(f"Receiver (for a tunnel of your own, see --public-url): {receiver_url}")
    lines.append(f"Webhook signing secret: {status.secret}")
    lines.append(f"Local API: {status.local_url}  (e.g. curl -s {status.local_url}/api/events | jq)")
    if options["forward_to"]:
        lines.append(f"Forwarding verified webhooks to {options['forward_to']}")
    lines.append("One line per webhook: time, training, event (* = inferred from the body: Replicate does not "
                 "name it), status, progress, verdict [HTTP answer]. (^C to quit)")
    printer.emit(data, "\n".join(lines))
