"""The stand-in ngrok agent for the test suite (see agent.py) and a helper that installs it."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parent / "agent.py"


def install_fake_ngrok(directory: Path) -> Path:
    """An executable `ngrok` in `directory` that runs the stand-in with this interpreter."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ngrok"
    path.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(AGENT)!r}\n"
                    f"runpy.run_path({str(AGENT)!r}, run_name='__main__')\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
