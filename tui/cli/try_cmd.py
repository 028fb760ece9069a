"""`replitrack try ID_OR_OWNER/NAME --prompt TEXT [-i key=value ...] [--out DIR] [--json]`: run a
prediction on the version a training produced, follow it, download every output file into DIR,
print their paths. Exit 0 succeeded, 1 failed (or a download failed), 2 canceled, as `logs --follow`.

The try is kept with the training (its gallery in the app) when this command may write the store;
while a replitrack instance owns the store, the prediction still runs and its files still land in
DIR, but it is not added to the gallery (said on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from core.errors import BadArgumentError
from tui.cli import _common as c
from tui.cli import _output as o

DEFAULT_OUT = "replitrack-outputs"


def register(subparsers: Any) -> None:
    parser = c.add_command(
        subparsers, "try", run, help="run the trained model once: a prediction on its new version",
        description="Run a prediction on the version a training produced (ID, or a destination owner/name "
                    "for its latest training), follow it, and save every output file into --out. Prints the "
                    "files' paths (a text output is printed). Exit 0 succeeded, 1 failed, 2 canceled.")
    parser.add_argument("id", metavar="ID_OR_OWNER/NAME", help="training id, or destination owner/name")
    parser.add_argument("-p", "--prompt", required=True, metavar="TEXT", help="the prompt, e.g. 'a photo of TOK'")
    parser.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                        help="another input of the model; repeat for more (values are JSON when they parse)")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                        help=f"where to save the output files (default ./{DEFAULT_OUT}/)")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="how often to fetch the prediction while it runs (default 2)")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from tui.cli.train import parse_inputs

    if args.interval <= 0:
        raise BadArgumentError(f"--interval {args.interval}: give a positive number of seconds")
    given = parse_inputs(args.input)
    if "prompt" in given:
        raise BadArgumentError("give the prompt once: --prompt TEXT, not -i prompt=...")
    given["prompt"] = args.prompt
    return c.run_async(_run(args, given))


async def _run(args: argparse.Namespace, given: dict[str, Any]) -> int:
    import tempfile

    from core.predictions import PredictionBook, PredictionError, Tryer, check_input, output_text
    from core.store import Store

    view, _ = await c.fresh_view(args.id)
    out_dir = Path(args.out).expanduser()
    with c.open_store(write=c.store_owner() is None) as store, tempfile.TemporaryDirectory() as spare:
        record = store.get(view["id"]) or {}
        if store.readonly:
            # Someone else writes the store: run it on a scratch store that holds just this training.
            owner = c.store_owner()
            o.warn(f"{owner.describe() if owner else 'another process'} owns the store: this try is not kept "
                   "in the training's gallery (its files still go to --out)")
            scratch = Store(spare)
            scratch.put({k: v for k, v in record.items() if k != "predictions"})
            store = scratch
        async with c.make_client() as client:
            tryer = Tryer(store, client, PredictionBook(store), poll_seconds=args.interval)
            schema = await tryer.schema(record)
            inputs = check_input(given, schema, str(record.get("output_version")))
            started = await tryer.start(record, inputs)
            pid = started.prediction_id
            o.say(f"started prediction {pid} on {record.get('output_version')}")
            shown = [0]

            def on_update(child: dict[str, Any]) -> None:
                log = store.read_log(pid)
                if not args.json and len(log) > shown[0]:
                    sys.stderr.write(o.safe_text(log[shown[0]:], terminal=sys.stderr.isatty()))
                    sys.stderr.flush()
                shown[0] = len(log)

            try:
                final = await tryer.follow(pid, on_update)
            except (asyncio.CancelledError, KeyboardInterrupt):
                o.warn(f"interrupted: prediction {pid} goes on at Replicate (its outputs were not downloaded)")
                raise
            status = str(final.get("status"))
            files: list[Path] = []
            error: str | None = None
            if status == "succeeded":
                try:
                    files = await tryer.download(pid, out_dir)
                except PredictionError as failed:
                    error = str(failed)
            text = output_text(final.get("output"))
        if args.json:
            o.print_json({"id": pid, "training_id": record.get("id"), "version": record.get("output_version"),
                          "status": status, "input": final.get("input"), "output": final.get("output"),
                          "error": final.get("error") or error, "files": [str(p) for p in files],
                          "metrics": final.get("metrics") or {},
                          "billed_seconds": (final.get("metrics") or {}).get("predict_time")})
        else:
            for path in files:
                print(path)
            if text is not None:
                print(text)
        if error is not None:
            o.warn(error)
            return c.EXIT_FAILED
        if status != "succeeded":
            o.warn(f"prediction {pid} {status}" + (f": {final.get('error')}" if final.get("error") else "")
                   + (" (run it again, or change the inputs)" if status == "failed" else ""))
        elif not files and text is None:
            o.warn(f"prediction {pid} succeeded without output files")
        return c.exit_code_for(status)
