"""Trying a trained model: predictions on the version a training produced.

A prediction is a child of the training it tries: it is kept in that training's record, under
`predictions` (oldest first), its log in the store's log directory like a training's, its output
files under `<store>/outputs/<training id>/<prediction id>/`. News about a prediction (a webhook,
a poll, the create answer) goes through the same Updater.apply as a training's: the Updater
hands it to the PredictionBook when the body belongs to a prediction (a known prediction id, or
an unknown id whose `version` is the output version of a stored training: the answer to a
create may arrive after the prediction's first webhook). The same rules hold: a webhook id seen
before changes nothing, status only moves forward, a terminal status is final, a log only grows.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.errors import BadArgumentError, NotFoundError, ReplitrackError
from core.models import WEBHOOK_EVENTS, Outcome, Source, Status, format_time, parse_time, utcnow

if TYPE_CHECKING:
    from core.client import ReplicateClient
    from core.store import Store

OUTPUTS_DIR = "outputs"
PREDICTIONS_KEY = "predictions"  # in a training's record: its predictions, oldest first
POLL_SECONDS = 2.0  # with no news for this long, a followed prediction is fetched
DOWNLOAD_LIMIT = 512 * 1024 * 1024
_HEX_VERSION = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")



class PredictionError(ReplitrackError):
    """A try that could not be made or did not give a result (the message says what to do)."""


@dataclass(frozen=True)
class PredictionUpdate:
    prediction_id: str
    training_id: str
    outcome: Outcome
    source: Source
    record: dict[str, Any] | None  # the prediction as stored
    new_log: str = ""
    became_terminal: bool = False

    @property
    def accepted(self) -> bool:
        return self.outcome in ("created", "updated", "unchanged")


def version_id(output_version: str | None) -> str | None:
    """`owner/name:abc…` → `abc…` (the id a prediction body carries as `version`)."""
    if not output_version:
        return None
    return output_version.rpartition(":")[2] or None


class PredictionBook:
    """The predictions of the store's trainings: where each belongs, merging news, telling."""

    def __init__(self, store: Store, *, clock: Callable[[], Any] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self._versions: dict[str, str] | None = None  # output version id → training id
        self._parents: dict[str, str] = {}  # prediction id → training id
        self._subscribers: list[Callable[[PredictionUpdate], None]] = []
        self._changed: dict[str, asyncio.Event] = {}

    # ----- where predictions belong ------------------------------------------------------------
    def _index(self) -> dict[str, str]:
        if self._versions is None:  # built once, from what the store holds; kept up to date after
            self._versions = {}
            for record in self.store.trainings():
                if vid := version_id(record.get("output_version")):
                    self._versions[vid] = record["id"]
                for child in record.get(PREDICTIONS_KEY) or ():
                    self._parents[child["id"]] = record["id"]
        return self._versions

    def note_training(self, record: Mapping[str, Any]) -> None:
        """A training record was stored: remember its output version and its predictions."""
        if self._versions is None:
            return  # the index is built from the store when first needed, this record included
        if vid := version_id(record.get("output_version")):
            self._versions[vid] = record["id"]
        for child in record.get(PREDICTIONS_KEY) or ():
            self._parents[child["id"]] = record["id"]

    def parent_of(self, data: Mapping[str, Any]) -> str | None:
        """The training a prediction body belongs to, or None when it is not one of ours."""
        pid = data.get("id")
        if not isinstance(pid, str):
            return None
        index = self._index()  # two dict lookups for a training's webhook: it stays cheap
        if pid in self._parents:
            return self._parents[pid]
        version = data.get("version")
        parent = index.get(version) if isinstance(version, str) else None
        if parent is None or self.store.get(pid) is not None:
            return None  # a training (one trained on a version of our own, too)
        return parent

    def predictions(self, training_id: str) -> list[dict[str, Any]]:
        record = self.store.get(training_id) or {}
        return [dict(child) for child in record.get(PREDICTIONS_KEY) or ()]

    def get(self, prediction_id: str) -> tuple[str, dict[str, Any]] | None:
        self._index()
        parent = self._parents.get(prediction_id)
        if parent is None:
            return None
        for child in self.predictions(parent):
            if child["id"] == prediction_id:
                return parent, child
        return None

    # ----- news --------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[PredictionUpdate], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def apply(self, data: Mapping[str, Any], *, source: Source, webhook_id: str | None = None,
              parent: str | None = None) -> PredictionUpdate | None:
        """Merge a prediction body into its training's record; None when it is not a prediction
        of a stored training (then it is a training, for the Updater)."""
        parent = parent or self.parent_of(data)
        if parent is None:
            return None
        pid = str(data["id"])
        if webhook_id is not None and self.store.seen_webhook(webhook_id):
            return self._tell(PredictionUpdate(pid, parent, "duplicate", source, self._child(parent, pid)))
        if webhook_id is not None:
            self.store.remember_webhook(webhook_id)
        training = self.store.get(parent)
        if training is None:
            return None
        children = [dict(child) for child in training.get(PREDICTIONS_KEY) or ()]
        at = next((i for i, child in enumerate(children) if child["id"] == pid), None)
        before = children[at] if at is not None else None
        status = Status.parse(data.get("status"))
        old = Status.parse(before["status"]) if before else None
        if old is not None and status.rank < old.rank:
            return self._tell(PredictionUpdate(pid, parent, "stale", source, before))
        if old is not None and old.terminal and status != old:
            return self._tell(PredictionUpdate(pid, parent, "final", source, before))
        logs = data.get("logs")
        new_log = self.store.extend_log(pid, logs) if isinstance(logs, str) and logs else ""
        record = _merge(before, data, self.clock())
        changed = record != before
        if changed:
            if at is None:
                children.append(record)
            else:
                children[at] = record
            training[PREDICTIONS_KEY] = children
            self.store.put(training)
            self._parents[pid] = parent
        outcome: Outcome = "created" if before is None else ("updated" if changed or new_log else "unchanged")
        ended = status.terminal and (old is None or not old.terminal)
        return self._tell(PredictionUpdate(pid, parent, outcome, source, record, new_log, ended))

    def set_files(self, training_id: str, prediction_id: str, files: list[str], *, error: str | None = None) -> None:
        """Record where a prediction's outputs were saved (paths relative to the store), or why not."""
        training = self.store.get(training_id)
        if training is None:
            return
        children = [dict(child) for child in training.get(PREDICTIONS_KEY) or ()]
        for child in children:
            if child["id"] == prediction_id:
                child["files"] = list(files)
                child["download_error"] = error
        training[PREDICTIONS_KEY] = children
        self.store.put(training)
        if (found := self.get(prediction_id)) is not None:
            self._tell(PredictionUpdate(prediction_id, training_id, "updated", "download", found[1]))

    async def changed(self, prediction_id: str, timeout: float) -> bool:
        """Wait until the prediction changes (True) or `timeout` seconds pass (False)."""
        event = self._changed.setdefault(prediction_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            event.clear()

    def _child(self, parent: str, pid: str) -> dict[str, Any] | None:
        return next((c for c in self.predictions(parent) if c["id"] == pid), None)

    def _tell(self, update: PredictionUpdate) -> PredictionUpdate:
        if update.accepted and (event := self._changed.get(update.prediction_id)) is not None:
            event.set()
        for callback in list(self._subscribers):
            callback(update)
        return update


def _merge(before: dict[str, Any] | None, data: Mapping[str, Any], now: Any) -> dict[str, Any]:
    record = dict(before or {})
    urls: Mapping[str, Any] = data.get("urls") or {}
    urls = urls if isinstance(urls, Mapping) else {}
    status = Status.parse(data.get("status"))
    record.update(
        id=data["id"],
        status=str(status),
        model=data.get("model") or record.get("model"),
        version=data.get("version") or record.get("version"),
        input=data.get("input") if isinstance(data.get("input"), dict) else record.get("input") or {},
        output=data.get("output") if data.get("output") is not None else record.get("output"),
        error=data.get("error") or record.get("error"),
        created_at=format_time(parse_time(data.get("created_at"))) or record.get("created_at") or format_time(now),
        started_at=format_time(parse_time(data.get("started_at"))) or record.get("started_at"),
        completed_at=format_time(parse_time(data.get("completed_at"))) or record.get("completed_at"),
        metrics=data.get("metrics") or record.get("metrics") or {},
        web_url=urls.get("web") or record.get("web_url"),
    )
    record.setdefault("files", [])
    if status.terminal and not record.get("completed_at"):
        record["completed_at"] = format_time(now)
    return record


# ---------------------------------------------------------------------------------------------
# Inputs: what the trained version takes, and what the prompt starts as


def input_schema(version: Mapping[str, Any]) -> dict[str, Any]:
    """The `Input` schema of a version object (GET /v1/models/{o}/{n}/versions/{id})."""
    openapi: Mapping[str, Any] = version.get("openapi_schema") or {}
    openapi = openapi if isinstance(openapi, Mapping) else {}
    schema = (openapi.get("components") or {}).get("schemas", {}).get("Input")
    if not isinstance(schema, dict):
        raise PredictionError("this version publishes no Input schema, so replitrack cannot tell what it takes: "
                              "try it on its Replicate page")
    return schema


def prompt_for(training: Mapping[str, Any]) -> str:
    """A first prompt that uses the trigger word the training taught (`a photo of TOK`)."""
    inputs = training.get("input") or {}
    word = next((str(inputs[k]) for k in ("trigger_word", "token_string", "trigger") if inputs.get(k)), "")
    if not word and str(training.get("trainer", "")).startswith("ostris/flux"):
        word = "TOK"  # the flux trainer's default trigger word
    return f"a photo of {word}" if word else ""


def main_inputs(schema: Mapping[str, Any], limit: int = 5) -> dict[str, Any]:
    """The first few inputs (by x-order) other than the prompt, with their defaults."""
    properties = schema.get("properties") or {}
    ordered = sorted(properties, key=lambda n: (properties[n] or {}).get("x-order", 10_000))
    chosen = {}
    for name in ordered:
        prop = properties[name] or {}
        if name == "prompt" or prop.get("format") == "uri":
            continue
        chosen[name] = prop.get("default")
        if len(chosen) >= limit:
            break
    return chosen


def check_input(given: Mapping[str, Any], schema: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Refuse what the version would refuse, before sending: an empty prompt, then core.inputs'
    one set of rules (typed text read by the input's type; unknown names, types, ranges)."""
    from core import inputs  # jsonschema: loaded when a try is checked, for start-up time

    properties: Mapping[str, Any] = schema.get("properties") or {}
    if "prompt" in properties and not str(given.get("prompt") or "").strip():
        raise BadArgumentError("the prompt is empty: write what to generate, e.g. --prompt 'a photo of TOK'")

    def value(prop: Mapping[str, Any], given: Any) -> Any:
        # typed text (the CLI's -i, the TUI's fields) by core.inputs' rule; a whole float given
        # to an integer input (`2.0` from JSON) is that integer, as Cog reads it
        if isinstance(given, str):
            return inputs.from_text(prop, given)
        if isinstance(given, float) and given.is_integer() and prop.get("type") == "integer":
            return int(given)
        return given

    values = {name: value(inputs.spec(schema, name), typed) for name, typed in given.items()}
    return inputs.check(schema, values, trainer=what)


# ---------------------------------------------------------------------------------------------
# Running a try: create, follow (webhooks, polling as the fallback), download


@dataclass
class Tryer:
    """Runs predictions of a stored training's version for a front end (the TUI, `replitrack try`)."""

    store: Store
    client: ReplicateClient
    book: PredictionBook
    webhook_url: Callable[[], str | None] = lambda: None
    poll_seconds: float = POLL_SECONDS
    commit: Callable[[], Any] | None = None  # async: make what was applied durable
    _polls: int = field(default=0, init=False)

    async def schema(self, training: Mapping[str, Any]) -> dict[str, Any]:
        output = training.get("output_version")
        if not output or training.get("status") != "succeeded":
            raise PredictionError(f"training {training.get('id')} has no trained version to try "
                                  f"(it is {training.get('status')}): try a training that succeeded")
        model, _, vid = str(output).rpartition(":")
        return input_schema(await self.client.get_model_version(model, vid))

    async def start(self, training: Mapping[str, Any], given: Mapping[str, Any]) -> PredictionUpdate:
        """Create the prediction on the training's version; its record is stored at once."""
        output = str(training.get("output_version") or "")
        webhook = self.webhook_url()
        raw = await self.client.create_prediction_raw(
            output, given, webhook=webhook, webhook_events_filter=list(WEBHOOK_EVENTS) if webhook else None)
        update = self.book.apply(raw, source="create", parent=str(training["id"]))
        assert update is not None  # the parent was given
        await self._commit()
        return update

    async def follow(self, prediction_id: str, on_update: Callable[[dict[str, Any]], None] | None = None
                     ) -> dict[str, Any]:
        """Until the prediction ends: webhooks when they come, else a fetch every poll_seconds."""
        while True:
            found = self.book.get(prediction_id)
            if found is None:
                raise PredictionError(f"prediction {prediction_id} is not in the store")
            parent, record = found
            if on_update is not None:
                on_update(record)
            if Status.parse(record.get("status")).terminal:
                return record
            if not await self.book.changed(prediction_id, self.poll_seconds):
                await self.refresh(prediction_id, parent)

    async def refresh(self, prediction_id: str, parent: str) -> None:
        try:
            raw = await self.client.get_prediction_raw(prediction_id)
        except NotFoundError:
            raise PredictionError(f"prediction {prediction_id} is gone from Replicate (404)") from None
        self._polls += 1
        self.book.apply(raw, source="poll", parent=parent)
        await self._commit()

    async def cancel(self, prediction_id: str) -> None:
        found = self.book.get(prediction_id)
        raw = await self.client.cancel_prediction_raw(prediction_id)
        self.book.apply(raw, source="cancel", parent=found[0] if found else None)
        await self._commit()

    async def download(self, prediction_id: str, out_dir: Path | None = None) -> list[Path]:
        """Save every output file (URLs in `output`) under the store, and copy them into out_dir.

        Raises PredictionError naming the file and the reason when one cannot be fetched or
        written; what was saved before stays."""
        found = self.book.get(prediction_id)
        if found is None:
            raise PredictionError(f"prediction {prediction_id} is not in the store")
        parent, record = found
        urls = output_urls(record.get("output"))
        folder = self.store.home / OUTPUTS_DIR / parent / prediction_id
        saved: list[Path] = []
        copies: list[Path] = []
        error: str | None = None
        try:
            for index, url in enumerate(urls):
                name = file_name(url, index)
                target = folder / name
                if not target.exists():
                    await self._fetch(url, target)
                saved.append(target)
                if out_dir is not None:
                    copy = Path(out_dir) / f"{prediction_id}-{name}"
                    _write_file(copy, target.read_bytes())
                    copies.append(copy)
        except PredictionError as failed:
            error = str(failed)
            raise
        finally:
            self.book.set_files(parent, prediction_id, [str(p.relative_to(self.store.home)) for p in saved],
                                error=error)
            await self._commit()
        return copies if out_dir is not None else saved

    async def _fetch(self, url: str, target: Path) -> None:
        import httpx

        # The API's token only goes to the API's own host (the simulator serves its outputs
        # there); Replicate's file host gets no credentials.
        same = urlsplit(url)[:2] == urlsplit(self.client.base_url)[:2]
        headers = {"Authorization": f"Bearer {self.client.token}"} if same and self.client.token else {}
        try:
            async with httpx.AsyncClient(follow_redirects=True, timeout=60) as http:
                async with http.stream("GET", url, headers=headers) as response:
                    if response.status_code != 200:
                        raise PredictionError(f"could not download {url}: {response.status_code} "
                                              f"{response.reason_phrase} (outputs of API predictions are kept "
                                              "for an hour: run the prediction again)")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > DOWNLOAD_LIMIT:
                            raise PredictionError(f"could not download {url}: larger than {DOWNLOAD_LIMIT >> 20} MiB")
                        chunks.append(chunk)
        except httpx.HTTPError as error:
            raise PredictionError(f"could not download {url}: {error or type(error).__name__}; "
                                  "check your connection and run it again") from None
        _write_file(target, b"".join(chunks))

    async def _commit(self) -> None:
        if self.commit is not None:
            await self.commit()
        else:
            await self.store.commit()


def output_urls(output: Any) -> list[str]:
    """The file URLs in an output (a URL, or a list of them); text outputs have none."""
    items = output if isinstance(output, list) else [output]
    return [item for item in items if isinstance(item, str) and item.startswith(("https://", "http://"))]


def output_text(output: Any) -> str | None:
    """A text output (a string, or a list of tokens as streaming language models give)."""
    if isinstance(output, str) and not output_urls(output):
        return output
    if isinstance(output, list) and output and all(isinstance(i, str) for i in output) and not output_urls(output):
        return "".join(output)
    return None


def file_name(url: str, index: int) -> str:
    base = os.path.basename(urlsplit(url).path) or f"output-{index}"
    return _SAFE_NAME.sub("_", base)[:120]


def _write_file(path: Path, data: bytes) -> None:
    """Write whole or not at all (temporary file, then rename); a failure names the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as error:
        raise PredictionError(f"could not save {path}: {error.strerror or error}; free some space or choose "
                              "another folder (--out)") from None

