"""What the scriptable commands share: exit codes, argparse glue, the store and who owns it,
the Replicate client, and the local API of the instance that owns the store (output is in
`_output`).

Kept free of heavy imports (no httpx, no rich at module level) so `replitrack --help` is fast.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from core import config
from core.errors import ReplitrackError, StoreInUseError
from core.models import ID_PATTERN, Status, format_time
from core.views import status_view, tracked_status_view
from tui.cli._output import say, warn

if TYPE_CHECKING:
    from core.client import ReplicateClient
    from core.store import Store

T = TypeVar("T")

# Exit codes scripts can trust (documented in the README).
EXIT_OK = 0
EXIT_FAILED = 1  # a failed (or aborted) training, or any error
EXIT_CANCELED = 2  # a canceled training (logs --follow, watch, train --watch)
EXIT_USAGE = 64  # a bad command line or value (sysexits EX_USAGE): never confused with "canceled"


def exit_code_for(status: str | None) -> int:
    """The exit code of a command that waited for a training to end."""
    parsed = Status.parse(status)
    if parsed is Status.SUCCEEDED:
        return EXIT_OK
    if parsed is Status.CANCELED:
        return EXIT_CANCELED
    return EXIT_FAILED


def combined_exit_code(statuses: Sequence[str | None]) -> int:
    """Several trainings: any failure wins, then any cancel, else success."""
    codes = {exit_code_for(status) for status in statuses}
    return EXIT_FAILED if EXIT_FAILED in codes else (EXIT_CANCELED if EXIT_CANCELED in codes else EXIT_OK)


# ----- argparse glue ---------------------------------------------------------------------------

def add_command(subparsers: Any, name: str, run: Callable[[argparse.Namespace], int], **kwargs: Any
                ) -> argparse.ArgumentParser:
    """Add a subcommand (tui/cli.py makes every usage error exit EXIT_USAGE)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(run=run)
    return parser


def speed_factor(text: str) -> float:
    """argparse type of `--speed` (demo, sim): how many times faster than real time."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 10 for ten times real time)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0 (1 is real time, 10 ten times faster)")
    return value


def use_usage_exit(parser: argparse.ArgumentParser) -> None:
    """argparse exits 2 on a usage error, which is also "canceled" here: exit 64 instead."""
    def error(message: str) -> None:  # same output as argparse, other code
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign,assignment]


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (stable shape, see README)")


# ----- the store and who owns it ---------------------------------------------------------------

@dataclass(frozen=True)
class Owner:
    """The replitrack instance (TUI or `listen`) holding the store, and its local API if it serves one."""

    pid: int | None
    api: str | None
    secret: str | None = None  # what its local API's changing routes want (from the 0600 owner file)

    def describe(self) -> str:
        return f"the replitrack instance (PID {self.pid})" if self.pid else "another replitrack instance"


def store_owner() -> Owner | None:
    from core.store import read_owner  # tinydb: loaded when used, for start-up time

    found = read_owner(config.home())
    if found is None:
        return None
    api = found.get("api")
    secret = found.get("secret")
    return Owner(found.get("pid") if isinstance(found.get("pid"), int) else None,
                 api.rstrip("/") if isinstance(api, str) and api else None,
                 secret if isinstance(secret, str) else None)


@contextmanager
def open_store(*, write: bool) -> Iterator[Store]:
    """The store: writable when asked and nobody else holds it, else read-only.

    A reading command always opens it read-only (no lock taken), so it runs beside a TUI.
    """
    from core.store import Store  # tinydb: loaded when used, for start-up time

    store: Store
    if write:
        try:
            store = Store(wait=0)  # it has its fallback: never keep a command waiting
        except StoreInUseError:
            store = Store(readonly=True)  # someone took it in the meantime: fall back to reading
    else:
        store = Store(readonly=True)
    for notice in store.notices:
        warn(notice)
    try:
        yield store
    finally:
        store.close()


CLI_RETRIES = 3  # a command gives up after ~4 s offline (the client's default, 5, waits ~15 s)


def make_client(**kwargs: Any) -> ReplicateClient:
    """A client whose longer waits (a rate limit's Retry-After) are announced on stderr: a silent
    pause looks hung."""
    from core.client import ReplicateClient  # httpx: loaded when used, for start-up time

    async def sleep(seconds: float) -> None:
        if seconds >= 2:
            warn(f"Replicate is busy or unreachable: retrying in {math.ceil(seconds)} s")
        await asyncio.sleep(seconds)

    kwargs.setdefault("max_retries", CLI_RETRIES)
    return ReplicateClient(sleep=sleep, **kwargs)


def find_record(store: Store, ref: str) -> dict[str, Any]:
    """A stored training by id or destination `owner/name`, or the clear unknown-id error."""
    from core.service import UnknownTrainingError  # httpx: loaded when used, for start-up time

    record = store.find(ref.strip())
    if record is None:
        raise UnknownTrainingError(ref)
    return record


def live_view(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    """`status_view` with the progress estimated from the stored log (as the local API does)."""
    from core.updates import Updater  # tinydb: loaded when used, for start-up time

    return tracked_status_view(Updater(store), record)


async def fresh_view(ref: str, *, with_log: bool = False) -> tuple[dict[str, Any], str]:
    """A training's status view (and stored log). When no instance keeps the store fresh and the
    training may still change (or is not stored yet), it is fetched from Replicate first; when
    Replicate cannot be reached, what is stored is shown with a warning."""
    owner = store_owner()
    fetched = None
    if owner is not None and owner.api:
        with open_store(write=False) as reader:
            record = reader.find(ref.strip())
            imported_bare = record is not None and _lacks_details(reader, record)
        if imported_bare:  # imported without its log: the owner fetches it now
            await adopt(owner, record["id"])  # type: ignore[index]
    elif owner is None:  # ask Replicate first, without holding the store (it may be slow, or 429)
        with open_store(write=False) as reader:
            record = reader.find(ref.strip())
            lacks = record is not None and _lacks_details(reader, record)
        if record is None or not Status.parse(record.get("status")).terminal or lacks:
            from core.service import UnknownTrainingError  # httpx: loaded when used, for start-up time

            if record is None and not ID_PATTERN.match(ref.strip()):
                raise UnknownTrainingError(ref)  # a destination name we do not know: nothing to fetch
            async with make_client() as client:
                try:
                    fetched = await client.get_training(record["id"] if record else ref.strip())
                except ReplitrackError as error:  # offline, no token, rate limited: local data still shows
                    if record is None:
                        raise
                    warn(f"{error}; showing what is stored locally")
    with open_store(write=fetched is not None) as store:  # the lock only for the moment of saving
        if fetched is not None and not store.readonly:
            from core.updates import Updater

            updater = Updater(store)
            result = updater.apply(fetched, source="sync")
            await store.commit()
            record = result.record or store.get(result.training_id)
            assert record is not None
            view = tracked_status_view(updater, record)
        else:
            record = find_record(store, fetched.id if fetched is not None else ref)
            view = live_view(store, record)
        return view, store.read_log(record["id"]) if with_log else ""


def _lacks_details(store: Store, record: dict[str, Any]) -> bool:
    """Finished, but imported from the list without its log (so without its final progress)."""
    return Status.parse(record.get("status")).terminal and store.log_length(record["id"]) == 0


REFRESH_CONCURRENCY = 8  # well under Replicate's 3000 requests/min, and quick for a few dozen


async def refresh_unfinished() -> None:
    """Bring the store's unfinished trainings up to date from Replicate (nobody else does while no
    instance runs). A failure is a warning: the stored state is still worth showing."""
    from core.service import TrainingService  # httpx: loaded when used, for start-up time

    with open_store(write=True) as store:
        if store.readonly:
            return  # an instance took the store meanwhile: it keeps it up to date
        ids = [r["id"] for r in store.trainings() if not Status.parse(r.get("status")).terminal]
        if not ids:
            return
        gate = asyncio.Semaphore(REFRESH_CONCURRENCY)
        async with make_client() as client:
            service = TrainingService(store, client)

            async def refresh(tid: str) -> ReplitrackError | None:
                async with gate:
                    try:
                        await service.refresh(tid)
                    except ReplitrackError as error:
                        return error
                    return None

            failures = [e for e in await asyncio.gather(*(refresh(tid) for tid in ids)) if e is not None]
        if failures:
            warn(f"{failures[0]}; showing what is stored for {len(failures)} unfinished training(s)")


# ----- the owner's local API -------------------------------------------------------------------

class LocalApi:
    """A small JSON client for the local API of the instance that owns the store."""

    def __init__(self, owner: Owner, timeout: float = 60.0) -> None:
        assert owner.api
        self.owner, self.base, self.timeout = owner, owner.api, timeout  # a sync may wait on Replicate

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx  # httpx: loaded when used, for start-up time

        url = self.base + path
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                headers = {"Authorization": f"Bearer {self.owner.secret}"} if self.owner.secret else {}
                response = await http.request(method, url, json=body, headers=headers)
        except httpx.TransportError as error:
            raise ReplitrackError(
                f"{self.owner.describe()} owns the store but its local API at {self.base} does not "
                f"answer ({type(error).__name__}): check that it still runs, or stop it and try again"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data
        detail = ""
        if isinstance(data, dict):
            detail = str(data.get("detail") or data.get("error") or data.get("title") or "")
        raise ReplitrackError(detail or f"{self.owner.describe()} answered {response.status_code} "
                              f"to {method} {path}")

    async def object(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """`call` for endpoints that answer a JSON object."""
        data = await self.call(method, path, body)
        if not isinstance(data, dict):
            raise ReplitrackError(f"{self.owner.describe()} answered {method} {path} with something that is not "
                                  "a JSON object: is it a replitrack of another version?")
        return data


def resolve(store: Store, ref: str) -> tuple[str, dict[str, Any] | None]:
    """(training id, stored record or None) for an id or destination; an id unknown here is
    still usable with Replicate, a destination name is not."""
    from core.service import UnknownTrainingError  # httpx: loaded when used, for start-up time

    ref = ref.strip()
    record = store.find(ref)
    if record is not None:
        return record["id"], record
    if ID_PATTERN.match(ref):
        return ref, None
    raise UnknownTrainingError(ref)


def view_of_training(training: Any, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """A status view for a training object from the API when the store cannot take it (another
    instance owns the store): what was stored, with what the API just said on top."""
    record = dict(before or {})
    record.update({key: value for key, value in {
        "id": training.id, "status": str(training.status), "trainer": training.model or None,
        "trainer_version": training.version or None, "destination": training.destination,
        "input": training.input or None, "error": training.error,
        "created_at": format_time(training.created_at), "started_at": format_time(training.started_at),
        "completed_at": format_time(training.completed_at), "output_version": training.output_version,
        "output_weights": training.output_weights, "web_url": training.web_url, "source": training.source,
        "metrics": training.metrics or None,
    }.items() if value is not None})
    return status_view(record)


async def adopt(owner: Owner, training_id: str) -> dict[str, Any] | None:
    """Have the owner bring a training up to date from Replicate now (its refresh route), so a
    change made beside it is in its store at once rather than at its next poll."""
    if owner.api:
        try:
            return await LocalApi(owner).object("POST", f"/api/trainings/{quote(training_id, safe='')}/refresh")
        except ReplitrackError as error:
            reason = str(error)
    else:
        reason = "it serves no local API"
    say(f"note: {owner.describe()} owns the store and could not be asked to fetch {training_id} ({reason}); "
        "it will show the change after its next poll or import")
    return None


async def owner_webhook(owner: Owner) -> str | None:
    """The public webhook URL of the owner's tunnel, when it has one up."""
    if not owner.api:
        return None
    try:
        status = await LocalApi(owner).call("GET", "/api/listener")
    except ReplitrackError:
        return None
    url = status.get("webhook_url") if isinstance(status, dict) else None
    return url if isinstance(url, str) and url else None
