"""Replicate's HTTP API as replitrack uses it: async httpx, typed errors, careful retries.

Only GETs are retried on 5xx, timeouts and connection errors; a POST is retried only on 429,
because a POST that reached Replicate may have created a training, and it must never be sent
twice. URLs are always built from ids, never taken from a response's `urls` (real responses point
those at /v1/predictions/...); the one exception is the `next` cursor of a page, followed verbatim
as the API asks, and only on the same origin (it would carry the token).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core import config
from core.backoff import Backoff
from core.errors import (
    ApiError,
    AuthError,
    BadArgumentError,
    ConfigError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from core.models import ID_PATTERN, OWNER_NAME, WEBHOOK_EVENTS, Training

if TYPE_CHECKING:  # httpx is imported where it is used: loading it (~60 ms with its optional
    import httpx  # command line) would delay the app's first paint, which makes no request

NO_TOKEN_MESSAGE = (
    "no Replicate API token: set REPLICATE_API_TOKEN "
    "(create one at https://replicate.com/account/api-tokens)"
)
AUTH_MESSAGE = "401 Unauthenticated: set REPLICATE_API_TOKEN to a valid token"

BACKOFF_BASE = 0.5  # seconds before the first retry; doubles each time
BACKOFF_CAP = 20.0
JITTER = 0.25  # ± this fraction, so that many clients do not retry in step
# A longer wait than this (Retry-After or "resets in ~Ns") is handed to the caller as a
# RateLimitError instead of being slept through while the UI looks frozen.
MAX_HONOURED_WAIT = 60.0
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # Replicate's limit for POST /v1/files
PAGE_SIZE = 100  # what GET /v1/trainings returns per page (fixed by the API, not a parameter)

_RESETS_IN = re.compile(r"resets in\s*~?\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|mins?|minutes?)\b", re.I)


@functools.cache
def user_agent() -> str:
    """`replitrack/<version>`; read when the first request is made (importlib.metadata is slow to load)."""
    from importlib import metadata

    try:
        return f"replitrack/{metadata.version('replitrack')}"
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "replitrack/0+unknown"


# ---------------------------------------------------------------------------------------------
# Retry timing (pure functions, so the decisions can be tested without waiting)


def retry_after_hint(response: httpx.Response, now: float | None = None) -> float | None:
    """How long Replicate asks us to wait: `Retry-After` (seconds or HTTP date), else the 429
    body's "resets in ~30s"; None when it gives no hint."""
    header = response.headers.get("retry-after", "").strip()
    if header:
        seconds: float | None
        try:
            seconds = float(header)
        except ValueError:
            seconds = _seconds_until_http_date(header, time.time() if now is None else now)
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    import httpx

    try:
        text = response.text[:2000]
    except (UnicodeDecodeError, LookupError, httpx.ResponseNotRead):
        return None
    if match := _RESETS_IN.search(text):
        amount = float(match.group(1))
        return amount * 60 if match.group(2).lower().startswith("m") else amount
    return None


def _seconds_until_http_date(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - now if when.tzinfo else None


# ---------------------------------------------------------------------------------------------
# Names and ids, checked before they go into a URL path


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value.strip()):
        raise BadArgumentError(
            f"{what} {value!r} is not a valid id: expected letters and digits only "
            f"(a training id looks like zz4ibbonubfz7carwiefibzgga)"
        )
    return value.strip()


def _owner_name(value: object, what: str) -> tuple[str, str]:
    match = OWNER_NAME.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise BadArgumentError(
            f"{what} {value!r} is not of the form owner/name (for example ostris/flux-dev-lora-trainer)"
        )
    return match.group(1), match.group(2)


def _split_trainer(trainer: str, version: str | None) -> tuple[str, str, str | None]:
    """`owner/name` or `owner/name:version` → (owner, name, version or None)."""
    if isinstance(trainer, str) and ":" in trainer:
        trainer, pinned = trainer.split(":", 1)
        version = version or pinned
    owner, name = _owner_name(trainer, "trainer")
    return owner, name, _check_id(version, "trainer version") if version else None


@dataclass(frozen=True, slots=True)
class _Subject:
    """What a request is about, so that an error can name it."""

    kind: str  # training, model, version, trainer, file, account, webhook secret, trainings
    name: str = ""
    version: str = ""
    destination: str = ""


# ---------------------------------------------------------------------------------------------


class ReplicateClient:
    """Async client for the parts of Replicate's API that replitrack needs.

    Use as `async with ReplicateClient() as client:` or call `aclose()`. A missing token is
    reported (ConfigError) by the first call, not here, so a UI can build the client early.
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30,
        max_retries: int = 5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._token = config.check_token((token if token is not None else config.api_token()) or None)
        self.base_url = (base_url or config.base_url()).strip().rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self._sleep = sleep
        # jitter only; never the global generator
        self._backoff = Backoff(BACKOFF_BASE, BACKOFF_CAP, jitter=JITTER, rng=random.Random().random)
        self._transport = transport
        self._http_client: httpx.AsyncClient | None = None  # made at the first call: see `_http`

    @property
    def _http(self) -> httpx.AsyncClient:
        """The connection pool, made when first used: building it loads the system's CA
        certificates (~50 ms), which the app's first paint need not wait for."""
        if self._http_client is None:
            import httpx

            self._http_client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                headers={"User-Agent": user_agent(), "Accept": "application/json"},
                follow_redirects=False,  # a redirect would mean a wrong base URL; say so instead
            )
        return self._http_client

    @property
    def token(self) -> str | None:
        return self._token

    async def __aenter__(self) -> ReplicateClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()

    # -- account and secrets ------------------------------------------------------------------

    async def account(self) -> dict[str, Any]:
        """GET /v1/account: who the token belongs to; the cheap way to check a token."""
        return await self._get_object("/v1/account", _Subject("account"))

    async def default_webhook_secret(self) -> str:
        """GET /v1/webhooks/default/secret → the `whsec_...` key that signs webhooks."""
        body = await self._get_object("/v1/webhooks/default/secret", _Subject("webhook secret"))
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise ApiError(
                "Replicate's webhook secret answer has no 'key': try again later, "
                f"or check that REPLICATE_BASE_URL ({self.base_url}) is Replicate's API",
                status=200,
            )
        return key

    # -- trainings ----------------------------------------------------------------------------

    async def get_training_raw(self, training_id: str) -> dict[str, Any]:
        """GET /v1/trainings/{id} exactly as Replicate sent it (the store keeps this)."""
        training_id = _check_id(training_id, "training")
        return await self._get_object(f"/v1/trainings/{training_id}", _Subject("training", training_id))

    async def get_training_body(self, training_id: str) -> bytes:
        """GET /v1/trainings/{id}, undecoded: a running training's body carries its whole log,
        which the poller decodes off the event loop when it is large (core/bodies.py)."""
        training_id = _check_id(training_id, "training")
        response = await self._request("GET", f"/v1/trainings/{training_id}", _Subject("training", training_id))
        return response.content

    async def get_training(self, training_id: str) -> Training:
        return self._training(await self.get_training_raw(training_id))

    async def list_trainings_page_raw(self, url: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of GET /v1/trainings (newest first): (results, next page URL or None)."""
        return await self._page(url or "/v1/trainings", _Subject("trainings"))

    async def list_trainings_page(self, url: str | None = None) -> tuple[list[Training], str | None]:
        """One page, parsed; pass the returned URL back to get the next one."""
        results, next_url = await self.list_trainings_page_raw(url)
        return [self._training(item) for item in results], next_url

    async def list_trainings(self) -> AsyncIterator[Training]:
        """Every training of the account, newest first; fetches each page only when needed."""
        url: str | None = None
        seen: set[str] = set()
        while True:
            trainings, next_url = await self.list_trainings_page(url)
            for training in trainings:
                yield training
            if not next_url or next_url in seen:  # a repeated cursor would loop forever
                return
            seen.add(next_url)
            url = next_url

    async def create_training_raw(
        self,
        trainer: str,
        version: str | None,
        destination: str,
        input: Mapping[str, Any],
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """POST /v1/models/{owner}/{name}/versions/{version}/trainings; the API's answer as is.

        `trainer` is `owner/name` or `owner/name:version`; with no version the model's latest
        version is looked up first."""
        owner, name, version = _split_trainer(trainer, version)
        dest = "/".join(_owner_name(destination, "destination"))
        body: dict[str, Any] = {"destination": dest, "input": _json_input(input)}
        if webhook is not None:
            body["webhook"] = _check_webhook_url(webhook)
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = _check_events(webhook_events_filter)
        if version is None:
            version = await self._latest_version_id(f"{owner}/{name}")
        subject = _Subject("trainer", f"{owner}/{name}", version, dest)
        path = f"/v1/models/{owner}/{name}/versions/{version}/trainings"
        return _object(await self._request("POST", path, subject, json=body), self.base_url)

    async def create_training(
        self,
        trainer: str,
        version: str | None,
        destination: str,
        input: Mapping[str, Any],
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
    ) -> Training:
        raw = await self.create_training_raw(trainer, version, destination, input, webhook, webhook_events_filter)
        training = self._training(raw)
        if not training.destination:  # the API does not echo it; we know what we asked for
            training.destination = "/".join(_owner_name(destination, "destination"))
        return training

    async def cancel_training_raw(self, training_id: str) -> dict[str, Any]:
        training_id = _check_id(training_id, "training")
        response = await self._request("POST", f"/v1/trainings/{training_id}/cancel", _Subject("training", training_id))
        return _object(response, self.base_url)

    async def cancel_training(self, training_id: str) -> Training:
        """POST /v1/trainings/{id}/cancel; Replicate answers with the (now canceled) training."""
        return self._training(await self.cancel_training_raw(training_id))

    # -- predictions (trying a trained version; see core/predictions.py) -----------------------

    async def create_prediction_raw(
        self,
        version: str,
        input: Mapping[str, Any],
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """POST /v1/predictions for `version` (`owner/name:version_id` or the bare id)."""
        name, _, version_id = version.rpartition(":")
        body: dict[str, Any] = {"version": version, "input": _json_input(input)}
        if webhook is not None:
            body["webhook"] = _check_webhook_url(webhook)
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = _check_events(webhook_events_filter)
        subject = _Subject("version", name or "the model", _check_id(version_id, "version"))
        return _object(await self._request("POST", "/v1/predictions", subject, json=body), self.base_url)

    async def get_prediction_raw(self, prediction_id: str) -> dict[str, Any]:
        prediction_id = _check_id(prediction_id, "prediction")
        return await self._get_object(f"/v1/predictions/{prediction_id}", _Subject("prediction", prediction_id))

    async def cancel_prediction_raw(self, prediction_id: str) -> dict[str, Any]:
        prediction_id = _check_id(prediction_id, "prediction")
        response = await self._request("POST", f"/v1/predictions/{prediction_id}/cancel",
                                       _Subject("prediction", prediction_id))
        return _object(response, self.base_url)

    # -- models, versions, schemas --------------------------------------------------------------

    async def get_model(self, owner_name: str) -> dict[str, Any]:
        """GET /v1/models/{owner}/{name}, including `latest_version` (null for a model never pushed)."""
        owner, name = _owner_name(owner_name, "model")
        return await self._get_object(f"/v1/models/{owner}/{name}", _Subject("model", f"{owner}/{name}"))

    async def get_model_version(self, owner_name: str, version_id: str) -> dict[str, Any]:
        owner, name = _owner_name(owner_name, "model")
        version_id = _check_id(version_id, "version")
        return await self._get_object(
            f"/v1/models/{owner}/{name}/versions/{version_id}", _Subject("version", f"{owner}/{name}", version_id)
        )

    async def list_model_versions(self, owner_name: str) -> list[dict[str, Any]]:
        """Every version of a model, newest first (all pages)."""
        owner, name = _owner_name(owner_name, "model")
        subject = _Subject("model", f"{owner}/{name}")
        versions: list[dict[str, Any]] = []
        url: str | None = f"/v1/models/{owner}/{name}/versions"
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            results, url = await self._page(url, subject)
            versions.extend(results)
        return versions

    async def training_input_schema(self, trainer: str, version: str | None = None) -> dict[str, Any]:
        """The trainer's `TrainingInput` JSON schema, with the schema's local `$ref`s inlined so a
        form can read enums and defaults directly."""
        owner, name, version = _split_trainer(trainer, version)
        owner_name = f"{owner}/{name}"
        if version is None:
            latest = await self._latest_version(owner_name)
            has_schema = isinstance(latest.get("openapi_schema"), dict)
            version_obj = latest if has_schema else await self.get_model_version(owner_name, latest["id"])
        else:
            version_obj = await self.get_model_version(owner_name, version)
        openapi = version_obj.get("openapi_schema")
        schemas = _dig(openapi, "components", "schemas")
        training_input = schemas.get("TrainingInput") if isinstance(schemas, dict) else None
        if not isinstance(training_input, dict):
            raise BadArgumentError(
                f"{owner_name} (version {version_obj.get('id') or version}) has no TrainingInput in its "
                "schema: it is a model you run, not a trainer. Pick a trainer such as "
                "ostris/flux-dev-lora-trainer"
            )
        inlined: dict[str, Any] = _inline_refs(training_input, openapi)
        return inlined

    async def create_model(
        self, owner_name: str, visibility: str = "private", hardware: str = "cpu", description: str | None = None
    ) -> dict[str, Any]:
        """POST /v1/models: create a destination model for trainings to push versions to."""
        owner, name = _owner_name(owner_name, "model")
        if visibility not in ("public", "private"):
            raise BadArgumentError(f"visibility {visibility!r} must be 'public' or 'private'")
        body: dict[str, Any] = {"owner": owner, "name": name, "visibility": visibility, "hardware": hardware}
        if description is not None:
            body["description"] = description
        response = await self._request("POST", "/v1/models", _Subject("owner", owner), json=body)
        return _object(response, self.base_url)

    async def upload_file(
        self, path_or_bytes: str | Path | bytes, filename: str | None = None, content_type: str = "application/zip"
    ) -> dict[str, Any]:
        """POST /v1/files (multipart field `content`). The answer's `urls.get` is what a trainer's
        `input_images` takes."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            filename = filename or "upload.zip"
        else:
            path = Path(path_or_bytes).expanduser()
            data = _read_upload(path)
            filename = filename or path.name
        if len(data) >= MAX_UPLOAD_BYTES:
            raise BadArgumentError(
                f"{filename} is {len(data) / 1024 / 1024:.1f} MB: Replicate takes files under 100 MB; "
                "use fewer or smaller images, or host the zip elsewhere and pass its URL"
            )

        def files() -> dict[str, tuple[str, bytes, str]]:
            return {"content": (filename, data, content_type)}

        response = await self._request("POST", "/v1/files", _Subject("file", filename), files=files)
        body = _object(response, self.base_url)
        if not isinstance(_dig(body, "urls", "get"), str):
            raise ApiError(
                f"Replicate stored {filename} but its answer has no urls.get to use as input: "
                "try the upload again",
                status=response.status_code,
            )
        return body

    # -- internals ------------------------------------------------------------------------------

    def _training(self, data: dict[str, Any]) -> Training:
        try:
            return Training.from_api(data)
        except (ValueError, TypeError, AttributeError) as error:  # e.g. a number where a time belongs
            raise ApiError(
                f"Replicate answered with something that is not a training ({error}): "
                f"check that REPLICATE_BASE_URL ({self.base_url}) is Replicate's API",
                status=200,
            ) from None

    async def _latest_version(self, owner_name: str) -> dict[str, Any]:
        latest = (await self.get_model(owner_name)).get("latest_version")
        if not isinstance(latest, dict) or not isinstance(latest.get("id"), str):
            raise BadArgumentError(
                f"{owner_name} has no published version, so it cannot be trained: "
                "give a trainer with at least one version, or name the version explicitly"
            )
        return latest

    async def _latest_version_id(self, owner_name: str) -> str:
        return _check_id((await self._latest_version(owner_name))["id"], "latest version")

    async def _get_object(self, path: str, subject: _Subject) -> dict[str, Any]:
        return _object(await self._request("GET", path, subject), self.base_url)

    async def _page(self, url: str, subject: _Subject) -> tuple[list[dict[str, Any]], str | None]:
        body = _object(await self._request("GET", url, subject), self.base_url)
        results, next_url = body.get("results"), body.get("next")
        if not isinstance(results, list) or not all(isinstance(item, dict) for item in results):
            raise ApiError(
                f"Replicate's page of {subject.kind} has no list of results: "
                f"check that REPLICATE_BASE_URL ({self.base_url}) is Replicate's API",
                status=200,
            )
        return results, next_url if isinstance(next_url, str) and next_url else None

    def _url(self, path_or_url: str) -> str:
        base = urlsplit(self.base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise ConfigError(
                f"REPLICATE_BASE_URL {self.base_url!r} is not an http(s) URL: "
                "unset it to use https://api.replicate.com"
            )
        if path_or_url.startswith("/"):
            return self.base_url + path_or_url
        if _origin(path_or_url) != _origin(self.base_url):
            # Following it would send the token to another host.
            target = urlsplit(path_or_url)
            raise ApiError(
                f"Replicate's next-page link points to {target.scheme}://{target.netloc}, not "
                f"{self.base_url}: refusing to send your token there; check REPLICATE_BASE_URL",
                status=200,
            )
        return path_or_url

    def _require_token(self) -> str:
        if not self._token:
            self._token = config.api_token()  # it may have been saved since construction
        if not self._token:
            raise ConfigError(NO_TOKEN_MESSAGE)
        if not self._token.isascii() or any(ch.isspace() for ch in self._token):
            raise ConfigError(
                "the Replicate API token contains spaces or non-ASCII characters: copy it again "
                "from https://replicate.com/account/api-tokens into REPLICATE_API_TOKEN"
            )
        return self._token

    async def _request(
        self,
        method: str,
        path_or_url: str,
        subject: _Subject,
        *,
        json: Any = None,
        files: Callable[[], dict[str, tuple[str, bytes, str]]] | None = None,
    ) -> httpx.Response:
        import httpx

        url = self._url(path_or_url)
        headers = {"Authorization": f"Bearer {self._require_token()}"}
        safe_to_repeat = method == "GET"
        retries = 0
        while True:
            try:
                response = await self._http.request(
                    method, url, headers=headers, json=json, files=files() if files else None
                )
            except httpx.TransportError as error:
                if isinstance(error, httpx.UnsupportedProtocol):
                    raise ConfigError(f"cannot use {url}: {error}; check REPLICATE_BASE_URL") from None
                if not safe_to_repeat or retries >= self.max_retries:
                    raise self._network_error(error, retries) from None
                delay = self._backoff.delay(retries)
            else:
                status = response.status_code
                if status == 429:
                    hint = retry_after_hint(response)
                    if retries >= self.max_retries or (hint is not None and hint > MAX_HONOURED_WAIT):
                        raise self._rate_limit_error(response, hint, retries)
                    delay = hint if hint else self._backoff.delay(retries)
                elif status >= 500 and safe_to_repeat and retries < self.max_retries:
                    delay = self._backoff.delay(retries)
                elif response.is_success:
                    return response
                else:
                    raise self._error(response, subject, retries, safe_to_repeat)
            await self._sleep(delay)
            retries += 1

    # -- turning failures into messages -----------------------------------------------------------

    def _network_error(self, error: httpx.TransportError, retries: int) -> NetworkError:
        import httpx

        if isinstance(error, httpx.TimeoutException):
            reason = f"no answer within {self.timeout:g} s ({type(error).__name__})"
        else:
            reason = str(error).strip() or type(error).__name__
        if retries:
            reason += f", {retries + 1} attempts"
        return NetworkError(f"cannot reach {self.base_url}: {reason}; check your connection")

    def _rate_limit_error(self, response: httpx.Response, hint: float | None, retries: int) -> RateLimitError:
        title, detail = _problem(response)
        when = f"try again in {math.ceil(hint)} s" if hint is not None else "try again in a minute"
        tried = f" after {retries} retries" if retries else ""
        return RateLimitError(
            f"429 rate limited by Replicate{tried}: {when}" + (f" ({detail})" if detail else ""),
            retry_after=hint,
            title=title,
            detail=detail,
        )

    def _error(self, response: httpx.Response, subject: _Subject, retries: int, safe_to_repeat: bool) -> ApiError:
        status = response.status_code
        title, detail = _problem(response)
        fields: dict[str, Any] = {"status": status, "title": title, "detail": detail}
        said = f": {detail}" if detail else ""
        if status == 401:
            return AuthError(AUTH_MESSAGE, **fields)
        if status == 404:
            kind, message = self._not_found(subject, detail)
            name = subject.destination if kind == "destination" else subject.name
            return NotFoundError(message, kind=kind, name=name, **fields)
        if status >= 500:
            if safe_to_repeat:
                return ServerError(
                    f"{status} {title} from Replicate after {retries} retries{said}: "
                    "Replicate is having trouble; try again in a few minutes",
                    **fields,
                )
            return ServerError(
                f"{status} {title} from Replicate{said}: not retried, because repeating this request "
                "could do it twice; check whether it took effect before trying again",
                **fields,
            )
        if status in (400, 422):
            what = "the training input" if subject.kind == "trainer" else "the request"
            return ValidationError(f"{status} {title}: Replicate rejected {what}{said}; fix it and try again", **fields)
        if 300 <= status < 400:
            where = response.headers.get("location", "elsewhere")
            return ApiError(
                f"{status}: {self.base_url} redirects to {where}: set REPLICATE_BASE_URL to the API's "
                "own address (redirects are not followed, they would drop the token)",
                **fields,
            )
        if status == 403:
            return ApiError(
                f"403 {title}{said}: this token may not do that; use a token of the account or "
                "organisation that owns it",
                **fields,
            )
        return ApiError(f"{status} {title}: Replicate refused the request{said}", **fields)

    def _not_found(self, subject: _Subject, detail: str | None) -> tuple[str, str]:
        kind, name = subject.kind, subject.name
        if kind == "trainer" and "destination" in (detail or "").lower():
            owner = subject.destination.split("/", 1)[0]
            return "destination", (
                f"404: destination model {subject.destination} does not exist: create it first "
                f"(replitrack can create it: a private model owned by {owner}), "
                f"or at https://replicate.com/create"
            )
        if kind == "training":
            return kind, f"404: training {name} not found on Replicate: check the id, and that the token is of the account that started it"
        if kind == "trainer":
            return kind, f"404: trainer {name} version {subject.version} not found on Replicate: check the trainer's owner/name and version"
        if kind == "model":
            return kind, f"404: model {name} not found on Replicate: check the owner/name (a private model needs its owner's token)"
        if kind == "version":
            return kind, f"404: version {subject.version} of {name} not found on Replicate: check the version id"
        if kind == "owner":
            return kind, f"404: account {name} not found on Replicate: the owner must be your username or organisation"
        return kind, f"404: {kind} not found on Replicate: check that REPLICATE_BASE_URL ({self.base_url}) is Replicate's API"


# ---------------------------------------------------------------------------------------------
# Small helpers


def _problem(response: httpx.Response) -> tuple[str, str | None]:
    """(title, detail) from an RFC 7807 body; tolerates non-JSON (an HTML error page, say)."""
    title, detail = response.reason_phrase or "Error", None
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        text = " ".join(response.text.split())[:300] if response.content else ""
        return title, text if text and not text.startswith("<") else None
    if isinstance(body, dict):
        if isinstance(body.get("title"), str) and body["title"].strip():
            title = body["title"].strip()
        if isinstance(body.get("detail"), str) and body["detail"].strip():
            detail = body["detail"].strip()
        fields = body.get("invalid_fields")
        if isinstance(fields, list):
            notes = [str(f["description"]) for f in fields if isinstance(f, dict) and f.get("description")]
            if notes:
                detail = "; ".join([detail, *notes] if detail else notes)
    return title, detail


def _object(response: httpx.Response, base_url: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(
            f"Replicate answered {response.request.url.path} with something that is not a JSON object: "
            f"check that REPLICATE_BASE_URL ({base_url}) is Replicate's API",
            status=response.status_code,
        )
    return body


def _origin(url: str) -> tuple[str, str, int | None] | None:
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed.scheme, parsed.host, parsed.port  # httpx drops default ports: :443 == none


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _inline_refs(node: Any, document: Any, seen: frozenset[str] = frozenset()) -> Any:
    """Replace `{"$ref": "#/..."}` with what it points at (cycles are left as refs)."""
    if isinstance(node, list):
        return [_inline_refs(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        target = _dig(document, *(part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/")))
        if isinstance(target, dict):
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline_refs(merged, document, seen | {ref})
    return {key: _inline_refs(value, document, seen) for key, value in node.items()}


def _json_input(value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadArgumentError(f"the training input must be a mapping of names to values, not {type(value).__name__}")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as error:
        raise BadArgumentError(f"the training input cannot be sent as JSON: {error}") from None
    return dict(value)


def _check_webhook_url(url: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadArgumentError(f"webhook {url!r} is not an http(s) URL: Replicate needs a public HTTPS address")
    return url


def _check_events(events: Sequence[str]) -> list[str]:
    if isinstance(events, str):
        events = [events]
    unknown = [event for event in events if event not in WEBHOOK_EVENTS]
    if unknown:
        raise BadArgumentError(
            f"unknown webhook event(s) {', '.join(map(repr, unknown))}: choose from {', '.join(WEBHOOK_EVENTS)}"
        )
    return list(dict.fromkeys(events))


def _read_upload(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size >= MAX_UPLOAD_BYTES:
            raise BadArgumentError(
                f"{path} is {size / 1024 / 1024:.1f} MB: Replicate takes files under 100 MB; "
                "use fewer or smaller images, or host the zip elsewhere and pass its URL"
            )
        return path.read_bytes()
    except OSError as error:
        raise BadArgumentError(f"cannot read {path}: {error.strerror or error}") from None


__all__ = [
    "ID_PATTERN",
    "PAGE_SIZE",
    "ReplicateClient",
    "user_agent",
    "retry_after_hint",
]
