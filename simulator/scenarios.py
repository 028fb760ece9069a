"""Named situations to start the simulator in (`replitrack sim --scenario NAME`, `replitrack demo`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Simulator

FLUX = "ostris/flux-dev-lora-trainer"
SDXL = "stability-ai/sdxl"
LLAMA = "meta/llama-2-7b"
DATA = "https://replicate.delivery/pbxt/"
COLD_BOOT = (20.0, 120.0)  # simulated seconds in `starting`: a cold GPU boot takes tens of seconds to minutes


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[Simulator, str | None], Awaitable[list[dict[str, Any]]]]


async def _demo(sim: Simulator, webhook: str | None) -> list[dict[str, Any]]:
    """Two past trainings, then live: flux with W&B (mid-run saves, sampling pauses), SDXL, an LLM
    fine-tune on 4 GPUs, one failing, and one queued behind them on the newest Cog runtime."""
    owner = sim.owner
    sim.boot_seconds = COLD_BOOT
    for model in ("flux-portraits", "sdxl-sketches", "llama-support", "flux-products"):
        sim.add_model(f"{owner}/{model}")
    created = [
        sim.add_finished_training(
            LLAMA, f"{owner}/llama-support", {"train_data": f"{DATA}Qm3vd7/support-chats.jsonl", "num_train_epochs": 1},
            ended_ago=3 * 86400,
        ),
        sim.add_finished_training(
            FLUX, f"{owner}/flux-portraits",
            {"input_images": f"{DATA}Jx8wQ2/portraits-v1.zip", "steps": 600, "trigger_word": "PRTRT"},
            ended_ago=26 * 3600,
        ),
    ]
    live = [
        await sim.create_training(
            FLUX, f"{owner}/flux-portraits",
            {"input_images": f"{DATA}Lk2pT9/portraits-v2.zip", "steps": 600, "trigger_word": "PRTRT",
             "wandb_api_key": "demo-key", "wandb_sample_interval": 150, "wandb_save_interval": 150},
            webhook, _events(webhook),
        ),
        await sim.create_training(
            SDXL, f"{owner}/sdxl-sketches",
            {"input_images": f"{DATA}Wz7cR4/sketches.zip", "max_train_steps": 1000, "token_string": "SKTCH"},
            webhook, _events(webhook),
        ),
        await sim.create_training(
            LLAMA, f"{owner}/llama-support",
            {"train_data": f"{DATA}Pq4sT8/support-chats-v2.jsonl", "num_train_epochs": 1},
            webhook, _events(webhook),
        ),
        await sim.create_training(
            FLUX, f"{owner}/flux-products",
            {"input_images": f"{DATA}Tb5nE1/products.zip", "steps": 1200, "lora_rank": 32, "batch_size": 2},
            webhook, _events(webhook), script="flux-fail",
        ),
    ]
    queued = await sim.create_training(
        FLUX, f"{owner}/flux-products",
        {"input_images": f"{DATA}Tb5nE1/products.zip", "steps": 500, "trigger_word": "PRDCT"},
        webhook, _events(webhook), queued_behind=[t["id"] for t in live], script="flux-raw",
    )
    return created + live + [queued]


async def _flaky(sim: Simulator, webhook: str | None) -> list[dict[str, Any]]:
    """The demo, over an unreliable network: throttling, 5xx, lost/duplicated/reordered webhooks."""
    faults = sim.faults
    faults.throttle_probability = 0.05
    faults.error_probability = 0.03
    faults.error_status = 503
    faults.drop_webhooks_probability = 0.05
    faults.duplicate_webhooks_probability = 0.1
    faults.reorder_webhooks_probability = 0.1
    return await _demo(sim, webhook)


async def _many(sim: Simulator, webhook: str | None) -> list[dict[str, Any]]:
    """150 past trainings (more than a page) and one running: for history, lists and pagination."""
    owner = sim.owner
    sim.add_model(f"{owner}/archive")
    created = []
    for index in range(150):
        trainer = (FLUX, SDXL, LLAMA)[index % 3]
        script = None if index % 7 else {FLUX: "flux-fail", SDXL: "sdxl-fail", LLAMA: "llama-fail"}[trainer]
        given: dict[str, Any] = {
            FLUX: {"input_images": f"{DATA}h{index}/set.zip", "steps": 100 + 10 * (index % 20)},
            SDXL: {"input_images": f"{DATA}h{index}/set.zip", "max_train_steps": 100 + 10 * (index % 20)},
            LLAMA: {"train_data": f"{DATA}h{index}/rows.jsonl", "max_steps": 50 + index % 50},
        }[trainer]
        created.append(
            sim.add_finished_training(trainer, f"{owner}/archive", given, script=script,
                                      ended_ago=3600.0 * (150 - index))
        )
    created.append(
        await sim.create_training(
            FLUX, f"{owner}/archive", {"input_images": f"{DATA}live/set.zip", "steps": 1000},
            webhook, _events(webhook),
        )
    )
    return created


def _events(webhook: str | None) -> list[str] | None:
    return ["start", "output", "logs", "completed"] if webhook else None


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("demo", "flux (W&B) succeeding, SDXL, an LLM, one failing, one queued; two past trainings", _demo),
        Scenario("flaky", "the demo with throttling, 5xx and misbehaving webhooks", _flaky),
        Scenario("many", "150 past trainings and one running (pagination, history)", _many),
    )
}
