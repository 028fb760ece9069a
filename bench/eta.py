"""How right is the ETA? The whole job's remaining time, measured against when the job really ended.

Run: uv run python bench/eta.py [--runs 10] [--history 6] [--every 5]

Each run is a simulator trainer script (simulator/scripts.py: what the real trainers print, with
their timing: varying step times, W&B sampling pauses, checkpoint saves, the archive and the
platform's upload after the last line). Its log grows as the simulated Replicate would return it
(simulator/records.py), polled every 5 simulated seconds by one ProgressTracker, as replitrack
follows a training. Before the measured runs, `--history` earlier runs of the same trainer (other
seeds and step counts) are followed the same way and stored as history, so the finishing allowance
and per-step time are learned, as they are from the store.

At 10/25/50/75/90 % of each run's real duration the bench records the absolute error of the ETA,
as a percent of the time really left, and the same for the baseline: the trainer's own bar
remaining time (`[elapsed<remaining]`), read from the same log at the same moment; where the bar
says nothing yet (before training) the baseline cannot answer and counts as 100 % wrong.
It prints the median over runs per trainer and mark. Goal: ≤ 10 % at every mark, below baseline.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.logparse import Stage  # noqa: E402
from core.models import Status, format_time  # noqa: E402
from core.progress import ProgressTracker, RunRecord, epochs_from_input, run_record, steps_from_input  # noqa: E402
from simulator.records import TrainingRecord  # noqa: E402
from simulator.schemas import TRAINERS  # noqa: E402
from simulator.scripts import SCRIPTS, Emit, ScriptContext, Succeed  # noqa: E402

MARKS = (0.10, 0.25, 0.50, 0.75, 0.90)
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Case:
    name: str
    trainer: str
    script: str
    steps_key: str | None
    steps: tuple[int, int]  # range of configured steps
    extra: dict[str, Any]


CASES = (
    Case("flux (W&B sampling + saves)", "ostris/flux-dev-lora-trainer", "flux", "steps", (600, 1500),
         {"wandb_api_key": "k", "wandb_sample_interval": 100, "wandb_save_interval": 100, "autocaption": False}),
    Case("flux (plain)", "ostris/flux-dev-lora-trainer", "flux", "steps", (400, 2000), {}),
    Case("sdxl", "stability-ai/sdxl", "sdxl", "max_train_steps", (500, 2000), {}),
    Case("llama-2-7b (4 GPUs)", "meta/llama-2-7b", "llama", None, (1, 3), {}),
    Case("qwen-image (raw \\r)", "replicate/qwen-image-lora-trainer", "qwen", "steps", (300, 1500), {}),
    Case("diffusers dreambooth", "ostris/flux-dev-lora-trainer", "diffusers", "steps", (300, 1500),
         {"checkpointing_steps": 250}),
)


@dataclass
class Observation:
    at: float  # simulated seconds since the run started
    eta: float | None
    bar_remaining: float | None


def follow(case: Case, seed: int, history: list[RunRecord], every: float) -> tuple[list[Observation], float, RunRecord | None]:
    """One run, polled every `every` seconds: what the tracker said, the real duration, its record."""
    rng = random.Random(seed)
    low, high = case.steps
    given: dict[str, Any] = {"input_images": "https://replicate.delivery/pbxt/x/set.zip", **case.extra}
    if case.steps_key:
        given[case.steps_key] = rng.randint(low, high)
    else:
        given = {"train_data": "https://replicate.delivery/pbxt/x/rows.jsonl", "num_train_epochs": rng.randint(low, high)}
    trainer = TRAINERS[case.trainer]
    record = TrainingRecord(id=f"bench{seed}", seq=seed, trainer=trainer, destination="me/bench", input=given,
                            script=case.script, rng=random.Random(seed), created_at=0.0)
    ctx = ScriptContext(trainer=trainer, input=given, rng=random.Random(seed), start_time=0.0, time_scale=1.0)
    timeline: list[tuple[float, tuple[str, ...]]] = []
    clock = 0.0
    for event in SCRIPTS[case.script].factory(ctx):
        clock += event.delay
        if isinstance(event, Emit):
            timeline.append((clock, event.lines))
        elif isinstance(event, Succeed):
            break
    duration = clock
    tracker = ProgressTracker(history, configured_steps=steps_from_input(given), configured_epochs=epochs_from_input(given))
    observations: list[Observation] = []
    stages: list[list[str]] = []
    done_at: str | None = None
    index, poll = 0, every
    while poll < duration:
        while index < len(timeline) and timeline[index][0] <= poll:
            record.append(list(timeline[index][1]))
            index += 1
        now = T0 + timedelta(seconds=poll)
        progress = tracker.update(record.logs, Status.PROCESSING, now=now, started_at=T0, created_at=T0)
        if not stages or stages[-1][0] != str(progress.stage):
            stages.append([str(progress.stage), format_time(now)])
        if progress.training_done and done_at is None:
            done_at = format_time(now)
        observations.append(Observation(poll, progress.eta_seconds, _bar_remaining(tracker, now)))
        poll += every
    for _, lines in timeline[index:]:
        record.append(list(lines))
    end = T0 + timedelta(seconds=duration)
    tracker.update(record.logs, Status.SUCCEEDED, now=end, started_at=T0, created_at=T0)
    stages.append([str(Stage.SUCCEEDED), format_time(end)])
    stored = {"status": "succeeded", "started_at": format_time(T0), "completed_at": format_time(end),
              "stages": stages, "input": given, "training_done_at": done_at, "total_steps": tracker.state.total_steps}
    return observations, duration, run_record(stored)


def _bar_remaining(tracker: ProgressTracker, now: datetime) -> float | None:
    """The baseline: the trainer's own remaining time, counted down since the bar said it."""
    state = tracker.state
    seen = tracker._bar_seen  # noqa: SLF001 (the bench reads the same countdown the tracker keeps)
    if state.bar_remaining is None or seen is None or state.stage is not Stage.TRAINING:
        return None
    return max(0.0, state.bar_remaining - (now - seen[1]).total_seconds())


def errors(observations: list[Observation], duration: float) -> dict[float, tuple[float, float]]:
    """Per mark: (ETA error, baseline error), as a percent of the time really left."""
    result = {}
    for mark in MARKS:
        target = mark * duration
        point = min(observations, key=lambda o: abs(o.at - target))
        left = duration - point.at
        eta = 100.0 if point.eta is None else abs(point.eta - left) / left * 100
        base = 100.0 if point.bar_remaining is None else abs(point.bar_remaining - left) / left * 100
        result[mark] = (eta, base)
    return result


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--runs", type=int, default=10, help="measured runs per trainer")
    options.add_argument("--history", type=int, default=6, help="earlier runs per trainer, as history")
    options.add_argument("--every", type=float, default=5.0, help="simulated seconds between polls")
    args = options.parse_args(argv)

    print(f"ETA error, median over {args.runs} runs per trainer, as % of the time really left "
          f"(history: {args.history} earlier runs; polls every {args.every:g} s)")
    header = "trainer                          " + "".join(f"  {int(m * 100):>3}%: ETA / bar " for m in MARKS)
    print(header)
    met = True
    for case in CASES:
        history: list[RunRecord] = []
        for seed in range(1000, 1000 + args.history):
            _, _, run = follow(case, seed, history, args.every)
            if run is not None:
                history.append(run)
        table: dict[float, list[tuple[float, float]]] = {m: [] for m in MARKS}
        for seed in range(args.runs):
            observations, duration, _ = follow(case, seed, history, args.every)
            for mark, pair in errors(observations, duration).items():
                table[mark].append(pair)
        cells = []
        for mark in MARKS:
            eta = statistics.median(e for e, _ in table[mark])
            base = statistics.median(b for _, b in table[mark])
            met = met and eta <= 10.0 and eta < base
            cells.append(f"  {eta:5.1f} / {base:5.1f}  ")
        print(f"{case.name:<33}" + "".join(cells))
    print("goal: ETA median ≤ 10 % at every mark and below the bar's own remaining time:", "met" if met else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
