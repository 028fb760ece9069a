"""Running the real `replitrack` command as a subprocess, for the CLI tests.

Subprocesses are started with asyncio so that a simulator (or listener) running in the test's
event loop keeps serving while the command talks to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli_env(base_url: str | None = None, token: str | None = None, **extra: str) -> dict[str, str]:
    """The test's environment (its REPLITRACK_HOME), pointed at a simulated Replicate."""
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    # Let the subprocesses cache their bytecode: compiling httpx & co. from source on every run
    # would triple each command's start-up time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONUNBUFFERED"] = "1"
    if base_url is not None:
        env["REPLICATE_BASE_URL"] = base_url
    if token is not None:
        env["REPLICATE_API_TOKEN"] = token
    env.update(extra)
    return env


async def start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", *args, cwd=ROOT, env=env or cli_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> Result:
    """Run `replitrack ARGS...` to completion."""
    process = await start(*args, env=env)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(f"replitrack {' '.join(args)} did not finish in {timeout} s\n"
                             f"stdout: {out.decode()[-2000:]}\nstderr: {err.decode()[-2000:]}") from None
    result = Result(process.returncode or 0, out.decode(), err.decode())
    assert "Traceback" not in result.err, f"replitrack {' '.join(args)} crashed:\n{result.err}"
    return result
