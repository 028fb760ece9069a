"""`replitrack progress LOGFILE`: what the parser sees in a saved training log."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from core import formats
from core.errors import ReplitrackError
from core.models import Status, utcnow
from tui.cli import _common as c

STATUSES = ("starting", "processing", "succeeded", "failed", "canceled", "aborted")


class LogFileError(ReplitrackError):
    """The log file given on the command line cannot be read (exit 1)."""


def register(subparsers: Any) -> None:
    parser = c.add_command(  # usage errors exit 64, like every command
        subparsers,
        "progress",
        run,
        help="parse a saved training log and show stage, step, progress and ETA",
        description=(
            "Parse a training log saved from Replicate and print what replitrack reads in it: "
            "stage, step/total, train and overall percent, ETA, last loss and lr."
        ),
    )
    parser.add_argument("logfile", metavar="LOGFILE", help="the log, as text (a first '# source:' line is skipped)")
    c.add_json_flag(parser)
    parser.add_argument(
        "--elapsed",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds since the training started (default: unknown; the ETA then comes from the bar only)",
    )
    parser.add_argument(
        "--status", choices=STATUSES, default="processing", help="the training's status (default: processing)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), got {text!r}")
    return value


def read_log(path: str) -> str:
    """The log text; a first line `# source: …` (as in the reference excerpts) is not part of it."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise LogFileError(f"no such log file: {path}. Check the path, or save the log there first.") from None
    except IsADirectoryError:
        raise LogFileError(f"{path} is a directory, not a log file. Give the path of a text file.") from None
    except OSError as error:
        raise LogFileError(
            f"cannot read the log file {path}: {error.strerror or error}. Check its permissions."
        ) from None
    if text.startswith("# source:"):
        newline = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=len(text))
        text = text[newline + 1 :]
    return text


def run(args: argparse.Namespace) -> int:
    from core.progress import ProgressTracker  # the parser and statistics: loaded when run, for start-up time

    text = read_log(args.logfile)
    if text and not text.endswith(("\n", "\r")):
        text += "\n"  # a saved file is complete: its last line is not still being written
    now = utcnow()
    started_at = now - timedelta(seconds=args.elapsed) if args.elapsed is not None else None
    tracker = ProgressTracker()
    progress = tracker.update(text, Status(args.status), now=now, started_at=started_at, created_at=None)
    if args.json:
        print(json.dumps(progress.to_dict()))
        return 0
    state = tracker.state
    rows = [
        ("stage", f"{progress.stage} ({progress.stage.label})"),
        ("step", _step(progress.step, progress.total_steps)),
        ("train", _percent(progress.train_percent)),
        ("overall", _percent(progress.overall_percent)),
        ("eta", formats.duration(progress.eta_seconds)),
        ("rate", f"{progress.rate:.3g} steps/s" if progress.rate else "–"),
        ("loss", f"{progress.loss:.4g}" if progress.loss is not None else "–"),
        ("lr", f"{progress.lr:.4g}" if progress.lr is not None else "–"),
        ("lines", str(state.lines)),
    ]
    if progress.estimated:
        rows.append(("note", "overall is a guess from the clock alone: the log shows no progress"))
    if state.error_lines:
        rows.append(("error", state.error_lines[-1]))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _step(step: int | None, total: int | None) -> str:
    if step is None:
        return f"– / {total}" if total else "–"
    return f"{step} / {total}" if total else str(step)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} %"
