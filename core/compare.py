"""Comparing runs: the same model trained several times (other steps, rank, learning rate). One
table for the CLI (`replitrack compare`) and the Compare screen: outcome, duration, billed time,
final loss, and only the inputs that differ between the runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.billing import billed_seconds, estimated_cost
from core.models import Status, parse_time

MIN_RUNS, MAX_RUNS = 2, 6
LABELS = "ABCDEF"
MISSING = object()


def differing_inputs(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Input names whose values are not the same in every run (absent counts as a value)."""
    names = sorted({name for record in records for name in (record.get("input") or {})})
    return [name for name in names
            if len({_key((r.get("input") or {}).get(name, MISSING)) for r in records}) > 1]


def _key(value: Any) -> str:
    import json

    return "\0absent" if value is MISSING else json.dumps(value, sort_keys=True, default=str)


def duration_seconds(record: Mapping[str, Any], now: datetime) -> float | None:
    """From start (or creation) to completion, or to now while it runs."""
    start = parse_time(record.get("started_at") or record.get("created_at"))
    end = parse_time(record.get("completed_at")) or (None if Status.parse(record.get("status")).terminal else now)
    return (end - start).total_seconds() if start and end and end >= start else None


def comparison(records: Sequence[Mapping[str, Any]], losses: Mapping[str, Sequence[tuple[int, float]]],
               now: datetime) -> dict[str, Any]:
    """`{"runs": [...], "differing_inputs": [...]}` (the shape of `compare --json`)."""
    differing = differing_inputs(records)
    runs = []
    for label, record in zip(LABELS, records):
        series = losses.get(str(record.get("id"))) or ()
        runs.append({
            "label": label,
            "id": record.get("id"),
            "destination": record.get("destination"),
            "trainer": record.get("trainer"),
            "status": record.get("status"),
            "terminal": Status.parse(record.get("status")).terminal,
            # ai-toolkit's bar ends at steps − 1: a run that succeeded reached its total
            "step": (record.get("total_steps") if record.get("status") == "succeeded" and record.get("total_steps")
                     else series[-1][0] if series else record.get("step")),
            "total_steps": record.get("total_steps"),
            "final_loss": series[-1][1] if series else record.get("loss"),
            "duration_seconds": _round(duration_seconds(record, now)),
            "billed_seconds": billed_seconds(dict(record)),
            "estimated_cost": estimated_cost(dict(record)),
            "inputs": {name: (record.get("input") or {}).get(name) for name in differing},
        })
    return {"runs": runs, "differing_inputs": differing}


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
