"""Event-loop stalls while the store checkpoints 10,000 trainings in the background.

A checkpoint writes the whole database file from a worker thread. Serialising it with one
`json.dumps` holds the GIL for the whole document (~150 ms at 10,000 trainings), and the event
loop (webhooks, the TUI) waits that long. The store encodes it record by record instead, so the
loop gets the GIL back between records.

Measured here, in one run, each as the lateness of a 1 ms `asyncio.sleep` ticker on the loop:
- baseline: the loop idle (nothing but the ticker);
- the store's background checkpoints, through the real path (puts and commits on a store of
  10,000 trainings until the journal passes its checkpoint size, then waiting for the checkpoint);
- for reference, the old way: one `json.dumps` of the same snapshot in a worker thread.

Target: every stall ≤ 20 ms during checkpoints.

    uv run python bench/checkpoint.py [--trainings 10000] [--checkpoints 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from core.store import Store  # noqa: E402
from sample_data import bulk_records  # noqa: E402

FLUX_INPUT = {"input_images": "https://example.invalid/photos.zip", "trigger_word": "TOK", "steps": 1000,
              "lora_rank": 16, "optimizer": "adamw8bit", "batch_size": 1, "resolution": "512,768,1024",
              "autocaption": True, "autocaption_prefix": "a photo of TOK", "learning_rate": 0.0004,
              "caption_dropout_rate": 0.05, "cache_latents_to_disk": False, "wandb_project": "flux_train_replicate",
              "hf_repo_id": None, "layers_to_optimize_regex": None}
STAGES = ["queued", "booting", "downloading", "preparing", "captioning", "loading", "caching", "training",
          "saving", "uploading", "succeeded"]


def records(count: int) -> list[dict[str, Any]]:
    """Stored records as the app keeps them: full inputs, a stage timeline, metrics, an output."""
    found = []
    for record in bulk_records(count):
        record["input"] = dict(FLUX_INPUT)
        record["stages"] = [[stage, record["created_at"]] for stage in STAGES]
        record["metrics"] = {"predict_time": 1523.4, "total_time": 1560.1}
        record["output_version"] = f"{record['destination']}:{'a' * 64}"
        record["output_weights"] = f"https://replicate.delivery/xezq/{'b' * 40}/trained_model.tar"
        found.append(record)
    return found


class Ticker:
    """How late a 1 ms sleep wakes up: the loop's stalls."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(0.001)
            self.samples.append((loop.time() - started - 0.001) * 1000)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> list[float]:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.samples


def line(name: str, samples: list[float]) -> str:
    return (f"{name:<44} worst {max(samples):7.1f} ms   median {statistics.median(samples):5.2f} ms   "
            f"p99 {sorted(samples)[int(len(samples) * 0.99)]:6.1f} ms   ({len(samples)} ticks)")


async def main(count: int, checkpoints: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home))
        started = time.perf_counter()
        for record in records(count):
            store.put(record)
        store.flush()
        size = (Path(home) / "replitrack.json").stat().st_size
        print(f"store: {count:,} trainings, database file {size / 1e6:.1f} MB "
              f"(built in {time.perf_counter() - started:.1f} s)")

        ticker = Ticker()
        ticker.start()
        await asyncio.sleep(3.0)
        idle = await ticker.stop()

        # The real path: commits until the journal passes the checkpoint size, which starts a
        # background checkpoint; commits go on meanwhile (as webhooks would).
        store.checkpoint_bytes = 64 * 1024
        ids = [record["id"] for record in store.trainings()[:200]]
        ticker.start()
        durations = []
        for n in range(checkpoints):
            while store._checkpoint_task is None:
                record = store.get(ids[n % len(ids)]) or {}
                store.put({**record, "overall_percent": float(n)})
                await store.commit()
            began = time.perf_counter()
            while store._checkpoint_task is not None:  # commits go on while it runs
                record = store.get(ids[(n + 1) % len(ids)]) or {}
                store.put({**record, "overall_percent": float(n) + 0.5})
                await store.commit()
                await asyncio.sleep(0.002)
            durations.append(time.perf_counter() - began)
        during = await ticker.stop()

        snapshot = store._storage.snapshot()
        ticker.start()
        for _ in range(3):
            await asyncio.to_thread(json.dumps, snapshot, separators=(",", ":"))
            await asyncio.sleep(0.05)
        old_way = await ticker.stop()
        store.close()

    print(line("baseline: the loop idle", idle))
    print(line(f"{checkpoints} background checkpoints (this store)", during))
    print(line("reference: one json.dumps in a thread (before)", old_way))
    print(f"checkpoint duration: median {statistics.median(durations) * 1000:.0f} ms")
    verdict = "met" if max(during) <= 20 else "NOT met"
    print(f"target: every stall ≤ 20 ms during checkpoints: {verdict} (worst {max(during):.1f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainings", type=int, default=10_000)
    parser.add_argument("--checkpoints", type=int, default=12)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.trainings, arguments.checkpoints))
