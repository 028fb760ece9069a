"""Memory over a long session: the resident set size of a real `replitrack demo` process.

The demo runs in a pseudo-terminal (120×36) exactly as a user starts it (its simulator, listener,
webhooks and poller inside), for `--minutes` of wall-clock time at the demo's own simulator speed
(or `--speed`); its output is read and discarded all along, as a terminal would. Its RSS (and
that of any child, e.g. the worker that decodes large bodies) is read from /proc every 5 s.
Baseline: the RSS at minute 2, when the app, the simulator and the trainings are all up.

    uv run python bench/memory.py [--minutes 30] [--speed S]

Goal: the RSS at the end within 10 % of the RSS at minute 2.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.10
SAMPLE_EVERY = 5.0


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` plus its children's (KiB); 0 once it is gone."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=None, help="simulator speed (default: the demo's)")
    options = parser.parse_args()
    argv = [sys.executable, "-m", "tui.cli", "demo"] + (["--speed", str(options.speed)] if options.speed else [])
    with tempfile.TemporaryDirectory(prefix="replitrack-memory-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLICATE_", "NGROK"))}
        env.update(TERM="xterm-256color", COLUMNS="120", LINES="36", REPLITRACK_HOME=home)
        main_fd, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        process = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT,
                                   start_new_session=True)
        os.close(child)
        os.set_blocking(main_fd, False)
        started = time.monotonic()
        samples: list[tuple[float, int]] = []
        next_sample = started
        try:
            while time.monotonic() - started < options.minutes * 60 and process.poll() is None:
                ready, _, _ = select.select([main_fd], [], [], 0.2)
                if ready:
                    try:
                        os.read(main_fd, 1 << 16)  # a terminal reads everything the app writes
                    except OSError:
                        break
                if time.monotonic() >= next_sample:
                    samples.append((time.monotonic() - started, rss_kib(process.pid)))
                    next_sample += SAMPLE_EVERY
                    if len(samples) % 60 == 0:
                        print(f"  {samples[-1][0] / 60:5.1f} min: {samples[-1][1] / 1024:7.1f} MiB", flush=True)
        finally:
            alive = process.poll() is None
            if alive:
                os.write(main_fd, b"q")
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            os.close(main_fd)
    if not alive:
        minutes = samples[-1][0] / 60 if samples else 0.0
        print(f"the demo exited early (code {process.returncode}) after {minutes:.1f} min")
        return 1
    at_two = next((kib for seconds, kib in samples if seconds >= 120), None)
    end = samples[-1][1]
    peak = max(kib for _, kib in samples)
    if at_two is None:
        print("the run was shorter than 2 minutes: no baseline")
        return 1
    ratio = end / at_two
    print(f"replitrack demo{' --speed ' + str(options.speed) if options.speed else ''}, "
          f"{samples[-1][0] / 60:.1f} min in a 120×36 pty, RSS every {SAMPLE_EVERY:g} s (with children):")
    print(f"  minute 2 (baseline) {at_two / 1024:7.1f} MiB   end {end / 1024:7.1f} MiB   peak {peak / 1024:7.1f} MiB   "
          f"end/minute 2 = {ratio:.3f} (goal <= {GOAL:.2f}): {'met' if ratio <= GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
