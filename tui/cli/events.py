"""`replitrack events [--json]`: the webhooks the listener received and their verdicts;
`replitrack events replay EVENT_ID`: run a recorded webhook through the receiver again (its
signature is checked as of when it was first received; the update rules keep the store right)."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote, urlencode

from core import config
from core.errors import BadArgumentError, ReplitrackError
from tui.cli import _common as c
from tui.cli import _output as o

VERDICT_STYLE = {"accepted": "green", "duplicate": "dim", "ignored": "yellow", "rejected": "red", "error": "red"}


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "events", run_list, help="list received webhooks, or replay one",
                           description="The webhooks received by `replitrack listen` or the TUI, newest "
                                       "first, with their verdicts. `events replay EVENT_ID` re-applies one.")
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="at most N events (default 50)")
    parser.add_argument("--training", metavar="ID", help="only this training's events")
    parser.add_argument("--verdict", choices=sorted(VERDICT_STYLE), help="only events with this verdict")
    c.add_json_flag(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    replay = c.add_command(actions, "replay", run_replay, help="re-apply a recorded webhook",
                           description="Run a recorded webhook through the receiver again.")
    replay.add_argument("event_id", metavar="EVENT_ID", help="an id from `replitrack events`, e.g. ev00000042")
    c.add_json_flag(replay)


# ----- list ------------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    if args.limit <= 0:
        raise BadArgumentError(f"--limit {args.limit}: give a positive number")
    listing = c.run_async(_list(args.limit, args.training, args.verdict))
    if args.json:
        o.print_json(listing)
        return c.EXIT_OK
    events = listing["events"]
    if not events:
        o.say("No webhooks received yet: they arrive while `replitrack listen` (or the TUI) runs with a tunnel.")
        return c.EXIT_OK
    rows, styles = [], []
    for event in events:
        rows.append([event["id"], o.short_time(event.get("received_at")), event.get("training_id") or "-",
                     (event.get("event") or "-") + ("?" if event.get("event") and event.get("event_inferred") else ""),
                     event.get("status") or "-", event.get("verdict") or "-", str(event.get("http_status") or "-"),
                     event.get("reason") or "", "replay of " + event["replay_of"] if event.get("replay_of") else ""])
        styles.append([None, "dim", None, None, o.STATUS_STYLE.get(event.get("status") or ""),
                       VERDICT_STYLE.get(event.get("verdict") or ""), None, "dim", "dim"])
    o.print_table(["EVENT", "RECEIVED", "TRAINING", "KIND", "STATUS", "VERDICT", "HTTP", "REASON", ""], rows, styles)
    o.say(f"{listing['count']} shown of {listing['kept']} kept; KIND? = inferred from the body "
          "(Replicate does not say which event a webhook is)")
    return c.EXIT_OK


async def _list(limit: int, training: str | None, verdict: str | None) -> dict[str, Any]:
    """{"events": [event summaries, newest first], "count": shown, "kept": in the log} — the local API's shape."""
    owner = c.store_owner()
    if owner is not None and owner.api:
        query = {"limit": limit, **({"training": training} if training else {}), **({"verdict": verdict} if verdict else {})}
        return await c.LocalApi(owner).object("GET", "/api/events?" + urlencode(query))
    kept = _read_index()
    events = [e for e in reversed(kept) if (not training or e.get("training_id") == training)
              and (not verdict or e.get("verdict") == verdict)][:limit]
    return {"events": events, "count": len(events), "kept": len(kept)}


def _read_index() -> list[dict[str, Any]]:
    """The event log's summaries, oldest first, read without writing anything (the listener may
    be appending to it): a later line for an id replaces an earlier one, a torn line is skipped."""
    from listener.events import INDEX_FILE, EventRecord  # aiohttp: loaded when used, for start-up time
    from listener.service import EVENTS_DIR

    try:
        text = (config.home() / EVENTS_DIR / INDEX_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ReplitrackError(f"cannot read the event log in {config.home() / EVENTS_DIR}: {error.strerror}") from None
    events: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            record = EventRecord.from_dict(json.loads(line))
        except (ValueError, TypeError):
            continue
        events.pop(record.id, None)
        events[record.id] = record.summary()
    return list(events.values())


def _event_log() -> Any:
    from listener.events import EventLog  # aiohttp: loaded when used, for start-up time
    from listener.service import EVENTS_DIR

    return EventLog(config.home() / EVENTS_DIR)


# ----- replay ----------------------------------------------------------------------------------

def run_replay(args: argparse.Namespace) -> int:
    answer = c.run_async(replay(args.event_id.strip()))
    event = answer["event"]
    if args.json:
        o.print_json(answer)
    else:
        print(event["id"])
    verdict = event.get("verdict")
    o.say(f"replayed {answer['replayed']} as {event['id']}: {verdict} ({event.get('reason') or event.get('http_status')})"
          + (f", training {event['training_id']} {event.get('status')}" if event.get("training_id") else ""))
    return c.EXIT_OK if verdict in ("accepted", "duplicate", "ignored") else c.EXIT_FAILED


async def replay(event_id: str) -> dict[str, Any]:
    """{"replayed": the original id, "event": the new event's summary} — the local API's shape."""
    owner = c.store_owner()
    if owner is not None:
        if not owner.api:
            raise ReplitrackError(f"{owner.describe()} owns the store and serves no local API: replay from it, "
                                  "or stop it and run the command again")
        return await c.LocalApi(owner).object("POST", f"/api/events/{quote(event_id, safe='')}/replay")
    log = _event_log()
    record = log.get(event_id)
    if record is None:
        raise ReplitrackError(f"no event {event_id!r} in the event log (it keeps the newest ones): "
                              "list them with `replitrack events`")
    body = log.read_body(event_id)
    if body is None:
        raise ReplitrackError(f"cannot replay {event_id}: its body was not kept (too large, or evicted to "
                              "keep the event log within its bound)")
    from core.service import TrainingService  # httpx: loaded when used, for start-up time
    from listener.receiver import WebhookReceiver, WebhookSecret

    with c.open_store(write=True) as store:
        if store.readonly:
            raise ReplitrackError("another replitrack took the store just now: run the command again")
        async with c.make_client() as client:
            secret = WebhookSecret(None, client.default_webhook_secret)
            receiver = WebhookReceiver(TrainingService(store, client), secret, log)
            stamp = record.headers.get("webhook-timestamp", "")
            try:
                replayed = await receiver.receive(body, record.headers, method=record.method, path=record.path,
                                                  replay_of=event_id, verify_at=float(stamp) if stamp.isdigit() else None)
            finally:
                await receiver.close()
                await secret.close()
    return {"replayed": event_id, "event": replayed.summary()}
