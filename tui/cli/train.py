"""`replitrack train TRAINER[:VERSION] --destination owner/name [--images DIR|ZIP|URL] [-i key=value ...]
[--webhook URL | --listen] [--watch] [--create-destination]`: start a training.

Inputs given with -i are read by each input's type in the trainer's schema (core.inputs) and
checked against the trainer's TrainingInput schema before anything is uploaded or
started. A folder of images is zipped in memory and uploaded with the files API.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.models import OWNER_NAME, WEBHOOK_EVENTS
from core.errors import BadArgumentError, NotFoundError, ReplitrackError
from core.views import status_view
from tui.cli import _common as c
from tui.cli.watch import report_started
from tui.cli import _output as o

IMAGES_KEY = "input_images"


def register(subparsers: Any) -> None:
    parser = c.add_command(
        subparsers, "train", run, help="start a training (prints the new id)",
        description="Start a training of TRAINER (owner/name, optionally :VERSION) that pushes a new "
                    "version to --destination. Prints the new training's id.")
    parser.add_argument("trainer", metavar="TRAINER[:VERSION]", help="e.g. ostris/flux-dev-lora-trainer")
    parser.add_argument("-d", "--destination", required=True, metavar="OWNER/NAME",
                        help="the model that receives the trained version")
    parser.add_argument("--images", metavar="DIR|ZIP|URL",
                        help="training images: a folder (zipped and uploaded), a .zip (uploaded) or a URL")
    parser.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                        help="a trainer input; repeat for more (values are JSON when they parse, else text)")
    hooks = parser.add_mutually_exclusive_group()
    hooks.add_argument("--webhook", metavar="URL", help="send Replicate's webhooks for this training to URL")
    hooks.add_argument("--listen", action="store_true",
                       help="have the running replitrack instance (TUI or `replitrack listen`) receive its "
                            "webhooks: uses the public URL of its tunnel")
    parser.add_argument("--watch", action="store_true", help="then follow it like `replitrack watch`")
    parser.add_argument("--create-destination", action="store_true",
                        help="create the destination model (private) if it does not exist")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="with --watch: how often to poll when no replitrack instance runs (default 5)")
    c.add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    trainer, version = split_trainer(args.trainer)
    if not OWNER_NAME.match(args.destination.strip()):
        raise BadArgumentError(f"destination {args.destination!r} is not of the form owner/name "
                               "(for example your-username/my-flux-lora)")
    if args.webhook and (urlsplit(args.webhook).scheme not in ("http", "https") or not urlsplit(args.webhook).netloc):
        raise BadArgumentError(f"webhook {args.webhook!r} is not an http(s) URL: Replicate needs a public HTTPS address")
    given = parse_inputs(args.input)
    view = c.run_async(start(trainer, version, args.destination.strip(), given, images=args.images,
                             webhook=args.webhook, listen=args.listen,
                             create_destination=args.create_destination))
    return report_started(args, view, f"started {view['id']}: {trainer} → "
                                        f"{view.get('destination') or args.destination}  {view.get('web_url') or ''}")


def split_trainer(text: str) -> tuple[str, str | None]:
    trainer, _, version = text.strip().partition(":")
    if not OWNER_NAME.match(trainer):
        raise BadArgumentError(f"trainer {text!r} is not of the form owner/name[:version] "
                               "(for example ostris/flux-dev-lora-trainer)")
    if _ and not re.fullmatch(r"[A-Za-z0-9]+", version):
        raise BadArgumentError(f"trainer version {version!r} is not a version id (64 hex characters)")
    return trainer, version or None


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs as text; core.inputs reads each by the trainer's schema once it is known."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadArgumentError(f"-i {pair!r}: write inputs as key=value, e.g. -i steps=1000")
        values[key] = raw
    return values


def check_inputs(given: dict[str, str], schema: dict[str, Any], trainer: str, *, images_later: bool) -> dict[str, Any]:
    """The typed inputs as JSON values checked against TrainingInput (core.inputs' rules); a
    missing required input is named with the flag that gives it."""
    from core.inputs import problems, values_from_text  # jsonschema: loaded when used, for start-up time

    values = values_from_text(schema, given)
    found = problems(schema, values, trainer=trainer, later=[IMAGES_KEY] if images_later else [])
    wrong = [problem.message for problem in found if problem.rule != "required"]
    if wrong:
        raise BadArgumentError("; ".join(wrong))
    missing = [problem.name for problem in found]
    if missing:
        raise BadArgumentError(
            f"{trainer} needs {', '.join(map(repr, missing))}: "
            + ("pass --images DIR|ZIP|URL" if missing == [IMAGES_KEY] else
               "pass " + " ".join(f"-i {key}=..." for key in missing))
        )
    return values


def prepare_images(images: str) -> str | tuple[Path | bytes, str, str]:
    """--images checked (and a folder zipped) before anything is sent: a URL as is, else
    (what to upload, its name, what to say while uploading)."""
    if urlsplit(images).scheme in ("http", "https"):
        return images
    path = Path(images).expanduser()
    if not path.exists():
        raise BadArgumentError(f"--images {images}: no such file or folder (give a folder, a .zip or an https URL)")
    from core.inputs import images_upload  # jsonschema: loaded when used, for start-up time

    try:
        upload, name = images_upload(path)
    except PermissionError:
        raise BadArgumentError(f"--images {images}: cannot read it (permission denied)") from None
    if isinstance(upload, Path):
        return upload, name, f"uploading {upload} …"
    return upload, name, f"uploading {name} ({len(upload) / 1024:.0f} KB, zipped from {path}) …"


async def images_url(client: Any, prepared: str | tuple[Path | bytes, str, str]) -> str:
    """A URL the trainer can download: given as is, or the upload of a zip / zipped folder."""
    if isinstance(prepared, str):
        return prepared
    content, name, note = prepared
    o.say(note)
    body = await client.upload_file(content, name, "application/zip")
    return str(body["urls"]["get"])


async def start(trainer: str, version: str | None, destination: str, given: dict[str, str], *,
                images: str | None = None, webhook: str | None = None, listen: bool = False,
                create_destination: bool = False) -> dict[str, Any]:
    owner = c.store_owner()
    if listen:
        webhook = await _listening_webhook(owner)
    if images and IMAGES_KEY in given:
        raise BadArgumentError(f"give the images once: --images or -i {IMAGES_KEY}=..., not both")
    # Every local input is checked before anything is created on Replicate (the destination).
    prepared = prepare_images(images) if images else None
    async with c.make_client() as client:
        schema = await client.training_input_schema(trainer, version)
        if images and IMAGES_KEY not in (schema.get("properties") or {}):
            raise BadArgumentError(
                f"{trainer} takes no {IMAGES_KEY}; its inputs are: {', '.join(sorted(schema.get('properties') or {}))} "
                "(pass data with -i key=URL)"
            )
        inputs = check_inputs(given, schema, trainer, images_later=bool(images))
        await _ensure_destination(client, destination, create_destination)
        if prepared is not None:
            inputs[IMAGES_KEY] = await images_url(client, prepared)
        from core.service import TrainingService  # httpx: loaded when used, for start-up time

        if owner is None:
            with c.open_store(write=True) as store:
                if not store.readonly:
                    result = await TrainingService(store, client).start(trainer, destination, inputs,
                                                                        version=version, webhook=webhook)
                    return status_view(result.record or {"id": result.training_id})
            owner = c.store_owner() or c.Owner(None, None)
        # Another instance owns the store: it starts the training (with its tunnel's webhook URL
        # when up) and so knows its destination; an owner without a local API gets it adopted.
        if owner.api:
            body = {"trainer": trainer, "version": version, "destination": destination, "input": inputs,
                    "webhook": webhook}
            return await c.LocalApi(owner).object("POST", "/api/trainings", body)
        webhook = webhook or await c.owner_webhook(owner)
        training = await client.create_training(trainer, version, destination, inputs, webhook=webhook,
                                                webhook_events_filter=list(WEBHOOK_EVENTS) if webhook else None)
    await c.adopt(owner, training.id)
    return c.view_of_training(training)


async def _listening_webhook(owner: c.Owner | None) -> str:
    """--listen: the webhook URL of the running instance's tunnel."""
    if owner is None or not owner.api:
        raise ReplitrackError(
            "--listen needs a running replitrack instance to receive the webhooks: start "
            "`replitrack listen` (or the TUI) in another terminal, or pass --webhook URL"
        )
    url = await c.owner_webhook(owner)
    if url is None:
        raise ReplitrackError(
            f"{owner.describe()} has no public webhook URL (its tunnel is off or down): start it with a "
            "tunnel (NGROK_AUTHTOKEN, or --public-url URL), or pass --webhook URL"
        )
    return url


async def _ensure_destination(client: Any, destination: str, create: bool) -> None:
    try:
        await client.get_model(destination)
        return
    except NotFoundError:
        if not create:
            raise ReplitrackError(
                f"destination model {destination} does not exist: pass --create-destination to create it "
                "(a private model), or create it at https://replicate.com/create"
            ) from None
    await client.create_model(destination)
    o.say(f"created the destination model {destination} (private)")
