"""`replitrack sim`: run the simulated Replicate on loopback until Ctrl+C."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from tui.cli._common import speed_factor

# Kept in step with simulator.SCENARIOS (a test checks); not imported here so that
# `replitrack --help` does not load aiohttp.
SCENARIO_HELP = (
    "start with a named situation: demo (flux succeeding, SDXL, one failing, one queued), "
    "flaky (the demo with throttling, 5xx and misbehaving webhooks), "
    "many (150 past trainings and one running)"
)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535 (0 picks a free port)")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated Replicate on this machine (no account, no network)",
        description=(
            "Serve Replicate's trainings API on 127.0.0.1 with realistic trainer logs, signed "
            "webhooks and optional faults, for demos and tests. Point any Replicate client at it "
            "with REPLICATE_BASE_URL and REPLICATE_API_TOKEN."
        ),
    )
    parser.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--speed", type=speed_factor, default=1.0,
                        help="how much faster than real time trainings run (default 1; 10 runs a 1,000-step flux training in about 2 minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, logs and faults (same seed, same run)")
    parser.add_argument("--scenario", metavar="NAME", help=SCENARIO_HELP)
    parser.add_argument("--webhook", metavar="URL", help="send the scenario's trainings' webhooks (all events) to this URL")
    parser.add_argument(
        "--fault", metavar="NAME=VALUE", action="append", default=[],
        help="inject a fault, repeatable: throttle=0.1, throttle-next=3, error=0.05, error-next=2, "
             "error-status=503, slow=0.5, drop-webhooks=0.1, duplicate-webhooks=0.1, "
             "reorder-webhooks=0.1 (each also as NAME-next=N), stuck-next=1, methods=GET",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from simulator import Simulator  # aiohttp and the simulator: loaded when used, for start-up time

    simulator = Simulator(speed=args.speed, seed=args.seed, scenario=None)
    if args.scenario:
        from simulator import SCENARIOS, UnknownScenarioError  # aiohttp and the simulator: loaded when used, for start-up time

        if args.scenario not in SCENARIOS:
            raise UnknownScenarioError(
                f"unknown scenario {args.scenario!r}. Choose one of: {', '.join(sorted(SCENARIOS))}."
            )
    for spec in args.fault:
        simulator.faults.apply(spec)
    try:
        asyncio.run(_serve(simulator, args))
    except KeyboardInterrupt:  # a second Ctrl+C while stopping
        pass
    print("Simulator stopped.", flush=True)
    return 0


async def _serve(simulator: Any, args: argparse.Namespace) -> None:
    await simulator.start(port=args.port)
    try:
        created = []
        if args.scenario:
            created = await simulator.run_scenario(args.scenario, webhook=args.webhook)
        _announce(simulator, args, len(created))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not on this platform: Ctrl+C still raises
                pass
        await stop.wait()
    finally:
        await simulator.stop()


def _announce(simulator: Any, args: argparse.Namespace, created: int) -> None:
    details = [f"speed {args.speed:g}x", f"seed {args.seed}"]
    if args.scenario:
        details.append(f"scenario {args.scenario} ({created} trainings)")
    lines = [
        f"Simulated Replicate running at {simulator.base_url}",
        "  " + " · ".join(details),
        f"  API token:      {simulator.token}",
        f"  webhook secret: {simulator.webhook_secret}",
    ]
    if args.fault:
        lines.append(f"  faults:         {' '.join(args.fault)}")
    lines += [
        "Point a client at it:",
        f"  export REPLICATE_BASE_URL={simulator.base_url} REPLICATE_API_TOKEN={simulator.token}",
        "Press Ctrl+C to stop.",
    ]
    print("\n".join(lines), flush=True)
