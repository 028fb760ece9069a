"""`replitrack retry ID`: a new training with the same trainer, destination and inputs."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from core.errors import ReplitrackError
from core.models import WEBHOOK_EVENTS, Status
from core.views import status_view
from tui.cli import _common as c
from tui.cli.watch import report_started


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "retry", run, help="start a training again (prints the new id)",
                           description="Start a new training with the same trainer, version, destination "
                                       "and inputs as a finished one; prints the new training's id.")
    parser.add_argument("id", metavar="ID", help="training id, or destination owner/name")
    parser.add_argument("--watch", action="store_true", help="then follow it like `replitrack watch`")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="with --watch: how often to poll when no replitrack instance runs (default 5)")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    view, old = c.run_async(retry(args.id))
    return report_started(args, view, f"started {view['id']}, a retry of {old} "
                                      f"({view.get('trainer') or '?'} → {view.get('destination') or '?'})")


async def retry(ref: str) -> tuple[dict[str, Any], str]:
    owner = c.store_owner()
    if owner is None:
        with c.open_store(write=True) as store:
            record = c.find_record(store, ref)
            _check_finished(record)
            if not store.readonly:
                from core.service import TrainingService  # httpx: loaded when used, for start-up time

                async with c.make_client() as client:
                    result = await TrainingService(store, client).retry(record["id"])
                return status_view(result.record or {"id": result.training_id}), record["id"]
        owner = c.store_owner() or c.Owner(None, None)
    # Another instance owns the store: it retries (and so tracks the new training with its
    # destination); an owner without a local API gets the new training adopted.
    with c.open_store(write=False) as store:
        record = c.find_record(store, ref)
    _check_finished(record)
    if owner.api:
        path = f"/api/trainings/{quote(record['id'], safe='')}/retry"
        return await c.LocalApi(owner).object("POST", path), record["id"]
    if not record.get("destination") or not record.get("trainer"):
        raise ReplitrackError(
            f"cannot retry {record['id']}: its destination model is unknown (it was started elsewhere "
            "and has no output). Start it again with `replitrack train`."
        )
    webhook = await c.owner_webhook(owner)
    async with c.make_client() as client:
        training = await client.create_training(record["trainer"], record.get("trainer_version") or None,
                                                record["destination"], dict(record.get("input") or {}),
                                                webhook=webhook,
                                                webhook_events_filter=list(WEBHOOK_EVENTS) if webhook else None)
    training.destination = training.destination or record["destination"]
    await c.adopt(owner, training.id)
    return c.view_of_training(training), record["id"]


def _check_finished(record: dict[str, Any]) -> None:
    if not Status.parse(record.get("status")).terminal:
        raise ReplitrackError(
            f"training {record['id']} is still {record.get('status')}: retry starts a finished training "
            "again; cancel it first (`replitrack cancel`) or wait for it to end"
        )
