"""Predictions on the simulated Replicate: running a version (a trained LoRA, or any model with an
`Input` schema) the way `POST /v1/predictions` does.

What a run prints follows replicate/cog-flux@15145836010196f4f6b1d1df8244c46041e4bb0d
(bfl_predictor.py: `print(f"Using seed: {seed}")`, a random 16-bit seed when none is given) and
flux/sampling.py at 02f32be6710a7d010e064e8f9d6bf1cee206cb3f (the denoising loop is
`tqdm(zip(timesteps[:-1], timesteps[1:]))`: a zip has no length, so the bar has no total and
prints `28it [00:03,  8.05it/s]`). Image outputs are PNGs the simulator serves itself at
`/delivery/{prediction_id}/out-{i}.png`, drawn from (version, prompt, seed) by `images.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from . import paging
from .errors import problem
from .formats import iso, new_id
from .records import DEFAULT_EVENTS, Listed, TrainingRecord
from .requests import Invalid
from .schemas import validate_input
from .webhooks import Delivery, WebhookSender

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

BOOT_SECONDS = (1.0, 3.0)  # simulated seconds in `starting` (the model is warm)
STEP_SECONDS = 0.12  # one denoising step on an H100, FLUX.1-dev at 1024x1024
TOKEN_SECONDS = 0.03
_VERSION_REF = re.compile(r"^(?:([A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9._-]*):)?([0-9a-f]{64})$")
_REQUEST_KEYS = ("version", "input", "stream", "webhook", "webhook_events_filter")
_WORDS = ("A", " photo", " of", " a", " small", " dog", " on", " a", " red", " sofa", ",", " in",
          " soft", " morning", " light", ".")


@dataclass
class PredictionRecord(Listed):
    id: str
    seq: int
    model: str  # owner/name of the version's model
    version: str  # the 64-hex version id
    input: dict[str, Any]
    kind: str  # "image" or "text": what the version's Output schema says
    rng: random.Random
    created_at: float
    webhook: str | None = None
    events: frozenset[str] = DEFAULT_EVENTS
    status: str = "starting"
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    output: list[str] | None = None
    lines: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # served at /delivery/{id}/{name}
    fail_with: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def logs(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)

    def to_json(self, base_url: str, *, with_logs: bool = True) -> dict[str, Any]:
        """As GET /v1/predictions/{id} answers (list items drop `logs`); `output` and `error` are
        always present (null until known), as the spec requires."""
        data: dict[str, Any] = {"id": self.id, "model": self.model, "version": self.version, "input": self.input}
        if with_logs:
            data["logs"] = self.logs
        data.update({
            "output": list(self.output) if self.output is not None else None,
            "data_removed": False,
            "error": self.error,
            "status": self.status,
            "created_at": iso(self.created_at, 6),
            "source": "api",
            "metrics": self.metrics(),
            "urls": {
                "get": f"{base_url}/v1/predictions/{self.id}",
                "cancel": f"{base_url}/v1/predictions/{self.id}/cancel",
                "web": f"https://replicate.com/p/{self.id}",
            },
        })
        if self.started_at is not None:
            data["started_at"] = iso(self.started_at, 9)
        if self.completed_at is not None:
            data["completed_at"] = iso(self.completed_at, 6)
        return data


class PredictionDesk:
    """The simulator's predictions: create, run, cancel, list, serve their files, send webhooks."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._records: dict[str, PredictionRecord] = {}
        self._seq = 0
        self._ids = random.Random(f"{sim.seed}:prediction-ids")
        self.fail_next = 0  # the next N predictions fail (after their seed line)
        self.fail_error = "CUDA out of memory. Tried to allocate 2.00 GiB"
        self._webhooks = WebhookSender(
            secret=sim.webhook_secret,
            faults=lambda: sim.faults,
            rng=random.Random(f"{sim.seed}:prediction-messages"),
            clock=lambda: sim.clock(),
            speed=lambda: sim.speed,
            snapshot=cast(Any, self._webhook_body),
        )

    # ---- lifecycle (called by the Simulator) -----------------------------------------------------

    async def start(self) -> None:
        await self._webhooks.start()

    async def stop(self) -> None:
        tasks = [r.task for r in self._records.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._webhooks.stop()

    @property
    def deliveries(self) -> list[Delivery]:
        return self._webhooks.deliveries

    # ---- for tests and seeding -------------------------------------------------------------------

    def get(self, prediction_id: str) -> dict[str, Any]:
        return self.or_404(prediction_id).to_json(self.sim.base_url)

    def all(self) -> list[dict[str, Any]]:
        return [r.to_json(self.sim.base_url) for r in self._sorted()]

    def remove_files(self, prediction_id: str) -> None:
        """Make the outputs vanish (as Replicate does after an hour for API predictions)."""
        self.or_404(prediction_id).files.clear()

    # ---- the endpoints' work ---------------------------------------------------------------------

    def create(self, body: Any) -> PredictionRecord:
        """Validate a POST /v1/predictions body and start the prediction; raises Problem."""
        model, version_id, given, webhook, events = self._check_body(body)
        schema = self._version_schema(model, version_id)
        if schema is None:
            raise problem(404, "Not found", f"The version {version_id} does not exist, or you do not have access to it.")
        model_name, openapi = schema
        input_schema = openapi.get("components", {}).get("schemas", {}).get("Input")
        if not isinstance(input_schema, dict):
            raise problem(422, "Input validation failed", f"- version: {version_id} cannot be run (it has no Input schema)\n")
        invalid = validate_input(input_schema, given)
        if invalid:
            raise problem(
                422, "Input validation failed", "".join(f"- {item.field}: {item.description}\n" for item in invalid),
                invalid_fields=[item.as_json() for item in invalid],
            )
        output = openapi["components"]["schemas"].get("Output") or {}
        kind = "image" if (output.get("items") or {}).get("format") == "uri" else "text"
        self._seq += 1
        record = PredictionRecord(
            id=new_id(self._ids), seq=self._seq, model=model_name, version=version_id, input=given, kind=kind,
            rng=random.Random(f"{self.sim.seed}:prediction:{self._seq}"), created_at=self.sim.clock(),
            webhook=webhook, events=events,
        )
        if self.fail_next > 0:
            self.fail_next -= 1
            record.fail_with = self.fail_error
        self._records[record.id] = record
        self._notify(record, "start")
        record.task = asyncio.create_task(self._run(record), name=f"prediction-{record.id}")
        return record

    def cancel(self, record: PredictionRecord) -> None:
        if record.terminal:
            return
        if record.task is not None and not record.task.done():
            record.task.cancel()
        self._finish(record, "canceled")

    def or_404(self, prediction_id: str) -> PredictionRecord:
        record = self._records.get(prediction_id)
        if record is None:
            raise problem(404, "Not found", "The requested prediction does not exist.")
        return record

    def page(self, cursor: str | None) -> tuple[list[PredictionRecord], str | None, str | None]:
        return paging.page(self._sorted(), cursor)

    # ---- running ---------------------------------------------------------------------------------

    async def _run(self, record: PredictionRecord) -> None:
        speed = lambda: self.sim.speed  # noqa: E731 - read each time: tests change it mid-run
        try:
            await asyncio.sleep(record.rng.uniform(*BOOT_SECONDS) / speed())
            record.status = "processing"
            record.started_at = self.sim.clock()
            if record.kind == "image":
                await self._paint(record, speed)
            else:
                await self._write(record, speed)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a simulator bug must not leave the prediction hanging
            log.exception("simulated prediction %s crashed", record.id)
            if not record.terminal:
                self._finish(record, "failed", error=f"simulator internal error: {error}")

    async def _paint(self, record: PredictionRecord, speed: Any) -> None:
        from .images import picture

        seed = record.input.get("seed")
        if not seed:  # cog-flux: `if not seed: seed = int.from_bytes(os.urandom(2), "big")`
            seed = record.rng.randrange(1 << 16)
        self._log(record, f"Using seed: {seed}")
        if record.fail_with is not None:
            await asyncio.sleep(0.5 / speed())
            self._log(record, "Traceback (most recent call last):")
            self._log(record, f"torch.OutOfMemoryError: {record.fail_with}")
            self._finish(record, "failed", error=record.fail_with)
            return
        steps = int(record.input.get("num_inference_steps") or 28)
        outputs = int(record.input.get("num_outputs") or 1)
        rate = 1 / STEP_SECONDS * record.rng.uniform(0.9, 1.1)
        for _ in range(outputs):
            for step in range(0, steps + 1, max(1, steps // 7)):
                await asyncio.sleep((max(1, steps // 7) / rate) / speed() if step else 0)
                self._log(record, f"{step}it [00:{int(step / rate):02d}, {rate:5.2f}it/s]")
        prompt = str(record.input.get("prompt") or "")
        record.output = []
        for index in range(outputs):
            name = f"out-{index}.png"
            record.files[name] = picture(record.version, prompt, int(seed), index)
            record.output.append(f"{self.sim.base_url}/delivery/{record.id}/{name}")
        self._notify(record, "output")
        self._finish(record, "succeeded")

    async def _write(self, record: PredictionRecord, speed: Any) -> None:
        if record.fail_with is not None:
            self._finish(record, "failed", error=record.fail_with)
            return
        record.output = []
        for word in _WORDS[: int(record.input.get("max_new_tokens") or 128)]:
            await asyncio.sleep(TOKEN_SECONDS / speed())
            record.output.append(word)
            self._notify(record, "output")
        self._finish(record, "succeeded")

    def _log(self, record: PredictionRecord, line: str) -> None:
        record.lines.append(line)
        self._notify(record, "logs")

    def _finish(self, record: PredictionRecord, status: str, *, error: str | None = None) -> None:
        record.status = status
        record.error = error
        record.completed_at = self.sim.clock()
        record.done.set()
        self._notify(record, "completed")

    def _notify(self, record: PredictionRecord, event: str) -> None:
        # WebhookSender reads only what both records have: id, webhook, events, terminal.
        self._webhooks.notify(cast(TrainingRecord, record), event)

    def _webhook_body(self, record: PredictionRecord) -> str:
        return json.dumps(record.to_json(self.sim.base_url), ensure_ascii=False, separators=(",", ":"))

    # ---- checks ----------------------------------------------------------------------------------

    def _check_body(self, body: Any) -> tuple[str | None, str, dict[str, Any], str | None, frozenset[str]]:
        """schemas_version_prediction_request: version and input required, no other keys."""
        if not isinstance(body, dict):
            raise problem(422, "Input validation failed", "- (root): Invalid type. Expected: object\n")
        invalid = Invalid()
        for key in body:
            if key not in _REQUEST_KEYS:
                invalid.bad("additional_property_not_allowed", "(root)", f"Additional property {key} is not allowed")
        version = body.get("version")
        match = _VERSION_REF.match(version) if isinstance(version, str) else None
        if version is None:
            invalid.bad("required", "(root)", "version is required")
        elif match is None:
            invalid.bad("format", "version", "Must be a 64-character version id, or owner/name:version_id")
        given, webhook, events = invalid.delivery(body)
        if "stream" in body and not isinstance(body["stream"], bool):
            invalid.bad("type", "stream", "Invalid type. Expected: boolean")
        invalid.answer()
        assert match is not None
        return match.group(1), match.group(2), given, webhook, events

    def _version_schema(self, model: str | None, version_id: str) -> tuple[str, dict[str, Any]] | None:
        for name, record in self.sim._models.items():
            if model is not None and name != model:
                continue
            for version in record.versions:
                if version.id == version_id:
                    return name, version.openapi_schema
        return None

    def _sorted(self) -> list[PredictionRecord]:
        return sorted(self._records.values(), key=lambda r: r.sort_key, reverse=True)
