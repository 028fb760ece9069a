"""The simulated Replicate: state, training lifecycle and the aiohttp server around it.

Everything runs in the caller's event loop. Simulated time runs `speed` times faster than the
wall clock for everything a trainer does; object timestamps stay on the wall clock (or the
injected `clock`), so they agree with the moment a client sees them.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import random
import re
import time
import zipfile
from collections.abc import Callable
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .errors import (
    PortInUseError,
    Problem,
    RequestRejectedError,
    SimulatorError,
    UnknownScenarioError,
    UnknownTrainingError,
    problem,
)
from . import paging
from .faults import Faults
from .formats import iso, new_id, new_version_id, new_webhook_secret
from .holds import Hold, Holds
from .records import FileRecord, ModelRecord, TrainingRecord, VersionRecord
from .prediction_routes import routes as prediction_routes
from .routes import build_app
from .requests import Invalid
from .scenarios import SCENARIOS
from .schemas import TRAINERS, Trainer, cog_openapi_schema, validate_input
from .scripts import SCRIPTS, Emit, Fail, ScriptContext, Succeed, run_to_end
from .webhooks import Delivery, WebhookSender

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "r8_sim" + "0" * 34  # 40 characters, like real r8_ tokens
DEFAULT_OWNER = "demo-user"
BOOT_SECONDS = (4.0, 12.0)  # simulated seconds a training spends in `starting`
RATE_LIMIT_PER_MINUTE = 3000
MAX_FILE_BYTES = 100 * 1024 * 1024

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DESTINATION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)/([a-z0-9][a-z0-9._-]*)$")
_FILE_PATH = re.compile(r"^/v1/files/([a-z2-7]{26})(?:/download)?$")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

DESTINATION_MISSING = {"detail": "The specified training destination does not exist", "status": 404}


class Simulator:
    """A Replicate look-alike on loopback, for demos and tests. See the module docstring."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        seed: int = 0,
        scenario: str | None = None,
        token: str = DEFAULT_TOKEN,
        webhook_secret: str | None = None,
        owner: str = DEFAULT_OWNER,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not speed > 0:
            raise SimulatorError(f"speed must be a positive number (got {speed!r}); 1 is real time, 10 ten times faster.")
        if scenario is not None and scenario not in SCENARIOS:
            raise UnknownScenarioError(
                f"unknown scenario {scenario!r}. Choose one of: {', '.join(sorted(SCENARIOS))}."
            )
        self.speed = float(speed)
        self.seed = seed
        self.boot_seconds = BOOT_SECONDS  # simulated seconds in `starting`; scenarios may set real cold boots
        self.scenario = scenario
        self.token = token
        self.owner = owner
        self.clock: Callable[[], float] = clock or time.time
        self.webhook_secret = webhook_secret or new_webhook_secret(random.Random(f"{seed}:webhook-secret"))
        self._fault_rng = random.Random(f"{seed}:faults")
        self._faults = Faults(rng=self._fault_rng)
        self.base_url = ""
        self.requests = 0  # HTTP requests received, faulted ones included
        self.rate_limit = RATE_LIMIT_PER_MINUTE
        self.max_file_bytes = MAX_FILE_BYTES
        self._ids = random.Random(f"{seed}:ids")
        self._seq = 0
        self._trainings: dict[str, TrainingRecord] = {}
        self._files: dict[str, FileRecord] = {}
        self._models: dict[str, ModelRecord] = {}
        self._window = (0.0, 0)  # rate-limit window start (loop time) and requests in it
        self._runner: web.AppRunner | None = None
        self.holds = Holds()
        self._webhooks = WebhookSender(
            secret=self.webhook_secret,
            faults=lambda: self._faults,
            rng=random.Random(f"{seed}:messages"),
            clock=lambda: self.clock(),
            speed=lambda: self.speed,
            snapshot=self._webhook_body,
        )
        from .predictions import PredictionDesk

        self.predictions = PredictionDesk(self)  # POST /v1/predictions and friends
        for trainer in TRAINERS.values():
            owner_name, model_name = trainer.name.split("/")
            self._models[trainer.name] = ModelRecord(
                owner=owner_name,
                name=model_name,
                visibility="public",
                hardware="gpu-h100",
                description=trainer.description,
                run_count=trainer.run_count,
                is_official=True,
                versions=[
                    VersionRecord(trainer.version, trainer.version_created_at, trainer.cog_version, trainer.openapi_schema())
                ],
            )

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback; returns the base URL (`http://127.0.0.1:PORT`)."""
        if host == "localhost":
            host = "127.0.0.1"
        if host != "127.0.0.1":
            raise SimulatorError(f"the simulator only listens on loopback, not {host!r}; use 127.0.0.1.")
        if self._runner is not None:
            return self.base_url
        app = build_app(self)
        app.add_routes(prediction_routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(host, port, error.strerror or str(error)) from None
            raise SimulatorError(f"cannot listen on {host}:{port}: {error}. Try another --port.") from None
        self._runner = runner
        bound = runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}"
        await self._webhooks.start()
        await self.predictions.start()
        if self.scenario:
            await self.run_scenario(self.scenario)
        return self.base_url

    async def stop(self) -> None:
        """Cancel every running script and webhook delivery, then close the server."""
        self.holds.release_all()
        tasks = [t.task for t in self._trainings.values() if t.task is not None and not t.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._webhooks.stop()
        await self.predictions.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- public helpers for seeding and inspection ---------------------------------------------

    @property
    def faults(self) -> Faults:
        """Fault injection settings; change them at any time (see faults.Faults)."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        faults.rng = self._fault_rng  # a replacement still draws from the seeded generator
        self._faults = faults

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook send attempt so far (and drops, holds, duplicates), oldest first."""
        return self._webhooks.deliveries

    @property
    def webhook_retry_delays(self) -> list[float]:
        return list(self._webhooks.retry_delays)

    @webhook_retry_delays.setter
    def webhook_retry_delays(self, delays: list[float]) -> None:
        self._webhooks.retry_delays = tuple(delays)

    def hold(self, training_id: str | None = None, *, at: str = "end") -> Hold:
        """Stop a training (or, with no id, every training) just before `at` until released:
        "start" (still starting), "end" (before it finishes), or text of a log line (before the
        first line containing it). `await hold.reached()`, then `hold.step()` / `hold.release()`.
        See holds.py."""
        if training_id is not None and training_id not in self._trainings:
            raise UnknownTrainingError(training_id)
        return self.holds.add(at, training_id)

    def add_model(
        self,
        owner_name: str,
        *,
        visibility: str = "private",
        hardware: str = "gpu-t4",
        description: str | None = None,
    ) -> None:
        """Make a destination model exist (idempotent)."""
        if owner_name in self._models:
            return
        match = _DESTINATION.match(owner_name)
        if not match:
            raise SimulatorError(f"model name {owner_name!r} is not of the form owner/name (lowercase name).")
        self._models[owner_name] = ModelRecord(
            owner=match.group(1), name=match.group(2), visibility=visibility, hardware=hardware,
            description=description,
        )

    def model(self, owner_name: str) -> dict[str, Any]:
        record = self._models.get(owner_name)
        if record is None:
            raise SimulatorError(f"the simulator has no model {owner_name!r}; create it with add_model.")
        return record.to_json()

    def training(self, training_id: str) -> dict[str, Any]:
        """The training exactly as GET /v1/trainings/{id} would answer."""
        record = self._trainings.get(training_id)
        if record is None:
            raise UnknownTrainingError(training_id)
        return record.to_json(self.base_url)

    def destination_of(self, training_id: str) -> str | None:
        """The destination a training was created with. Replicate's training objects do not carry
        it; whoever starts a training knows it, and the demo needs to tell its store."""
        record = self._trainings.get(training_id)
        return record.destination if record is not None else None

    def trainings(self) -> list[dict[str, Any]]:
        """Every training, newest first, as GET would answer each."""
        return [r.to_json(self.base_url) for r in self._sorted()]

    async def create_training(
        self,
        trainer: str,
        destination: str,
        input: dict[str, Any],
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
        *,
        script: str | None = None,
        queued_behind: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a training as POST .../trainings would (201 body); `trainer` is owner/name[:version].

        `script` picks a simulator script by name (see scripts.SCRIPTS, e.g. "flux-fail").
        `queued_behind`: training ids this one waits for, in `starting`, before it boots.
        Raises RequestRejectedError with the HTTP status and body the endpoint would answer.
        """
        waits = [self._trainings[i] for i in queued_behind or [] if i in self._trainings]
        name, _, version = trainer.partition(":")
        known = TRAINERS.get(name)
        body: dict[str, Any] = {"destination": destination, "input": input}
        if webhook is not None:
            body["webhook"] = webhook
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = webhook_events_filter
        owner, _, model = name.partition("/")
        try:
            record = self.create_record(
                owner, model, version or (known.version if known else ""), body, script, wait_for=waits
            )
        except Problem as rejected:
            raise RequestRejectedError(rejected.status, rejected.body) from None
        return record.to_json(self.base_url, create_response=True)

    def cancel_training(self, training_id: str) -> dict[str, Any]:
        record = self._trainings.get(training_id)
        if record is None:
            raise UnknownTrainingError(training_id)
        self._cancel(record)
        return record.to_json(self.base_url)

    def add_finished_training(
        self,
        trainer: str,
        destination: str,
        input: dict[str, Any],
        *,
        script: str | None = None,
        ended_ago: float = 3600.0,
    ) -> dict[str, Any]:
        """Add a training that already ended `ended_ago` seconds ago, with its whole log (no webhooks)."""
        name = trainer.partition(":")[0]
        known = TRAINERS.get(name)
        owner, _, model = name.partition("/")
        try:
            record = self.create_record(
                owner, model, known.version if known else "", {"destination": destination, "input": input},
                script, start=False,
            )
        except Problem as rejected:
            raise RequestRejectedError(rejected.status, rejected.body) from None
        factory = SCRIPTS[record.script].factory
        boot = record.rng.uniform(*self.boot_seconds)
        # Measure the run on a copy of the generator state, then replay it with real timestamps.
        probe = random.Random()
        probe.setstate(record.rng.getstate())
        _, duration, _ = run_to_end(factory(self._context(record, probe, 0.0, 1.0)))
        end = self.clock() - ended_ago
        record.started_at = end - duration
        record.created_at = record.started_at - boot
        lines, _, outcome = run_to_end(factory(self._context(record, record.rng, record.started_at, 1.0)))
        record.append(lines)
        record.status = "processing"
        if isinstance(outcome, Fail):
            self._finish(record, "failed", error=outcome.error, at=end)
        else:
            self._succeed(record, at=end)
        return record.to_json(self.base_url)

    async def run_scenario(self, name: str, *, webhook: str | None = None) -> list[dict[str, Any]]:
        """Seed a named situation (see scenarios.SCENARIOS); returns the trainings it created."""
        scenario = SCENARIOS.get(name)
        if scenario is None:
            raise UnknownScenarioError(
                f"unknown scenario {name!r}. Choose one of: {', '.join(sorted(SCENARIOS))}."
            )
        return await scenario.run(self, webhook)

    # ---- trainings -----------------------------------------------------------------------------

    def create_record(
        self,
        owner: str,
        name: str,
        version_id: str,
        body: Any,
        script: str | None,
        *,
        start: bool = True,
        wait_for: list[TrainingRecord] | None = None,
    ) -> TrainingRecord:
        """Validate a create request like the endpoint does and, if `start`, set it running.

        Raises Problem with the status and body the endpoint answers.
        """
        trainer = self._trainer_for(owner, name, version_id)
        destination, given, webhook, events = self._check_training_body(body)
        if destination not in self._models:
            raise Problem(404, dict(DESTINATION_MISSING))
        invalid = validate_input(trainer.training_input, given)
        if invalid:
            raise problem(
                422,
                "Input validation failed",
                "".join(f"- {item.field}: {item.description}\n" for item in invalid),
                invalid_fields=[item.as_json() for item in invalid],
            )
        chosen = script or trainer.script
        known = SCRIPTS.get(chosen)
        if known is None or known.trainer != trainer.name:
            fitting = sorted(n for n, s in SCRIPTS.items() if s.trainer == trainer.name)
            raise problem(
                400, "Unknown simulator script",
                f"The simulator has no script {chosen!r} for {trainer.name}; use one of: {', '.join(fitting)}.",
            )
        self._seq += 1
        record = TrainingRecord(
            id=new_id(self._ids),
            seq=self._seq,
            trainer=trainer,
            destination=destination,
            input=given,
            script=chosen,
            rng=random.Random(f"{self.seed}:training:{self._seq}"),
            created_at=self.clock(),
            webhook=webhook,
            events=events,
            wait_for=list(wait_for or []),
        )
        self._trainings[record.id] = record
        if start:
            record.stuck = self.faults.take_stuck()
            self._webhooks.notify(record, "start")
            record.task = asyncio.create_task(self._run(record), name=f"training-{record.id}")
        return record

    def _trainer_for(self, owner: str, name: str, version_id: str) -> Trainer:
        full = f"{owner}/{name}"
        trainer = TRAINERS.get(full)
        if trainer is None:
            if full in self._models:
                raise problem(404, "Not found", f"The model {full} has no version {version_id} that can be trained.")
            raise problem(404, "Not found", f"The model {full} does not exist.")
        if version_id != trainer.version:
            raise problem(404, "Not found", f"The model {full} has no version {version_id}.")
        return trainer

    def _check_training_body(self, body: Any) -> tuple[str, dict[str, Any], str | None, frozenset[str]]:
        if not isinstance(body, dict):
            raise problem(422, "Input validation failed", "- (root): Invalid type. Expected: object\n",
                          invalid_fields=[{"type": "type", "field": "(root)", "description": "Invalid type. Expected: object"}])
        invalid = Invalid()
        destination = body.get("destination")
        if destination is None:
            invalid.bad("required", "(root)", "destination is required")
        elif not isinstance(destination, str) or not _DESTINATION.match(destination):
            invalid.bad("format", "destination", "Must be a model name of the form owner/name")
        given, webhook, events = invalid.delivery(body)
        invalid.answer()
        return destination, given, webhook, events

    def _context(self, record: TrainingRecord, rng: random.Random, start: float, scale: float) -> ScriptContext:
        images, rows = self._uploaded_inputs(record)
        return ScriptContext(
            trainer=record.trainer, input=record.input, rng=rng, start_time=start, time_scale=scale,
            images=images, text_rows=rows,
        )

    def _uploaded_inputs(self, record: TrainingRecord) -> tuple[list[str] | None, int | None]:
        """Image names in an uploaded zip / rows in an uploaded JSONL, when the input points at one."""
        for key in ("input_images", "train_data"):
            value = record.input.get(key)
            if not isinstance(value, str):
                continue
            match = _FILE_PATH.match(urlsplit(value).path)
            stored = self._files.get(match.group(1)) if match else None
            if stored is None:
                continue
            if key == "train_data":
                rows = sum(1 for line in stored.data.splitlines() if line.strip())
                return None, rows or None
            try:
                with zipfile.ZipFile(BytesIO(stored.data)) as archive:
                    names = [
                        n.rsplit("/", 1)[-1] for n in archive.namelist()
                        if n.lower().endswith(_IMAGE_SUFFIXES) and not n.startswith("__MACOSX")
                    ]
            except (zipfile.BadZipFile, OSError):
                return None, None
            return (names or None), None
        return None, None

    async def _sleep_simulated(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    async def _run(self, record: TrainingRecord) -> None:
        boot = record.rng.uniform(*self.boot_seconds)  # drawn first: the same whatever happens later
        try:
            for earlier in record.wait_for:
                await earlier.done.wait()
            await self._sleep_simulated(boot)
            await self.holds.gate(record.id, starting=True)
            if record.stuck:
                await asyncio.Event().wait()  # until canceled
            record.status = "processing"
            record.started_at = self.clock()
            await self._play(record)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a simulator bug must not leave the training hanging
            log.exception("simulator script %s crashed", record.script)
            if not record.terminal:
                self._finish(record, "failed", error=f"simulator internal error: {error}")

    async def _play(self, record: TrainingRecord) -> None:
        assert record.started_at is not None
        ctx = self._context(record, record.rng, record.started_at, 1 / self.speed)
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        behind = 0
        for event in SCRIPTS[record.script].factory(ctx):
            deadline += event.delay / self.speed
            wait = deadline - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                behind += 1
                if behind % 50 == 0:
                    await asyncio.sleep(0)  # running late: still let the server answer
            if record.terminal:
                return
            lines = tuple(event.lines) if isinstance(event, (Emit, Fail)) else ()
            if await self.holds.gate(record.id, lines=lines, final=isinstance(event, (Succeed, Fail))):
                deadline = loop.time()  # held: go on from now, not in a burst to catch up
                if record.terminal:
                    return
            if isinstance(event, Emit):
                if record.append(list(event.lines)):
                    self._webhooks.notify(record, "logs")
            elif isinstance(event, Fail):
                if record.append(list(event.lines)):
                    self._webhooks.notify(record, "logs")
                self._finish(record, "failed", error=event.error)
                return
            elif isinstance(event, Succeed):
                self._succeed(record)
                return

    def _succeed(self, record: TrainingRecord, *, at: float | None = None) -> None:
        moment = self.clock() if at is None else at
        model = self._models.get(record.destination)
        version_id = new_version_id(record.rng)
        if model is not None:
            model.versions.insert(
                0,
                VersionRecord(
                    version_id, iso(moment, 6), record.trainer.cog_version,
                    cog_openapi_schema(record.trainer.predict_input, None),
                ),
            )
        blob = "".join(record.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(32))
        record.output = {
            "version": f"{record.destination}:{version_id}",
            "weights": f"https://replicate.delivery/xezq/{blob}/trained_model.tar",
        }
        if at is None:
            self._webhooks.notify(record, "output")
        self._finish(record, "succeeded", at=at)

    def _finish(self, record: TrainingRecord, status: str, *, error: str | None = None, at: float | None = None) -> None:
        record.status = status
        record.error = error
        record.completed_at = self.clock() if at is None else at
        record.done.set()
        if at is None:
            self._webhooks.notify(record, "completed")

    def _cancel(self, record: TrainingRecord) -> None:
        if record.terminal:
            return
        if record.task is not None and not record.task.done():
            record.task.cancel()
        self._finish(record, "canceled")

    def _sorted(self) -> list[TrainingRecord]:
        return sorted(self._trainings.values(), key=lambda r: r.sort_key, reverse=True)

    def _webhook_body(self, record: TrainingRecord) -> str:
        return json.dumps(record.to_json(self.base_url), ensure_ascii=False, separators=(",", ":"))

    # ---- used by the HTTP routes ---------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        return scheme.lower() in ("bearer", "token") and value.strip() == self.token

    def count_request(self) -> tuple[int, int]:
        """Count one request in the per-minute window; returns (remaining, seconds to reset)."""
        now = asyncio.get_running_loop().time()
        start, used = self._window
        if now - start >= 60:
            start, used = now, 0
        used += 1
        self._window = (start, used)
        return self.rate_limit - used, max(1, int(60 - (now - start) + 0.999))

    def record_or_404(self, training_id: str) -> TrainingRecord:
        record = self._trainings.get(training_id)
        if record is None:
            raise problem(404, "Not found", "The requested training does not exist.")
        return record

    def page(self, cursor: str | None) -> tuple[list[TrainingRecord], str | None, str | None]:
        """One page of trainings, newest first, and the next/previous cursors."""
        return paging.page(self._sorted(), cursor)

    def create_model(self, body: Any) -> ModelRecord:
        if not isinstance(body, dict):
            raise problem(422, "Input validation failed", "- (root): Invalid type. Expected: object\n")
        missing = [k for k in ("owner", "name", "visibility", "hardware") if not isinstance(body.get(k), str)]
        if missing:
            raise problem(
                422, "Input validation failed", "".join(f"- (root): {k} is required\n" for k in missing),
                invalid_fields=[{"type": "required", "field": "(root)", "description": f"{k} is required"} for k in missing],
            )
        if body["visibility"] not in ("public", "private"):
            raise problem(422, "Input validation failed", "- visibility: must be one of the following: \"public\", \"private\"\n")
        if not _MODEL_NAME.match(body["name"]):
            raise problem(422, "Input validation failed",
                          "- name: Model names can contain lowercase letters, numbers, dashes, underscores and periods\n")
        if body["owner"] != self.owner:
            raise problem(403, "Forbidden", f"You can only create models in your own account ({self.owner}).")
        full = f"{body['owner']}/{body['name']}"
        if full in self._models:
            raise problem(409, "Conflict", f"A model with the name {full} already exists.")
        self.add_model(full, visibility=body["visibility"], hardware=body["hardware"],
                       description=body.get("description") if isinstance(body.get("description"), str) else None)
        record = self._models[full]
        for key in ("github_url", "paper_url", "license_url", "cover_image_url"):
            if isinstance(body.get(key), str):
                setattr(record, key, body[key])
        return record

    def model_or_404(self, owner: str, name: str) -> ModelRecord:
        record = self._models.get(f"{owner}/{name}")
        if record is None:
            raise problem(404, "Not found", f"The model {owner}/{name} does not exist.")
        return record

    def store_file(self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]) -> FileRecord:
        record = FileRecord(
            id=new_id(self._ids), name=name, content_type=content_type, data=data,
            sha256=hashlib.sha256(data).hexdigest(), md5=hashlib.md5(data).hexdigest(),
            metadata=metadata, created_at=self.clock(),
        )
        self._files[record.id] = record
        return record

    def file_or_404(self, file_id: str) -> FileRecord:
        record = self._files.get(file_id)
        if record is None:
            raise problem(404, "Not found", "The requested file does not exist.")
        return record
