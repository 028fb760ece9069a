"""Chaos run: `replitrack listen` receives signed webhooks for many trainings while it is killed
with SIGKILL and its disk fills up, and the deliveries come duplicated and out of order, as
Replicate's retries can. In the end the store must equal the ground truth.

The sender behaves like Replicate: every webhook is retried (same webhook id) until it gets a 2xx.
Chaos, at random moments while they flow: `kill -9` then a restart on the same port, or the store's
disk filled to the last byte (a 256 MiB tmpfs, as root; else a file-size limit set with prlimit
on the running listener) for a moment.

    uv run python bench/chaos.py [--trainings 60] [--seed 1]     (prints its figures; exit 1 if any loss)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.store import Store  # noqa: E402
from core.webhooks import sign_webhook  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BAR = "flux_train_replicate: {p:3d}%|#####     | {s}/1000 [01:00<01:00,  1.05it/s, lr: 4.0e-04 loss: 3.0e-01]\n"


@dataclass
class Figures:
    webhooks: int = 0
    posts: int = 0
    accepted: int = 0
    duplicates_answered: int = 0
    answered_503: int = 0
    other_errors: dict[int, int] = field(default_factory=dict)
    connection_failures: int = 0
    sent_twice: int = 0
    reordered: int = 0
    kills: int = 0
    full_disks: int = 0


def plan(count: int, rng: random.Random) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per training, its webhooks in the order Replicate would send them: start, logs…, completed."""
    trainings = {}
    for n in range(count):
        tid = f"chaos{n:03d}" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(18))
        base = {"id": tid, "model": "ostris/flux-dev-lora-trainer", "version": "v" * 64, "input": {"steps": 1000},
                "urls": {}, "error": None, "output": None, "metrics": {}, "created_at": "2026-11-20T10:00:00Z",
                "destination": f"me/chaos-{n}"}
        log = "Starting train job\n"
        hooks = [(f"{tid}-start", {**base, "status": "starting", "logs": None, "started_at": None})]
        for chunk in range(1, 11):
            log += "".join(BAR.format(p=s // 10, s=s) for s in range((chunk - 1) * 100 + 1, chunk * 100 + 1))
            hooks.append((f"{tid}-logs{chunk}", {**base, "status": "processing", "logs": log,
                                                  "started_at": "2026-11-20T10:00:05Z"}))
        failed = n % 7 == 3
        hooks.append((f"{tid}-completed", {
            **base, "status": "failed" if failed else "succeeded", "logs": log + "done\n",
            "started_at": "2026-11-20T10:00:05Z", "completed_at": "2026-11-20T10:30:00Z",
            "error": "CUDA out of memory" if failed else None,
            "output": None if failed else {"version": f"me/chaos-{n}:{'c' * 64}", "weights": "https://x/w.tar"}}))
        trainings[tid] = hooks
    return trainings


class Listener:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "REPLITRACK_HOME": str(self.home)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "listen", "--no-tunnel", "--json", "--no-poll", "--port", str(self.port),
             "--webhook-secret", SECRET], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            if json.loads(raw).get("type") == "ready":
                # keep reading its lines (one per webhook): a full pipe would block its event loop
                threading.Thread(target=self.process.stdout.read, daemon=True).start()
                return
        raise RuntimeError(f"listen did not start: {self.process.stderr.read().decode() if self.process.stderr else ''}")

    def kill(self) -> str:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        return self.process.stderr.read().decode() if self.process.stderr else ""

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=30)
        return err.decode()


class Disk:
    """Fills the store's disk for a moment: a tmpfs filled to the last byte, else a file-size limit."""

    def __init__(self, root: Path) -> None:
        self.mount = root / "disk"
        self.mount.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(self.mount)],
                              capture_output=True, text=True)
        self.tmpfs = done.returncode == 0
        self.how = "a 256 MiB tmpfs filled to the last byte" if self.tmpfs else \
            f"a file-size limit on the listener (prlimit; no tmpfs: {done.stderr.strip()})"

    def fill(self, listener: Listener) -> None:
        if self.tmpfs:
            with open(self.mount / "filler", "wb", buffering=0) as file:
                for block in (65536, 512):  # to the last byte
                    try:
                        while file.write(b"\0" * block):
                            pass
                    except OSError:
                        pass
        else:
            assert listener.process is not None
            journal = self.mount / "home" / "journal.jsonl"
            size = journal.stat().st_size if journal.exists() else 0
            resource.prlimit(listener.process.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    def free(self, listener: Listener) -> None:
        if self.tmpfs:
            (self.mount / "filler").unlink(missing_ok=True)
        elif listener.process is not None and listener.process.poll() is None:
            resource.prlimit(listener.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def deliver(session: aiohttp.ClientSession, url: str, msg: str, payload: dict[str, Any],
                  figures: Figures, rng: random.Random) -> None:
    """Like Replicate: the same webhook id until a 2xx."""
    raw = json.dumps(payload).encode()
    wait = 0.02
    while True:
        headers = {**sign_webhook(raw, SECRET, msg, int(time.time())), "content-type": "application/json"}
        figures.posts += 1
        try:
            async with session.post(url, data=raw, headers=headers) as answer:
                data = await answer.json(content_type=None)
                if answer.status == 200:
                    if data.get("outcome") == "duplicate":
                        figures.duplicates_answered += 1
                    return
                if answer.status == 503:
                    figures.answered_503 += 1
                else:
                    figures.other_errors[answer.status] = figures.other_errors.get(answer.status, 0) + 1
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            figures.connection_failures += 1
        await asyncio.sleep(wait + rng.random() * wait)
        wait = min(0.5, wait * 2)


async def send_training(session: aiohttp.ClientSession, url: str, hooks: list[tuple[str, dict[str, Any]]],
                        figures: Figures, rng: random.Random, delay: float) -> None:
    await asyncio.sleep(delay)  # trainings start one after another, and overlap
    order = list(hooks)
    for i in range(len(order) - 1):  # out of order: swap neighbours now and then
        if rng.random() < 0.15:
            order[i], order[i + 1] = order[i + 1], order[i]
            figures.reordered += 1
    for msg, payload in order:
        figures.webhooks += 1
        await deliver(session, url, msg, payload, figures, rng)
        if rng.random() < 0.1:  # delivered twice (a retry after a lost answer)
            figures.sent_twice += 1
            await deliver(session, url, msg, payload, figures, rng)
        await asyncio.sleep(rng.random() * 0.4)


async def chaos(listener: Listener, disk: Disk, figures: Figures, done: asyncio.Event, rng: random.Random,
                errors: list[str]) -> None:
    while not done.is_set():
        await asyncio.sleep(1.0 + rng.random() * 1.5)  # a restart takes about a second
        if done.is_set():
            return
        if rng.random() < 0.5:
            figures.kills += 1
            errors.append(await asyncio.to_thread(listener.kill))
            await asyncio.sleep(rng.random() * 0.3)
            while True:
                try:
                    await asyncio.to_thread(listener.start)
                    break
                except RuntimeError as error:  # counted: a restart that failed is a finding
                    errors.append(f"Traceback? restart failed: {error}")
                    await asyncio.sleep(0.5)
        else:
            figures.full_disks += 1
            await asyncio.to_thread(disk.fill, listener)
            await asyncio.sleep(0.2 + rng.random() * 0.6)
            await asyncio.to_thread(disk.free, listener)


async def main(count: int, seed: int) -> int:
    rng = random.Random(seed)
    figures = Figures()
    truth = plan(count, rng)
    with tempfile.TemporaryDirectory() as tmp:
        disk = Disk(Path(tmp))
        try:
            home = disk.mount / "home"
            port = free_port()
            listener = Listener(home, port)
            listener.start()
            url = f"http://127.0.0.1:{port}/webhooks/replicate"
            done = asyncio.Event()
            errors: list[str] = []
            started = time.perf_counter()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                monkey = asyncio.create_task(chaos(listener, disk, figures, done, random.Random(seed + 1), errors))
                await asyncio.wait_for(asyncio.gather(*(
                    send_training(session, url, hooks, figures, random.Random(seed * 1000 + n), n * 0.5)
                    for n, hooks in enumerate(truth.values()))), timeout=600)
                done.set()
                await monkey
            disk.free(listener)
            elapsed = time.perf_counter() - started
            errors.append(await asyncio.to_thread(listener.stop))
            lost = wrong = 0
            problems: list[str] = []
            with Store(home, readonly=True) as store:
                for tid, hooks in truth.items():
                    final = hooks[-1][1]
                    record = store.get(tid)
                    if record is None:
                        lost += 1
                        problems.append(f"{tid}: missing")
                        continue
                    expected_version = (final.get("output") or {}).get("version")
                    checks = {"status": (record.get("status"), final["status"]),
                              "log": (store.read_log(tid) == final["logs"], True),
                              "output_version": (record.get("output_version"), expected_version),
                              "error": (record.get("error"), final.get("error")),
                              "webhook ids": (all(store.seen_webhook(m) for m, _ in hooks), True)}
                    bad = {k: v for k, v in checks.items() if v[0] != v[1]}
                    if bad:
                        wrong += 1
                        problems.append(f"{tid}: {bad}")
            tracebacks = sum("Traceback" in text for text in errors)
        finally:
            disk.close()
    print(f"chaos run: {count} trainings, {figures.webhooks} webhooks ({figures.sent_twice} delivered twice, "
          f"{figures.reordered} reordered), {elapsed:.1f} s; disk: {disk.how}")
    print(f"chaos: {figures.kills} kill -9 + restarts, {figures.full_disks} full disks")
    print(f"answers: {figures.posts} posts; 503 (disk full, retried): {figures.answered_503}; "
          f"connection failures (killed, retried): {figures.connection_failures}; duplicates answered 200: "
          f"{figures.duplicates_answered}; other errors: {figures.other_errors or 0}")
    print(f"final store vs ground truth: {lost} lost, {wrong} wrong; tracebacks on stderr: {tracebacks}")
    for problem in problems[:10]:
        print("  ", problem)
    return 1 if lost or wrong or tracebacks or figures.other_errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainings", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.trainings, arguments.seed)))
