"""`replitrack sync [ID | --all] [--version owner/model:version]`: reconcile with Replicate.

- `sync` alone shows what differs (finished remotely but not here, missed updates, never
  imported) and changes nothing;
- `sync --all` fetches each of those and brings it into the store;
- `sync ID` fetches one training (or a destination's latest) in full, e.g. a finished model whose
  completion was missed; `--version` checks that it produced that version.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.errors import BadArgumentError, ReplitrackError
from core.views import status_view
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(
        subparsers, "sync", run, help="reconcile the store with Replicate and print what changed",
        description="Without arguments, show the trainings whose local state differs from Replicate; "
                    "with --all, sync them all; with an ID (or destination owner/name), sync that one.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("id", nargs="?", metavar="ID", help="training id, or destination owner/name")
    target.add_argument("--all", action="store_true", help="sync every training that differs")
    parser.add_argument("--version", metavar="OWNER/MODEL:VERSION",
                        help="with ID: check the training produced this version")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    if args.version and not args.id:
        raise BadArgumentError("--version goes with an ID: `replitrack sync ID --version owner/model:version`")
    report = c.run_async(sync(args.id, every=args.all, version=args.version))
    if args.json:
        o.print_json(report)
    else:
        _print(report, dry_run=not args.id and not args.all)
    return c.EXIT_FAILED if report["errors"] else c.EXIT_OK


async def sync(ref: str | None, *, every: bool, version: str | None) -> dict[str, Any]:
    """{"differences": [...], "synced": [...], "errors": [...]} (shapes in the README)."""
    report: dict[str, Any] = {"differences": [], "synced": [], "errors": []}
    owner = c.store_owner()
    if owner is None:
        with c.open_store(write=True) as store:
            if not store.readonly:
                await _sync_here(store, ref, every, version, report)
                return report
        owner = c.store_owner() or c.Owner(None, None)
    await _sync_through(owner, ref, every, version, report)
    return report


async def _sync_here(store: Any, ref: str | None, every: bool, version: str | None, report: dict[str, Any]) -> None:
    from core.service import TrainingService  # httpx: loaded when used, for start-up time

    async with c.make_client() as client:
        service = TrainingService(store, client)
        if ref is not None:  # known or not: sync_completed fetches what the store never saw
            report["synced"].append(_synced(await service.sync_completed(ref.strip(), version)))
            return
        items = await service.differences()
        report["differences"] = [item.to_dict() for item in items]
        if not every:
            return
        for item in items:
            try:
                report["synced"].extend(_synced(result) for result in await service.sync([item.training_id]))
            except ReplitrackError as error:
                report["errors"].append({"id": item.training_id, "error": str(error)})


async def _sync_through(owner: c.Owner, ref: str | None, every: bool, version: str | None,
                        report: dict[str, Any]) -> None:
    """Another instance owns the store: it does the writing, through its local API."""
    if not owner.api:
        raise ReplitrackError(
            f"{owner.describe()} owns the store and serves no local API: sync from it, or stop it and "
            "run the command again"
        )
    api = c.LocalApi(owner)
    if ref is None:
        from core.service import TrainingService  # httpx: loaded when used, for start-up time

        with c.open_store(write=False) as store:
            async with c.make_client() as client:
                items = await TrainingService(store, client).differences()  # reads only
        report["differences"] = [item.to_dict() for item in items]
        targets = [item.training_id for item in items] if every else []
    else:
        targets = [ref]
    for target in targets:
        try:
            report["synced"].append(await _sync_one_through(api, target, version if ref is not None else None))
        except ReplitrackError as error:
            if ref is not None:
                raise
            report["errors"].append({"id": target, "error": str(error)})


async def _sync_one_through(api: c.LocalApi, target: str, version: str | None) -> dict[str, Any]:
    # The owner fetches what its store never saw (an id, or a destination's latest training).
    body: dict[str, Any] = {"modelId": target}
    if version:
        body["replicateModelVersion"] = version
    return _synced_answer(target, await api.call("POST", "/api/replicate/sync-completed", body))


def _synced(result: Any) -> dict[str, Any]:
    return {
        "id": result.training_id,
        "outcome": result.outcome,
        "changes": {key: [before, after] for key, (before, after) in result.changes.items()},
        "training": status_view(result.record) if result.record else None,
    }


def _synced_answer(target: str, answer: Any) -> dict[str, Any]:
    """The local API's answer in the same shape (it may send the view itself, or wrap it)."""
    answer = answer if isinstance(answer, dict) else {}
    training = next((answer[key] for key in ("training", "status") if isinstance(answer.get(key), dict)), None)
    return {
        "id": (training or {}).get("id") or answer.get("id") or target,
        "outcome": answer.get("outcome") or "updated",
        "changes": answer.get("changes") if isinstance(answer.get("changes"), dict) else {},
        "training": training,
    }


def _print(report: dict[str, Any], *, dry_run: bool) -> None:
    if not dry_run and not report["differences"] and not report["synced"] and not report["errors"]:
        print("Everything is in sync with Replicate.")
    if report["differences"] or dry_run:
        items = report["differences"]
        if not items:
            print("Everything is in sync with Replicate.")
        else:
            rows = [[i["id"], i["destination"] or "-", i["local_status"] or "-", i["remote_status"], i["reason"]]
                    for i in items]
            styles = [[None, "bold", o.STATUS_STYLE.get(i["local_status"] or ""),
                       o.STATUS_STYLE.get(i["remote_status"]), "dim"] for i in items]
            o.print_table(["ID", "MODEL", "HERE", "REPLICATE", "WHY"], rows, styles)
            if dry_run:
                o.say(f"{len(items)} training(s) differ: `replitrack sync --all` syncs them "
                      "(or `replitrack sync ID` one)")
    colour = o.use_colour()
    for entry in report["synced"]:
        changes = ", ".join(f"{key} {before or '-'} → {after or '-'}" for key, (before, after) in entry["changes"].items()
                            if key != "overall_percent")
        status = (entry.get("training") or {}).get("status") or "?"
        what = changes or {"created": "added", "updated": "updated"}.get(entry["outcome"], "no change")
        print(f"{entry['id']}  {o.paint(status, o.STATUS_STYLE.get(status), colour=colour)}  {what}")
    for entry in report["errors"]:
        o.warn(f"{entry['id']}: {entry['error']}")
