"""What the simulated Replicate stores, and how each thing looks as JSON on the wire."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from core.models import TERMINAL, WEBHOOK_EVENTS

from .formats import iso
from .schemas import Trainer

EVENTS = WEBHOOK_EVENTS
DEFAULT_EVENTS = frozenset({"output", "completed"})


class RawText(str):
    """Output as the newest Cog runtime passes it: no stripping, no added line end (tqdm's `\r`
    refreshes stay on one line, indentation stays)."""


class Listed:
    """What every simulated object that is listed shares (trainings, predictions): whether it has
    ended, and its place in a newest-first list."""

    status: str
    created_at: float
    seq: int
    started_at: float | None
    completed_at: float | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def sort_key(self) -> tuple[int, int]:
        return (int(self.created_at * 1_000_000), self.seq)

    def metrics(self) -> dict[str, float]:
        """Replicate's `metrics`: the whole time, and the billed (predict) time once it ran."""
        if self.completed_at is None:
            return {}
        metrics = {"total_time": round(self.completed_at - self.created_at, 6)}
        if self.started_at is not None:
            metrics["predict_time"] = round(self.completed_at - self.started_at, 6)
        return metrics


@dataclass
class TrainingRecord(Listed):
    id: str
    seq: int  # creation order, breaks ties between equal timestamps
    trainer: Trainer
    destination: str
    input: dict[str, Any]
    script: str
    rng: random.Random
    created_at: float
    webhook: str | None = None
    events: frozenset[str] = DEFAULT_EVENTS
    status: str = "starting"
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    output: dict[str, str] | None = None
    lines: list[str] = field(default_factory=list)
    stuck: bool = False
    wait_for: list[TrainingRecord] = field(default_factory=list)  # stays queued until these end
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _logs: str | None = field(default=None, repr=False)

    @property
    def logs(self) -> str:
        # Cog's logs: one line per print, each ending in a newline; raw output (the newest
        # runtime) as it was written, a line after it starting on a line of its own.
        if self._logs is None:
            parts, raw = [], False
            for line in self.lines:
                if isinstance(line, RawText):
                    parts.append(line)
                    raw = True
                else:
                    parts.append(f"\n{line}\n" if raw else f"{line}\n")
                    raw = False
            self._logs = "".join(parts)
        return self._logs

    def append(self, lines: list[str]) -> int:
        """Add lines as Cog does (strip each, drop empty ones); returns how many were added."""
        added = 0
        for raw in lines:
            if isinstance(raw, RawText):
                self.lines.append(raw)
                added += 1
                continue
            for piece in raw.replace("\r", "\n").split("\n"):
                piece = piece.strip()
                if piece:
                    self.lines.append(piece)
                    added += 1
        if added:
            self._logs = None
        return added

    def to_json(self, base_url: str, *, with_logs: bool = True, create_response: bool = False) -> dict[str, Any]:
        """The object as GET /v1/trainings/{id} answers it (list items drop `logs`).

        Fields that are not set yet (started_at, completed_at, output) are left out rather than
        null: the spec types them without `nullable`, and real clients treat absent as unset.
        """
        # Real create responses point get/cancel at /v1/predictions/{id}: clients must build
        # URLs from the id, never from `urls`.
        kind = "predictions" if create_response else "trainings"
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.trainer.name,
            "version": self.trainer.version,
            "input": self.input,
        }
        if with_logs:
            data["logs"] = self.logs
        data.update(
            {
                "error": self.error,
                "status": self.status,
                "created_at": iso(self.created_at, 6),
                "source": "api",
                "metrics": self.metrics(),
                "urls": {
                    "get": f"{base_url}/v1/{kind}/{self.id}",
                    "cancel": f"{base_url}/v1/{kind}/{self.id}/cancel",
                    "web": f"https://replicate.com/p/{self.id}",
                },
                "data_removed": False,
            }
        )
        if self.started_at is not None:
            data["started_at"] = iso(self.started_at, 9)
        if self.completed_at is not None:
            data["completed_at"] = iso(self.completed_at, 6)
        if self.output is not None:
            data["output"] = dict(self.output)
        return data


@dataclass
class VersionRecord:
    id: str
    created_at: str  # already in wire format
    cog_version: str
    openapi_schema: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "cog_version": self.cog_version,
            "openapi_schema": self.openapi_schema,
        }


@dataclass
class ModelRecord:
    owner: str
    name: str
    visibility: str = "private"
    hardware: str = "gpu-t4"
    description: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    cover_image_url: str | None = None
    run_count: int = 0
    is_official: bool = False
    versions: list[VersionRecord] = field(default_factory=list)  # newest first

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "url": f"https://replicate.com/{self.owner}/{self.name}",
            "owner": self.owner,
            "name": self.name,
            "description": self.description,
            "visibility": self.visibility,
            "github_url": self.github_url,
            "paper_url": self.paper_url,
            "license_url": self.license_url,
            "run_count": self.run_count,
            "cover_image_url": self.cover_image_url,
            "default_example": None,
            "is_official": self.is_official,
            "latest_version": self.versions[0].to_json() if self.versions else None,
        }


@dataclass
class FileRecord:
    id: str
    name: str
    content_type: str
    data: bytes
    sha256: str
    md5: str
    metadata: dict[str, Any]
    created_at: float

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": len(self.data),
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": iso(self.created_at, 6),
            "expires_at": iso(self.created_at + 24 * 3600, 6),
            "urls": {"get": f"{base_url}/v1/files/{self.id}"},
        }
