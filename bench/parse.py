"""Cost of following a training's log: incremental parsing vs re-parsing every poll; raw throughput.

Run: uv run python bench/parse.py [--steps 3000] [--every 5] [--size-mb 50]

1. A synthetic 3,000-step flux run (tests/synthlog.py, ~1.05 s per step) is polled every 5 s; each
   poll returns the whole log so far, as Replicate does. One LogParser fed every cumulative log
   (incremental) is compared with a fresh parser on the whole log at every poll (the old way).
   Target: incremental ≥ 20× cheaper in CPU time.
2. Single-pass throughput on a ~50 MB flux log, best of three passes, next to a baseline measured
   in the same run on the same text (`str.splitlines`, which does no parsing at all), so the figure
   can be read against this machine's speed. Target: ≥ 50 MB/s (MB = 10^6 bytes of UTF-8).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # synthlog: test-only

from core.logparse import LogParser  # noqa: E402
from synthlog import flux_lines, flux_log_of_size, snapshots  # noqa: E402


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


def throughput(size_mb: float, runs: int = 3) -> tuple[float, float, float, int, int]:
    """Best and median MB/s of one pass, the baseline's MB/s, and the log's bytes and lines."""
    text = flux_log_of_size(int(size_mb * 1_000_000))
    megabytes = len(text.encode("utf-8")) / 1_000_000
    rates, baseline = [], []
    state = None
    for _ in range(runs):
        started = time.process_time()
        text.splitlines()
        baseline.append(megabytes / max(time.process_time() - started, 1e-9))
        parser = LogParser()
        started = time.process_time()
        parser.feed(text)
        parser.finish()
        rates.append(megabytes / max(time.process_time() - started, 1e-9))
        state = parser.state
    assert state is not None and state.step is not None
    return max(rates), statistics.median(rates), max(baseline), len(text.encode("utf-8")), state.lines


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--steps", type=int, default=3000)
    options.add_argument("--every", type=float, default=5.0, help="seconds between polls")
    options.add_argument("--size-mb", type=float, default=50.0, help="size of the throughput log")
    args = options.parse_args(argv)

    incremental, reparse, polls, length = follow(args.steps, args.every)
    ratio = reparse / incremental if incremental > 0 else float("inf")
    print(f"following a {args.steps}-step flux run, {polls} polls every {args.every:g} s, final log {length / 1e3:.0f} kB")
    print(f"  incremental (one parser, every cumulative log):  {incremental * 1000:8.1f} ms CPU")
    print(f"  re-parse (fresh parser on every poll, old way):  {reparse * 1000:8.1f} ms CPU")
    print(f"  ratio: incremental is {ratio:.0f}x cheaper (target >= 20x)")

    best, median, baseline, size, lines = throughput(args.size_mb)
    print(f"single pass over a {size / 1e6:.1f} MB flux log ({lines} lines), best of 3")
    print(f"  parser:   {best:6.1f} MB/s (median {median:.1f})  (target >= 50)")
    print(f"  baseline: {baseline:6.1f} MB/s  str.splitlines on the same text; parser/baseline = {best / baseline:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
