"""Billed time (`metrics.predict_time`) in status objects, and an estimated cost only from prices the
user wrote in config.json (none are shipped)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import cli_env, run
from core.billing import Prices, billed_text, estimated_cost, forget_prices
from simulator import Simulator

FLUX = "ostris/flux-dev-lora-trainer"


def test_an_estimate_needs_a_price_and_the_trainers_hardware(isolated_home: Path) -> None:
    record = {"trainer": FLUX, "metrics": {"predict_time": 200.0, "total_time": 210.0}}
    assert estimated_cost(record, Prices({}, {})) is None
    assert estimated_cost(record, Prices({"gpu-h100": 0.0015}, {})) is None, "which hardware is unknown"
    assert estimated_cost(record, Prices({"gpu-h100": 0.0015}, {FLUX: "gpu-h100"})) == 0.3
    assert estimated_cost(record, Prices({"gpu-a40": 0.0007}, {"*": "gpu-a40"})) == 0.14
    assert estimated_cost({"trainer": FLUX, "metrics": {}}, Prices({"gpu-h100": 1}, {"*": "gpu-h100"})) is None
    forget_prices()
    assert billed_text(record) == "200.0 s billed"
    (isolated_home).mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.json").write_text(json.dumps({"prices_per_second": {"gpu-h100": 0.0015},
                                                           "hardware": {"*": "gpu-h100"}}))
    forget_prices()
    assert billed_text(record) == "200.0 s billed · ≈ 0.30 (estimate: gpu-h100 at your price)"
    forget_prices()


async def test_status_json_has_billed_seconds_and_the_estimate(isolated_home: Path) -> None:
    sim = Simulator(speed=1000, seed=1)
    await sim.start()
    try:
        sim.add_model("demo-user/faces")
        done = sim.add_finished_training(FLUX, "demo-user/faces", {"input_images": "https://x.test/a.zip", "steps": 30})
        env = cli_env(sim.base_url, sim.token)
        plain = (await run("status", done["id"], "--json", env=env)).json()
        assert plain["billed_seconds"] == done["metrics"]["predict_time"] and plain["estimated_cost"] is None
        (isolated_home / "config.json").write_text(json.dumps({"prices_per_second": {"gpu-h100": 0.001525},
                                                               "hardware": {FLUX: "gpu-h100"}}))
        forget_prices()  # the CLI runs in this process: a new process would read the config afresh
        priced = (await run("status", done["id"], "--json", env=env)).json()
        assert priced["estimated_cost"] == round(done["metrics"]["predict_time"] * 0.001525, 4)
    finally:
        await sim.stop()
