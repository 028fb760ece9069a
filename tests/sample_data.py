"""A fixed set of trainings in every state, for snapshot tests, the benches and offline previews.

Everything is derived from a seed and a reference time, and every update goes through the real
Updater, so the stored records, logs and stage timestamps are exactly what live updates produce.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from core.models import format_time
from synthlog import flux_lines
from core.updates import Updater

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)
FLUX = "ostris/flux-dev-lora-trainer"
SDXL = "stability-ai/sdxl"
LLAMA = "meta/llama-2-7b"
VERSION = "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497"

FAILED_LOG_TAIL = """Traceback (most recent call last):
  File "/src/train.py", line 412, in train
    trainer.fit(model, data)
  File "/src/trainer.py", line 88, in fit
    loss = self.step(batch)
  File "/src/trainer.py", line 131, in step
    outputs = self.model(**batch)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 39.39 GiB total capacity)
"""


class SampleClock:
    """A settable clock: the Updater stamps stages with it while the samples are built."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _body(tid: str, trainer: str, status: str, logs: str, created: datetime, *, started: datetime | None,
          destination: str, steps: int, completed: datetime | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": tid, "model": trainer, "version": VERSION, "status": status, "logs": logs,
        "input": {"input_images": "https://example.com/faces.zip", "steps": steps, "lora_rank": 16,
                  "trigger_word": "TOK"},
        "destination": destination, "output": None, "error": None, "metrics": {},
        "created_at": format_time(created), "started_at": format_time(started),
        "completed_at": format_time(completed), "source": "api",
        "urls": {"web": f"https://replicate.com/p/{tid}"},
    }
    body.update(extra)
    return body


def _replay(updater: Updater, clock: SampleClock, tid: str, trainer: str, destination: str, *, steps: int,
            created: datetime, until: float | None, seed: int, status_at_end: str = "processing",
            end_extra: dict[str, Any] | None = None, tail: str = "", every: float = 15.0) -> None:
    """Feed the training's log to the updater as polls every `every` seconds would, up to `until`."""
    started = created + timedelta(seconds=20)
    clock.now = created
    updater.apply(_body(tid, trainer, "starting", "", created, started=None, destination=destination,
                        steps=steps), source="create")
    text = ""
    poll = 0.0
    lines: Iterator[Any] = iter(flux_lines(steps, seed=seed, seconds_per_step=1.1, images=8))
    finished_at = started
    for line in lines:
        if until is not None and line.at > until:
            break
        while line.at > poll + every:
            poll += every
            clock.now = started + timedelta(seconds=poll)
            updater.apply(_body(tid, trainer, "processing", text, created, started=started,
                                destination=destination, steps=steps), source="poll")
        text += line.text + "\n"
        finished_at = started + timedelta(seconds=line.at)
    text += tail
    clock.now = finished_at + timedelta(seconds=2)
    completed = clock.now if status_at_end != "processing" else None
    updater.apply(_body(tid, trainer, status_at_end, text, created, started=started, destination=destination,
                        steps=steps, completed=completed, **(end_extra or {})), source="poll")


def populate(updater: Updater, clock: SampleClock, *, now: datetime = T0) -> list[str]:
    """Six trainings: succeeded, two running, failed, canceled, queued. Returns their ids, newest first."""
    succeeded = "pz3ahq1kxhrm40ck8kbs7bfxw4"
    _replay(updater, clock, succeeded, FLUX, "alice/flux-portraits", steps=400, seed=1,
            created=now - timedelta(hours=3), until=None, status_at_end="succeeded",
            end_extra={"output": {"version": f"alice/flux-portraits:{'b3' * 32}",
                                  "weights": "https://replicate.delivery/xezq/weights/trained_model.tar"},
                       "metrics": {"predict_time": 612.4}})
    failed = "q7bnd2ymr5rm20ck8kdr1c0x9g"
    _replay(updater, clock, failed, LLAMA, "carol/llama-support-bot", steps=300, seed=3,
            created=now - timedelta(hours=2), until=140.0, status_at_end="failed", tail=FAILED_LOG_TAIL,
            end_extra={"error": "CUDA out of memory. Tried to allocate 2.00 GiB"})
    canceled = "r1vqf0e7w9rm60ck8kfsbv3qmc"
    _replay(updater, clock, canceled, SDXL, "erin/sdxl-watercolor", steps=500, seed=5,
            created=now - timedelta(minutes=90), until=200.0, status_at_end="canceled")
    running = "s9kt3vhcgnrm80ck8kg9n2ajzw"
    _replay(updater, clock, running, FLUX, "alice/flux-style-ink", steps=1000, seed=2,
            created=now - timedelta(minutes=16), until=850.0)
    early = "tc2m6p0fx5rm80ck8khbx8wvh8"
    _replay(updater, clock, early, SDXL, "bob/sdxl-cats", steps=800, seed=4,
            created=now - timedelta(minutes=2), until=75.0)
    queued = "v4hw8nqz3srm80ck8kj2tqpyd0"
    clock.now = now - timedelta(seconds=20)
    updater.apply(_body(queued, FLUX, "starting", "", clock.now, started=None, destination="dave/flux-logo",
                        steps=1000), source="create")
    clock.now = now
    return [queued, early, running, canceled, failed, succeeded]


def bulk_records(count: int, *, now: datetime = T0, seed: int = 0) -> Iterator[dict[str, Any]]:
    """`count` plain stored records (no logs) for scale tests: mostly finished, some running."""
    import random

    rng = random.Random(seed)
    statuses = ["succeeded"] * 14 + ["failed"] * 3 + ["canceled"] * 2 + ["processing"]
    for index in range(count):
        created = now - timedelta(minutes=index * 7 + rng.randint(0, 5))
        status = statuses[rng.randrange(len(statuses))]
        done = status != "processing"
        percent = 100.0 if status == "succeeded" else round(rng.uniform(5, 95), 1)
        yield {
            "id": f"bulk{index:06d}{'x' * 16}"[:26], "trainer": rng.choice([FLUX, SDXL, LLAMA]),
            "trainer_version": VERSION, "destination": f"user{index % 97}/model-{index}",
            "status": status, "stage": status if done and status != "canceled" else "training",
            "overall_percent": percent, "step": None, "total_steps": None, "train_percent": None,
            "rate": None, "loss": None, "lr": None, "eta_seconds": None if done else 600.0, "eta_at": None,
            "created_at": format_time(created), "started_at": format_time(created + timedelta(seconds=30)),
            "completed_at": format_time(created + timedelta(minutes=25)) if done else None,
            "updated_at": format_time(created + timedelta(minutes=25)), "output_version": None,
            "output_weights": None, "error": None, "input": {"steps": 1000}, "metrics": {}, "source": "api",
            "web_url": None, "stages": [["queued", format_time(created)]],
        }


def frozen(now: datetime = T0) -> Callable[[], datetime]:
    return lambda: now
