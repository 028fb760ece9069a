"""`replitrack cancel ID`: cancel a running training."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from core.errors import ReplitrackError
from core.models import Status
from core.views import status_view
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "cancel", run, help="cancel a running training",
                           description="Cancel a training (by id, or destination owner/name for its "
                                       "latest training).")
    parser.add_argument("id", metavar="ID", help="training id, or destination owner/name")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    view = c.run_async(cancel(args.id))
    if args.json:
        o.print_json(view)
    else:
        print(view["id"])
    if view["status"] != "canceled":
        o.say(f"training {view['id']} had already {view['status']}: nothing to cancel")
        return c.EXIT_FAILED
    o.say(f"canceled {view['id']}" + (f" ({view['destination']})" if view.get("destination") else ""))
    return c.EXIT_OK


async def cancel(ref: str) -> dict[str, Any]:
    owner = c.store_owner()
    if owner is None:
        with c.open_store(write=True) as store:
            tid, record = c.resolve(store, ref)
            _check_running(record)
            if not store.readonly:
                from core.service import TrainingService  # httpx: loaded when used, for start-up time

                async with c.make_client() as client:
                    result = await TrainingService(store, client).cancel(tid)
                return status_view(result.record or store.get(tid) or {"id": tid, "status": "canceled"})
        owner = c.store_owner() or c.Owner(None, None)  # taken meanwhile: go the owner's way
    # Another instance owns the store: it cancels (through its local API), so its store and
    # screens have the result at once; one without a local API fetches it at its next poll.
    with c.open_store(write=False) as store:
        tid, record = c.resolve(store, ref)
    _check_running(record)
    if owner.api:
        return await c.LocalApi(owner).object("POST", f"/api/trainings/{quote(tid, safe='')}/cancel")
    async with c.make_client() as client:
        training = await client.cancel_training(tid)
    await c.adopt(owner, tid)
    return c.view_of_training(training, record)


def _check_running(record: dict[str, Any] | None) -> None:
    if record is not None and Status.parse(record.get("status")).terminal:
        raise ReplitrackError(
            f"training {record['id']} has already {record['status']}: there is nothing to cancel "
            "(`replitrack retry` starts it again)"
        )
