"""What a million-step training costs in memory once parsed: the loss and lr series, and the rest
of the parser's state, without the log text itself.

Run: uv run python bench/memory_series.py [--steps 1000000]

A flux log of `--steps` steps (tests/synthlog.py, one bar line per step with lr and loss) is fed to
one LogParser in cumulative pieces, as polls would bring it; tracemalloc counts what the parser
still holds once the text is gone. Baseline, in the same run: the same points kept the way the
series used to be kept, a list of (step, value) tuples. Target: ≤ 60 MB for a 1M-step log.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # synthlog: test-only

from core.logparse import LogParser  # noqa: E402
from synthlog import flux_lines  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--steps", type=int, default=1_000_000)
    args = options.parse_args(argv)

    text = "".join(line.text + "\n" for line in flux_lines(args.steps, save_every=0))
    size = len(text.encode("utf-8")) / 1e6
    tracemalloc.start()
    parser = LogParser()
    for cut in range(1, 11):  # ten polls of the growing log
        end = text.rfind("\n", 0, len(text) * cut // 10) + 1
        parser.feed(text[:end])
    parser.finish()
    del text
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    state = parser.state
    points = len(state.losses) + len(state.lrs)
    tracemalloc.stop()

    tracemalloc.start()
    as_tuples = [list(state.losses), list(state.lrs)]  # the old shape: a list of tuples per series
    tuples, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del as_tuples

    print(f"{args.steps:,}-step flux log ({size:.0f} MB of text), {points:,} loss and lr points")
    print(f"  parser state held after parsing: {held / 1e6:6.1f} MB  (target <= 60 MB)")
    print(f"  baseline, the same points as lists of (step, value) tuples: {tuples / 1e6:6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
