"""`--on-complete CMD` / `--on-fail CMD`: a user command run with the training as JSON on stdin."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

HOOK_TIMEOUT = 300.0  # a hook that hangs must not pile up processes forever


async def run_hook(command: str, view: dict[str, Any]) -> int:
    """Run `command` through the shell, the training's JSON on stdin; returns its exit code."""
    env = dict(os.environ, REPLITRACK_TRAINING_ID=str(view.get("id", "")),
               REPLITRACK_STATUS=str(view.get("status", "")))
    process = await asyncio.create_subprocess_shell(
        command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    payload = json.dumps(view, default=str).encode() + b"\n"
    try:
        await asyncio.wait_for(process.communicate(payload), HOOK_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
    return process.returncode if process.returncode is not None else -1
