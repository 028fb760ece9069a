"""`replitrack progress LOGFILE`, run as a real process on the reference excerpts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthlog import flux_log

LOGS = Path(__file__).resolve().parent / "fixtures" / "trainers"
ROOT = Path(__file__).resolve().parent.parent


def replitrack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "progress", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def as_json(*args: str) -> dict[str, object]:
    result = replitrack(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fields(stdout: str) -> dict[str, str]:
    """The aligned `name  value` lines of the text output."""
    rows = [line.split(None, 1) for line in stdout.splitlines() if line.strip()]
    return {name: value.strip() for name, value in rows}


def test_flux_step_line_as_text() -> None:
    result = replitrack(str(LOGS / "flux-training-step-line.txt"))
    assert result.returncode == 0 and result.stderr == ""
    out = fields(result.stdout)
    assert out["stage"].startswith("training")
    assert out["step"] == "2482 / 3000"
    assert out["train"].startswith("82.73")
    assert out["overall"].startswith("80.32")
    assert out["loss"] == "0.2472" and float(out["lr"]) == pytest.approx(4e-4)
    assert out["eta"] == "9m 34s"  # the bar's 09:04 plus the finishing allowance
    assert out["rate"].startswith("0.952")
    # the values line up in one column
    starts = {line.index(value) for line, value in zip(result.stdout.splitlines(), out.values())}
    assert len(starts) == 1


def test_flux_step_line_as_json() -> None:
    data = as_json(str(LOGS / "flux-training-step-line.txt"))
    assert {"stage", "step", "total_steps", "train_percent", "overall_percent", "eta_seconds", "loss", "lr"} <= set(data)
    assert data["stage"] == "training"
    assert (data["step"], data["total_steps"]) == (2482, 3000)
    assert data["train_percent"] == pytest.approx(82.73)
    assert data["overall_percent"] == 80.32
    assert data["loss"] == pytest.approx(0.2472) and data["lr"] == pytest.approx(4e-4)
    assert data["eta_seconds"] == 574.0


def test_first_poll_says_downloading() -> None:
    data = as_json(str(LOGS / "flux-first-poll.txt"))
    assert data["stage"] == "downloading" and data["step"] is None and data["eta_seconds"] is None
    assert "downloading" in fields(replitrack(str(LOGS / "flux-first-poll.txt")).stdout)["stage"]


def test_config_dump_knows_the_total_before_training() -> None:
    data = as_json(str(LOGS / "flux-config-dump-excerpt.txt"))
    assert data["stage"] in ("loading", "preparing")
    assert data["total_steps"] == 1000 and data["step"] is None and data["train_percent"] is None
    assert 5 <= data["overall_percent"] <= 10


def test_elapsed_and_status(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("Setting up\n")
    assert as_json(str(empty))["overall_percent"] == 0.0  # no time known, nothing parsed
    assert as_json(str(empty), "--elapsed", "120")["overall_percent"] == pytest.approx(14.0, abs=0.3)
    done = as_json(str(LOGS / "flux-training-step-line.txt"), "--status", "succeeded")
    assert (done["stage"], done["overall_percent"], done["eta_seconds"]) == ("succeeded", 100.0, None)  # finished: no ETA
    failed = as_json(str(LOGS / "flux-training-step-line.txt"), "--status", "failed")
    assert (failed["stage"], failed["overall_percent"], failed["eta_seconds"]) == ("failed", 80.32, None)


def test_a_whole_synthetic_run_with_crlf_and_no_final_newline(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(flux_log(300).replace("\n", "\r\n").rstrip("\r\n").encode())
    data = as_json(str(log))
    assert data["stage"] == "saving" and (data["step"], data["total_steps"]) == (300, 300)
    assert data["overall_percent"] == 95.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/train.log"], "no such log file: /nonexistent/train.log"),
        (["{tmp}"], "is a directory"),
    ],
)
def test_unreadable_file_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = replitrack(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.startswith("replitrack: ")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_bad_arguments_are_usage_errors() -> None:
    for args in (["--elapsed", "soon", "x.log"], ["--status", "running", "x.log"], []):
        result = replitrack(*args)
        assert result.returncode == 64, result.stderr  # the project's usage exit code, not 2 ("canceled")
        assert "usage:" in result.stderr and "Traceback" not in result.stderr
