"""Load on `replitrack listen` from a second process, over loopback.

10,000 signed webhooks for 200 simulated trainings (10 % of them duplicates of earlier ones, 10 %
delivered out of order), sent as fast as they are accepted by a fixed number of concurrent
connections (closed loop: the latency there is mostly queueing); then 3,000 more paced at a steady
300/s (open loop: the latency a busy account's webhooks see); then 1 MB and 10 MB `logs` bodies.
Prints accepted/s, p50/p99 latency, the 5xx count and whether the final store equals the ground
truth. The same load against a bare aiohttp server that only reads the body and answers 200 is the
baseline, measured in the same run.

    uv run python bench/webhooks.py [--trainings 200] [--webhooks 10000] [--concurrency 16] [--rate 300]

Targets: >= 300 webhooks/s sustained, p99 <= 25 ms for small bodies at 300/s on a quiet machine
(and <= 3x the bare server's paced p99 in the same run on a busy one), 0 lost, 0 wrong. Spells of
slow answers in the paced phase are listed with their start times, to show periodic work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.store import Store  # noqa: E402
from core.webhooks import sign_webhook  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BAR = "flux_train_replicate: {p:3d}%|#####     | {s}/{t} [01:00<01:00,  1.05it/s, lr: 4.0e-04 loss: {l:.3e}]\n"
BASELINE_SERVER = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.json_response({"ok": True})
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/webhooks/replicate", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass
class Webhook:
    training_id: str
    msg_id: str
    body: bytes
    headers: dict[str, str]


def training_body(tid: str, status: str, log: str | None, steps: int, **extra: Any) -> dict[str, Any]:
    body = {"id": tid, "model": "ostris/flux-dev-lora-trainer", "version": "a" * 64, "status": status,
            "input": {"steps": steps}, "logs": log, "output": None, "error": None, "metrics": {},
            "created_at": "2026-01-01T00:00:00.000Z",
            "started_at": None if status == "starting" else "2026-01-01T00:01:00.000Z",
            "urls": {"get": f"https://api.invalid/v1/trainings/{tid}"}}
    body.update(extra)
    return body


def sign(tid: str, msg_id: str, payload: dict[str, Any], stamp: int) -> Webhook:
    body = json.dumps(payload).encode()
    headers = sign_webhook(body, SECRET, msg_id, stamp)
    headers["content-type"] = "application/json"
    return Webhook(tid, msg_id, body, headers)


def workload(trainings: int, total: int, rng: random.Random,
             prefix: str = "bench") -> tuple[list[Webhook], dict[str, dict[str, Any]]]:
    """The stream to send (duplicates and reordering included) and the expected final records."""
    unique = total - total // 10
    per_training = max(3, unique // trainings)
    stamp = int(time.time())
    truth: dict[str, dict[str, Any]] = {}
    streams: list[list[Webhook]] = []
    for n in range(trainings):
        tid = f"{prefix}{n:04d}" + "x" * (22 - len(prefix))
        steps = per_training - 2
        log = "Starting train job\n"
        events = [sign(tid, f"{prefix}_{n}_0", training_body(tid, "starting", None, steps), stamp)]
        for step in range(1, steps + 1):
            log += BAR.format(p=step * 100 // steps, s=step, t=steps, l=1 / step)
            events.append(sign(tid, f"{prefix}_{n}_{step}", training_body(tid, "processing", log, steps), stamp))
        version = f"me/lora-{n}:" + "c" * 64
        final = training_body(tid, "succeeded", log, steps, output={"version": version, "weights": "https://w"},
                              completed_at="2026-01-01T00:30:00.000Z")
        events.append(sign(tid, f"{prefix}_{n}_end", final, stamp))
        truth[tid] = {"status": "succeeded", "output_version": version, "log": log}
        streams.append(events)
    # Interleave the trainings round-robin, as concurrent trainings would send them.
    stream = [event for group in zip(*streams) for event in group]
    stream += [e for s in streams for e in s[len(streams[0]):]]
    period = len(streams)  # round-robin: the same training's next event is `period` places later
    for _ in range(len(stream) // 10):  # 10 % out of order: swapped with the same training's next one or two
        i = rng.randrange(len(stream) - 2 * period)
        j = i + period * rng.randint(1, 2)
        stream[i], stream[j] = stream[j], stream[i]
    for _ in range(total - len(stream)):  # 10 % duplicates: Replicate retrying one already sent
        i = rng.randrange(len(stream))
        stream.insert(min(len(stream), i + rng.randrange(1, 200)), stream[i])
    return stream, truth


async def send_all(url: str, stream: list[Webhook], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[Webhook] = asyncio.Queue()
    for event in stream:
        queue.put_nowait(event)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            event = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=event.body, headers=event.headers) as answer:
                await answer.read()
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    latencies.sort()
    return {"sent": len(stream), "accepted": ok, "elapsed": elapsed, "per_second": ok / elapsed,
            "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
            "5xx": sum(c for s, c in statuses.items() if s >= 500), "statuses": statuses}


LONG_LOG_LINES = {
    "flux": BAR.format(p=50, s=1500, t=3000, l=0.25),  # one tqdm refresh per line
    "llm": "step 1234 is completed and loss is 1.2345678\n",  # cog-llama-template, a line per step
}


async def send_at_rate(url: str, stream: list[Webhook], rate: float) -> dict[str, Any]:
    """Open loop: one webhook every 1/rate s whatever the answers, as a busy account would send them."""
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (sent at, seconds from the start; latency, ms)
    statuses: dict[int, int] = {}
    origin = time.perf_counter()

    async def one(session: aiohttp.ClientSession, event: Webhook) -> None:
        started = time.perf_counter()
        async with session.post(url, data=event.body, headers=event.headers) as answer:
            await answer.read()
        latencies.append((time.perf_counter() - started) * 1000)
        timeline.append((started - origin, latencies[-1]))
        statuses[answer.status] = statuses.get(answer.status, 0) + 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        tasks = []
        for i, event in enumerate(stream):
            delay = begin + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, event)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - begin
    latencies.sort()
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {"sent": len(stream), "accepted": ok, "per_second": ok / elapsed, "p50": statistics.median(latencies),
            "p99": latencies[int(len(latencies) * 0.99) - 1], "5xx": sum(c for s, c in statuses.items() if s >= 500),
            "bursts": bursts(sorted(timeline))}


def bursts(timeline: list[tuple[float, float]], slow_ms: float = 50.0) -> list[tuple[float, float]]:
    """Spells of slow answers: (start, s; worst latency, ms) for answers over `slow_ms` sent within
    0.5 s of each other. Periodic spells point at periodic work (a compaction, a checkpoint)."""
    found: list[tuple[float, float]] = []
    last = -1.0
    for sent, latency in timeline:
        if latency <= slow_ms:
            continue
        if found and sent - last <= 0.5:
            found[-1] = (found[-1][0], max(found[-1][1], latency))
        else:
            found.append((sent, latency))
        last = sent
    return found


async def big_bodies(url: str, sizes: list[tuple[int, str]]) -> list[tuple[int, str, float, int]]:
    """One `logs` webhook per (size, kind of log), each for a new training, sent one after the other."""
    results = []
    stamp = int(time.time())
    async with aiohttp.ClientSession() as session:
        for k, (size, kind) in enumerate(sizes):
            tid = f"bigbody{k:03d}" + "y" * 16
            line = LONG_LOG_LINES[kind]
            payload = training_body(tid, "processing", line * (size // len(line) + 1), 1000)
            event = sign(tid, f"msg_big_{k}", payload, stamp)
            started = time.perf_counter()
            async with session.post(url, data=event.body, headers=event.headers) as answer:
                await answer.read()
            results.append((len(event.body), kind, (time.perf_counter() - started) * 1000, answer.status))
    return results


async def start_process(args: list[str], env: dict[str, str], out: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*args, cwd=ROOT, env=env, stdout=out,
                                                stderr=asyncio.subprocess.PIPE)


async def wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as answer:
                    if answer.status in (200, 404, 405):
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server at {url} did not start")
            await asyncio.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_store(home: Path, truth: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(lost, wrong): trainings missing from the store, and trainings whose final state differs."""
    lost = wrong = 0
    with Store(home, readonly=True) as store:
        for tid, expected in truth.items():
            record = store.get(tid)
            if record is None:
                lost += 1
            elif (record["status"], record.get("output_version"), store.read_log(tid)) != (
                    expected["status"], expected["output_version"], expected["log"]):
                wrong += 1
    return lost, wrong


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainings", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=300.0, help="webhooks/s of the paced (open-loop) phase")
    options = parser.parse_args()
    stream, truth = workload(options.trainings, options.webhooks, random.Random(options.seed))
    paced_stream, paced_truth = workload(options.trainings // 4, int(options.rate * 10), random.Random(options.seed + 1),
                                         prefix="paced")
    print(f"workload: {len(stream)} webhooks for {len(truth)} trainings "
          f"({len(stream) - len({w.msg_id for w in stream})} duplicates), concurrency {options.concurrency}")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLICATE_", "NGROK_"))}
    with tempfile.TemporaryDirectory(prefix="replitrack-bench-") as tmp:
        # Baseline: a bare aiohttp server that reads the body and answers 200.
        port = free_port()
        baseline = await start_process([sys.executable, "-c", BASELINE_SERVER, str(port)], env,
                                       asyncio.subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/webhooks/replicate"
        await wait_ready(url)
        base = await send_all(url, stream, options.concurrency)
        base_paced = await send_at_rate(url, paced_stream, options.rate)
        baseline.terminate()
        await baseline.wait()

        # The listener, in its own process, with its own store.
        home = Path(tmp) / "home"
        port = free_port()
        output = open(Path(tmp) / "listen.jsonl", "w")
        listen = await start_process(
            [sys.executable, "-m", "tui.cli", "listen", "--no-tunnel", "--json", "--no-poll", "--port", str(port),
             "--webhook-secret", SECRET], {**env, "REPLITRACK_HOME": str(home)}, output)
        url = f"http://127.0.0.1:{port}/webhooks/replicate"
        await wait_ready(f"http://127.0.0.1:{port}/health")
        result = await send_all(url, stream, options.concurrency)
        paced = await send_at_rate(url, paced_stream, options.rate)
        bigs = await big_bodies(url, [(size, kind) for size in (1_000_000, 10_000_000) for kind in LONG_LOG_LINES
                                      for _ in range(2)])
        listen.send_signal(signal.SIGINT)
        _, err = await listen.communicate()
        output.close()
        if listen.returncode != 0:
            print(f"listen exited with {listen.returncode}: {err.decode()[-2000:]}")
        verdicts: dict[str, int] = {}
        handling: list[float] = []  # the listener's own time per small webhook, receipt to 2xx
        for line in open(Path(tmp) / "listen.jsonl"):
            data = json.loads(line)
            if data.get("type") == "webhook":
                verdicts[data["verdict"]] = verdicts.get(data["verdict"], 0) + 1
                if data.get("duration_ms") is not None and not str(data.get("training_id")).startswith("bigbody"):
                    handling.append(float(data["duration_ms"]))
        handling.sort()
        lost, wrong = check_store(home, {**truth, **paced_truth})

    ratio = result["per_second"] / base["per_second"]
    print(f"baseline (bare aiohttp): {base['per_second']:8.0f} webhooks/s   p50 {base['p50']:6.2f} ms   "
          f"p99 {base['p99']:6.2f} ms")
    print(f"listener               : {result['per_second']:8.0f} webhooks/s   p50 {result['p50']:6.2f} ms   "
          f"p99 {result['p99']:6.2f} ms   ({ratio:.2f}x the baseline's rate)")
    print(f"accepted {result['accepted']}/{result['sent']}, 5xx: {result['5xx']}, statuses {result['statuses']}, "
          f"verdicts {verdicts}")
    print(f"paced at {options.rate:.0f}/s for {paced['sent'] / options.rate:.0f} s: {paced['per_second']:6.0f} "
          f"webhooks/s accepted   p50 {paced['p50']:6.2f} ms   p99 {paced['p99']:6.2f} ms   5xx {paced['5xx']}")
    print(f"baseline paced at {options.rate:.0f}/s:   p50 {base_paced['p50']:6.2f} ms   p99 {base_paced['p99']:6.2f} ms"
          "   (what the sender and loopback alone cost)")
    for name, run in (("listener", paced), ("baseline", base_paced)):
        spells = ", ".join(f"{start:.1f} s ({worst:.0f} ms)" for start, worst in run["bursts"]) or "none"
        print(f"  {name} spells of answers > 50 ms (start, worst): {spells}")
    if handling:
        print(f"listener handling time (its own clock, small bodies): p50 {statistics.median(handling):6.2f} ms   "
              f"p99 {handling[int(len(handling) * 0.99) - 1]:6.2f} ms")
    for size, kind, ms, status in bigs:
        print(f"body {size / 1e6:5.1f} MB ({kind} log): {ms:7.1f} ms  [{status}]")
    print(f"final store vs ground truth: {lost} lost, {wrong} wrong -> {'EQUAL' if lost == wrong == 0 else 'DIFFERENT'}")
    targets = {
        ">= 300/s (saturated)": result["per_second"] >= 300,
        "p99 <= 25 ms at 300/s (paced)": paced["p99"] <= 25,
        "paced p99 <= 3x the bare server's": paced["p99"] <= 3 * base_paced["p99"],
        "p99 <= 25 ms saturated": result["p99"] <= 25,
        "0 5xx": result["5xx"] == paced["5xx"] == 0 and all(status == 200 for *_, status in bigs),
        "0 lost, 0 wrong": lost == wrong == 0,
    }
    print("targets: " + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in targets.items()))


if __name__ == "__main__":
    asyncio.run(main())
