"""A simulated Replicate on loopback: the trainings API, trainer logs, webhooks and faults.

    sim = Simulator(speed=10, seed=0)
    base_url = await sim.start()          # http://127.0.0.1:PORT
    await sim.run_scenario("demo")
    ...
    await sim.stop()
"""

from .errors import (
    BadFaultSpecError,
    PortInUseError,
    RequestRejectedError,
    SimulatorError,
    UnknownScenarioError,
    UnknownTrainingError,
)
from .faults import FAULT_FLAGS, Faults
from .scenarios import SCENARIOS
from .schemas import TRAINERS
from .scripts import SCRIPTS
from .server import DEFAULT_OWNER, DEFAULT_TOKEN, Simulator
from .webhooks import Delivery

__all__ = [
    "BadFaultSpecError",
    "DEFAULT_OWNER",
    "DEFAULT_TOKEN",
    "Delivery",
    "FAULT_FLAGS",
    "Faults",
    "PortInUseError",
    "RequestRejectedError",
    "SCENARIOS",
    "SCRIPTS",
    "Simulator",
    "SimulatorError",
    "TRAINERS",
    "UnknownScenarioError",
    "UnknownTrainingError",
]
