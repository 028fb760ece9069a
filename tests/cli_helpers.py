"""Running the real `replitrack` command for the CLI tests.

`run` calls the real entry point, `main(argv)`, in a worker thread of this process, with the
command's environment, stdout and stderr of its own: what a subprocess would do, without paying
for a new interpreter each time (most of the suite's time went there). Where the process itself is
the point (signals, a terminal, a closed pipe, a second process beside an owner), `start` and
`run(..., process=True)` start a real one. Either way the simulator (or listener) running in the
test's event loop keeps serving while the command talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import threading
import traceback
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


_ONE_AT_A_TIME = threading.Lock()  # a command in this process owns os.environ and sys.stdout/err


def _run_here(args: tuple[str, ...], env: dict[str, str]) -> Result:
    from tui.cli.main import main

    with _ONE_AT_A_TIME:
        saved = dict(os.environ)
        out, err = io.StringIO(), io.StringIO()
        os.environ.clear()
        os.environ.update(env)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(list(args))
                except SystemExit as exit:  # argparse's usage errors, --help, --version
                    code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
                except BaseException:  # what the interpreter would print before dying
                    traceback.print_exc()
                    code = 1
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return Result(code, out.getvalue(), err.getvalue())


async def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0,
              process: bool = False) -> Result:
    """Run `replitrack ARGS...` to completion (see the module docstring for `process`)."""
    if not process:
        try:
            result = await asyncio.wait_for(asyncio.to_thread(_run_here, args, env or cli_env()), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"replitrack {' '.join(args)} did not finish in {timeout} s") from None
        assert "Traceback" not in result.err, f"replitrack {' '.join(args)} crashed:\n{result.err}"
        return result
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
