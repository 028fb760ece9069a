"""Cost of following a training's log: incremental parsing vs re-parsing every poll; raw throughput.

Run: uv run python bench/parse.py [--steps 3000] [--every 5] [--size-mb 50]

1. A synthetic 3,000-step flux run (tests/synthlog.py, ~1.05 s per step) is polled every 5 s; each
   poll returns the whole log so far, as Replicate does. One LogParser fed every cumulative log
   (incremental) is compared with a fresh parser on the whole log at every poll (the old way).
   Target: incremental ≥ 20× cheaper in CPU time.
2. Single-pass throughput on the log of every trainer family, as the simulator prints it (flux with
   W&B sampling and saves, flux on the newest runtime with raw `\r` refreshes, cog-sdxl's per-step
   descriptions, cog-llama-template's 4-GPU interleaved colour bars and tensor losses, qwen on
   ai-toolkit with two raw refreshes a step, diffusers' DreamBooth `Steps:` bar), median of
   three passes, next to a baseline measured in the same run on the same text: a plain Python loop
   that runs ONE regex (a tqdm counter) over each line and does nothing else. Target: ≥ 50 MB/s
   for every family (MB = 10^6 bytes of UTF-8).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # synthlog: test-only

import random  # noqa: E402
import re  # noqa: E402

from core.logparse import LogParser  # noqa: E402
from simulator.records import TrainingRecord  # noqa: E402
from simulator.schemas import TRAINERS  # noqa: E402
from simulator.scripts import SCRIPTS, Emit, ScriptContext  # noqa: E402
from synthlog import flux_lines, snapshots  # noqa: E402

BASELINE = re.compile(r"(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")
FAMILIES = {
    # name: (trainer, script, input, input key that sets the length, units per MB)
    "flux (W&B)": ("ostris/flux-dev-lora-trainer", "flux",
                   {"wandb_api_key": "k", "wandb_sample_interval": 100, "wandb_save_interval": 100, "autocaption": False},
                   "steps", 7_000),
    "flux (raw \\r)": ("ostris/flux-dev-lora-trainer", "flux-raw", {"autocaption": False}, "steps", 7_500),
    "sdxl": ("stability-ai/sdxl", "sdxl", {}, "max_train_steps", 4_600),
    "llama (4 GPUs)": ("meta/llama-2-7b", "llama", {"num_train_epochs": 1}, None, 2_200),
    "qwen (raw \\r)": ("replicate/qwen-image-lora-trainer", "qwen", {}, "steps", 3_800),
    "diffusers": ("ostris/flux-dev-lora-trainer", "diffusers", {"checkpointing_steps": 500}, "steps", 5_500),
}


def follow(steps: int, every: float) -> tuple[float, float, int, int]:
    """CPU seconds (incremental, re-parse), number of polls, final log length."""
    incremental = LogParser()
    cost_incremental = cost_reparse = 0.0
    polls = 0
    text = ""
    for _, text in snapshots(flux_lines(steps), every):
        polls += 1
        started = time.process_time()
        incremental.feed(text)
        cost_incremental += time.process_time() - started
        started = time.process_time()
        fresh = LogParser()
        fresh.feed(text)
        cost_reparse += time.process_time() - started
    if fresh.state != incremental.state:
        raise SystemExit("incremental and one-pass states differ: the bench measured a broken parser")
    return cost_incremental, cost_reparse, polls, len(text)


def family_log(name: str, size_mb: float) -> str:
    """A log of about `size_mb` MB from the simulator's script for that family (fast-forwarded)."""
    trainer_name, script, given, key, per_mb = FAMILIES[name]
    trainer = TRAINERS[trainer_name]
    given = dict(given)
    rows = None
    if key:
        given[key] = int(per_mb * size_mb)
    else:
        rows = int(per_mb * size_mb * 16)  # 4 GPUs × batch 4 examples a step
    ctx = ScriptContext(trainer=trainer, input=given, rng=random.Random(0), start_time=0.0, text_rows=rows)
    record = TrainingRecord(id="bench", seq=0, trainer=trainer, destination="me/bench", input=given,
                            script=script, rng=random.Random(0), created_at=0.0)
    for event in SCRIPTS[script].factory(ctx):
        if isinstance(event, Emit):
            record.append(list(event.lines))
    return record.logs


def one_regex_loop(text: str) -> int:
    """The baseline: one regex per line in a Python loop, nothing else."""
    found = 0
    search = BASELINE.search
    for line in text.splitlines():
        if search(line):
            found += 1
    return found


def throughput(text: str, runs: int = 3) -> tuple[float, float, int]:
    """Median MB/s of one pass of the parser, of the baseline, and the log's lines."""
    megabytes = len(text.encode("utf-8")) / 1_000_000
    rates, baseline = [], []
    state = None
    for _ in range(runs):
        started = time.process_time()
        one_regex_loop(text)
        baseline.append(megabytes / max(time.process_time() - started, 1e-9))
        parser = LogParser()
        started = time.process_time()
        parser.feed(text)
        parser.finish()
        rates.append(megabytes / max(time.process_time() - started, 1e-9))
        state = parser.state
    assert state is not None and state.step is not None, "the bench measured a parser that read nothing"
    return statistics.median(rates), statistics.median(baseline), state.lines


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--steps", type=int, default=3000)
    options.add_argument("--every", type=float, default=5.0, help="seconds between polls")
    options.add_argument("--size-mb", type=float, default=25.0, help="size of each family's log")
    args = options.parse_args(argv)

    incremental, reparse, polls, length = follow(args.steps, args.every)
    ratio = reparse / incremental if incremental > 0 else float("inf")
    print(f"following a {args.steps}-step flux run, {polls} polls every {args.every:g} s, final log {length / 1e3:.0f} kB")
    print(f"  incremental (one parser, every cumulative log):  {incremental * 1000:8.1f} ms CPU")
    print(f"  re-parse (fresh parser on every poll, old way):  {reparse * 1000:8.1f} ms CPU")
    print(f"  ratio: incremental is {ratio:.0f}x cheaper (target >= 20x)")

    print("single pass, median of 3, per family (baseline: one regex per line in a Python loop, same text)")
    slowest = float("inf")
    for name in FAMILIES:
        text = family_log(name, args.size_mb)
        rate, baseline, lines = throughput(text)
        slowest = min(slowest, rate)
        size = len(text.encode("utf-8")) / 1e6
        print(f"  {name:<16} {size:5.1f} MB, {lines:>8} lines:  parser {rate:6.1f} MB/s   baseline {baseline:6.1f} MB/s"
              f"   ({rate / baseline:.1f}x)")
    print(f"  slowest family: {slowest:.1f} MB/s (target >= 50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
