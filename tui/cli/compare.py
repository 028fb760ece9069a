"""`replitrack compare ID ID ... [--json]`: 2–6 runs side by side — outcome, steps, duration, billed
time, final loss, and the inputs that differ between them (the Compare screen's table)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core import formats
from core.errors import BadArgumentError
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(
        subparsers, "compare", run, help="compare 2-6 trainings: outcome, time, loss, differing inputs",
        description="Compare 2 to 6 trainings (ids, or destination owner/name for their latest training): "
                    "status, steps, duration, billed time, final loss, and the inputs that differ.")
    parser.add_argument("ids", nargs="+", metavar="ID", help="training ids or destination owner/name")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from core.compare import MAX_RUNS, MIN_RUNS

    refs = list(dict.fromkeys(ref.strip() for ref in args.ids))
    if not MIN_RUNS <= len(refs) <= MAX_RUNS:
        raise BadArgumentError(f"give {MIN_RUNS} to {MAX_RUNS} different trainings to compare, not {len(refs)}")
    return c.run_async(_run(args, refs))


async def _run(args: argparse.Namespace, refs: list[str]) -> int:
    from core.compare import comparison
    from core.models import utcnow
    from core.updates import Updater

    ids = []
    for ref in refs:
        view, _ = await c.fresh_view(ref)  # fetched first when it may still change
        ids.append(view["id"])
    if len(set(ids)) < len(ids):
        raise BadArgumentError("two of the names given are the same training: give different ones")
    with c.open_store(write=False) as store:
        updater = Updater(store)
        records = [c.find_record(store, tid) for tid in ids]
        losses = {tid: list(updater.tracker(tid).state.losses) for tid in ids}
        table = comparison(records, losses, utcnow())
    if args.json:
        o.print_json(table)
    else:
        print_comparison(table)
    return c.EXIT_OK


def print_comparison(table: dict[str, Any]) -> None:
    headers = ["", "TRAINING", "MODEL", "STATUS", "REACHED", "DURATION", "BILLED", "FINAL LOSS",
               *[name.upper() for name in table["differing_inputs"]]]
    rows, styles = [], []
    for run in table["runs"]:
        steps = f"{run['step'] or '-'}/{run['total_steps']}" if run.get("total_steps") else str(run.get("step") or "-")
        billed = f"{run['billed_seconds']:,.0f}s" if run.get("billed_seconds") is not None else "-"
        if run.get("estimated_cost") is not None:
            billed += f" (≈{run['estimated_cost']:,.2f} est.)"
        cells = [run["label"], run["id"], run.get("destination") or "-", run.get("status") or "-", steps,
                 formats.duration(run.get("duration_seconds")), billed, formats.number(run.get("final_loss")),
                 *[_cell(run["inputs"].get(name)) for name in table["differing_inputs"]]]
        rows.append(cells)
        styles.append([None, None, None, o.STATUS_STYLE.get(str(run.get("status"))), *[None] * (len(cells) - 4)])
    o.print_table(headers, rows, styles)
    if not table["differing_inputs"]:
        o.say("the runs have the same inputs")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)
