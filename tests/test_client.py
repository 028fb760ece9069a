"""ReplicateClient against spec-shaped responses (respx), and against real loopback servers for
multipart uploads, refused connections and timeouts.

Every fixture body is validated with jsonschema against the official OpenAPI document in
tests/fixtures/reference, so the client is tested against what Replicate really sends."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from aiohttp import BodyPartReader, web

from core.backoff import Backoff
from core.client import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    JITTER,
    NO_TOKEN_MESSAGE,
    ReplicateClient,
    retry_after_hint,
    user_agent,
)
from core.config import DEFAULT_BASE_URL
from core.errors import (
    ApiError,
    AuthError,
    BadArgumentError,
    ConfigError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ReplitrackError,
    ServerError,
    ValidationError,
)
from core.models import Status
from tests.conftest import REFERENCE

BASE = DEFAULT_BASE_URL
TOKEN = "r8_test_token_0123456789abcdef"
FLUX = "ostris/flux-dev-lora-trainer"
FLUX_VERSION = hashlib.sha256(b"flux-trainer").hexdigest()
DESTINATION = "alice/my-flux-lora"

# ---------------------------------------------------------------------------------------------
# The official spec, as a jsonschema validator

SPEC: dict[str, Any] = json.loads((REFERENCE / "replicate-openapi.json").read_text())
# Fields the spec types as plain string/object that real responses send as null
# (replicate-api.md: `logs` may be null early, `output` is null until success,
# `started_at`/`completed_at` are null until set). Everything else is checked as written.
REAL_NULLS = ("logs", "output", "started_at", "completed_at")


def _with_nullable(node: Any) -> Any:
    """The document is OpenAPI 3.1 but still says `nullable: true` (3.0), which jsonschema ignores."""
    if isinstance(node, list):
        return [_with_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_nullable(value) for key, value in node.items()}
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _components() -> dict[str, Any]:
    components = _with_nullable(SPEC["components"])
    training = components["schemas"]["schemas_training_response"]["properties"]
    for name in REAL_NULLS:
        training[name]["type"] = [training[name]["type"], "null"]
    return components


COMPONENTS = _components()


def spec_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A standalone schema whose `#/components/...` refs resolve inside the spec."""
    return {**_with_nullable(schema), "components": COMPONENTS}


def component(name: str) -> dict[str, Any]:
    return spec_schema({"$ref": f"#/components/schemas/{name}"})


def response_schema(path: str, method: str = "get", status: str = "200") -> dict[str, Any]:
    content = SPEC["paths"][path][method]["responses"][status]["content"]
    return spec_schema(next(iter(content.values()))["schema"])


def request_schema(path: str, method: str = "post") -> dict[str, Any]:
    content = SPEC["paths"][path][method]["requestBody"]["content"]
    return spec_schema(next(iter(content.values()))["schema"])


def spec_shaped(body: Any, schema: dict[str, Any]) -> Any:
    jsonschema.Draft202012Validator(schema).validate(body)
    return body


TRAINING = component("schemas_training_response")
TRAININGS_PAGE = response_schema("/trainings")
ACCOUNT = response_schema("/account")
SECRET = response_schema("/webhooks/default/secret")
MODEL = component("schemas_model_response")
VERSION = component("schemas_version_response")
VERSIONS_PAGE = response_schema("/models/{model_owner}/{model_name}/versions")
FILE = component("schemas_file_response")
TRAINING_REQUEST = request_schema("/models/{model_owner}/{model_name}/versions/{version_id}/trainings")
MODEL_REQUEST = request_schema("/models")

# ---------------------------------------------------------------------------------------------
# Fixture bodies (each checked against the spec when built)

_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def training_id(n: int) -> str:
    rng = random.Random(n)
    return "".join(rng.choice(_BASE32) for _ in range(26))


def training_body(tid: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": tid,
        "model": FLUX,
        "version": FLUX_VERSION,
        "input": {"input_images": "https://example.com/images.zip", "steps": 1000, "trigger_word": "TOK"},
        "logs": "",
        "output": None,
        "error": None,
        "status": "starting",
        "created_at": "2024-09-10T05:10:31.018467Z",
        "source": "api",
        "metrics": {},
        # Real responses point these at /v1/predictions/...: the client must never use them.
        "urls": {
            "web": f"https://replicate.com/p/{tid}",
            "get": f"{BASE}/v1/predictions/{tid}",
            "cancel": f"{BASE}/v1/predictions/{tid}/cancel",
        },
    }
    body.update(fields)
    return spec_shaped(body, TRAINING)


def page_body(results: list[dict[str, Any]], next_url: str | None, previous: str | None = None) -> dict[str, Any]:
    listed = [{k: v for k, v in item.items() if k != "logs"} for item in results]  # list items carry no logs
    return spec_shaped({"next": next_url, "previous": previous, "results": listed}, TRAININGS_PAGE)


def training_input_openapi() -> dict[str, Any]:
    return {
        "openapi": "3.0.2",
        "components": {
            "schemas": {
                "TrainingInput": {
                    "type": "object",
                    "required": ["input_images"],
                    "properties": {
                        "input_images": {"type": "string", "format": "uri", "x-order": 0},
                        "steps": {"type": "integer", "default": 1000, "minimum": 3, "maximum": 6000},
                        "lora_rank": {"type": "integer", "default": 16},
                        "optimizer": {"allOf": [{"$ref": "#/components/schemas/optimizer"}], "default": "adamw8bit"},
                    },
                },
                "optimizer": {"title": "optimizer", "enum": ["adamw8bit", "prodigy"], "type": "string"},
            }
        },
    }


def version_body(version_id: str = FLUX_VERSION, openapi: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "id": version_id,
        "created_at": "2024-08-14T17:12:03.318466Z",
        "cog_version": "0.9.13",
        "openapi_schema": openapi if openapi is not None else training_input_openapi(),
    }
    return spec_shaped(body, VERSION)


def model_body(owner_name: str = FLUX, latest: dict[str, Any] | None = None) -> dict[str, Any]:
    owner, name = owner_name.split("/")
    body = {
        "url": f"https://replicate.com/{owner_name}",
        "owner": owner,
        "name": name,
        "description": "Fine-tune FLUX.1-dev using ai-toolkit",
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 123456,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": latest,
    }
    return spec_shaped(body, MODEL)


def problem(status: int, detail: str, title: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"detail": detail, "status": status}
    if title:
        body["title"] = title
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


# ---------------------------------------------------------------------------------------------
# Fixtures


class SleepRecorder:
    """Stands in for asyncio.sleep: records the delays the client chose, without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(base_url=BASE, assert_all_called=False)


@pytest.fixture
async def client(router: respx.MockRouter, sleeps: SleepRecorder) -> AsyncIterator[ReplicateClient]:
    async with ReplicateClient(TOKEN, transport=httpx.MockTransport(router.handler), sleep=sleeps) as api:
        yield api


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# ---------------------------------------------------------------------------------------------
# The spec validator itself must be able to fail, or the fixtures prove nothing


def test_spec_validator_rejects_bodies_that_break_the_spec() -> None:
    good = training_body(training_id(1))
    for broken in ({**good, "status": "exploded"}, {**good, "id": 42}, {**good, "input": "not an object"}):
        with pytest.raises(jsonschema.ValidationError):
            spec_shaped(broken, TRAINING)
    with pytest.raises(jsonschema.ValidationError):
        spec_shaped({"next": None, "results": [{"id": "x", "source": "cli"}]}, TRAININGS_PAGE)
    with pytest.raises(jsonschema.ValidationError):
        spec_shaped({"id": "f", "urls": {}}, FILE)  # required fields missing


# ---------------------------------------------------------------------------------------------
# Requests: headers, account, secret


async def test_account_sends_bearer_token_and_user_agent(client: ReplicateClient, router: respx.MockRouter) -> None:
    account = spec_shaped(
        {"type": "user", "username": "alice", "name": "Alice", "github_url": "https://github.com/alice"}, ACCOUNT
    )
    route = router.get("/v1/account").mock(return_value=httpx.Response(200, json=account))
    assert await client.account() == account
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == user_agent() == "replitrack/0.1.0"


async def test_default_webhook_secret(client: ReplicateClient, router: respx.MockRouter) -> None:
    body = spec_shaped({"key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, SECRET)
    router.get("/v1/webhooks/default/secret").mock(return_value=httpx.Response(200, json=body))
    assert await client.default_webhook_secret() == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_secret_answer_without_key_is_a_clear_error(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.get("/v1/webhooks/default/secret").mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(ApiError, match="no 'key'"):
        await client.default_webhook_secret()


async def test_token_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env_abcdef")
    monkeypatch.setenv("REPLICATE_BASE_URL", "http://127.0.0.1:9/")
    router = respx.MockRouter(assert_all_called=True)
    router.get("http://127.0.0.1:9/v1/account").mock(return_value=httpx.Response(200, json={"type": "user", "username": "env"}))
    async with ReplicateClient(transport=httpx.MockTransport(router.handler)) as api:
        assert api.base_url == "http://127.0.0.1:9"
        assert (await api.account())["username"] == "env"
    assert router.calls.last.request.headers["authorization"] == "Bearer r8_from_env_abcdef"


async def test_missing_token_is_reported_by_the_first_call_not_the_constructor(router: respx.MockRouter) -> None:
    route = router.get("/v1/account").mock(return_value=httpx.Response(200, json={}))
    api = ReplicateClient(transport=httpx.MockTransport(router.handler))  # no token anywhere: fine so far
    try:
        with pytest.raises(ConfigError) as caught:
            await api.account()
        assert str(caught.value) == NO_TOKEN_MESSAGE
        assert "REPLICATE_API_TOKEN" in str(caught.value) and "https://replicate.com/account/api-tokens" in str(caught.value)
        assert route.call_count == 0  # nothing was sent without a token
    finally:
        await api.aclose()


async def test_a_mangled_token_is_a_config_error(router: respx.MockRouter) -> None:
    route = router.get("/v1/account").mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(ConfigError, match="contains a control character or a space"):  # refused before use
        async with ReplicateClient("r8_abc déf", transport=httpx.MockTransport(router.handler)) as api:
            await api.account()
    assert route.call_count == 0


async def test_bad_base_url_is_a_config_error() -> None:
    async with ReplicateClient(TOKEN, "ftp://example.invalid") as api:
        with pytest.raises(ConfigError, match="REPLICATE_BASE_URL 'ftp://example.invalid' is not an http"):
            await api.account()


# ---------------------------------------------------------------------------------------------
# Trainings


async def test_get_training_parses_every_real_shape(client: ReplicateClient, router: respx.MockRouter) -> None:
    tid = training_id(7)
    body = training_body(
        tid,
        status="aborted",
        logs=None,  # seen early in a training's life
        created_at="2024-09-10T05:10:31.018Z",  # 3 digits
        started_at="2024-09-10T05:10:32.123456Z",  # 6 digits
        completed_at="2024-09-10T05:52:07.826523891Z",  # 9 digits
        webhook_completed=None,  # real fields the schema lacks
        data_removed=False,
        deployment=None,
    )
    router.get(f"/v1/trainings/{tid}").mock(return_value=httpx.Response(200, json=body))
    training = await client.get_training(tid)
    assert training.id == tid and training.status is Status.ABORTED and training.status.terminal
    assert training.logs is None
    assert training.created_at == datetime(2024, 9, 10, 5, 10, 31, 18000, tzinfo=timezone.utc)
    assert training.started_at == datetime(2024, 9, 10, 5, 10, 32, 123456, tzinfo=timezone.utc)
    assert training.completed_at == datetime(2024, 9, 10, 5, 52, 7, 826523, tzinfo=timezone.utc)
    assert training.web_url == f"https://replicate.com/p/{tid}"
    assert training.model == FLUX and training.version == FLUX_VERSION
    # The raw form is exactly what Replicate sent, unknown fields included (the store keeps it).
    assert await client.get_training_raw(tid) == body


async def test_urls_in_responses_are_never_followed(client: ReplicateClient, router: respx.MockRouter) -> None:
    tid = training_id(8)
    body = training_body(tid, status="processing", logs="Starting train job\n")
    predictions = router.route(url__regex=r".*/v1/predictions/.*").mock(return_value=httpx.Response(500))
    get = router.get(f"/v1/trainings/{tid}").mock(return_value=httpx.Response(200, json=body))
    cancel = router.post(f"/v1/trainings/{tid}/cancel").mock(
        return_value=httpx.Response(200, json=training_body(tid, status="canceled", completed_at="2024-09-10T05:20:00.5Z"))
    )
    training = await client.get_training(tid)
    canceled = await client.cancel_training(training.id)
    assert canceled.status is Status.CANCELED
    assert (get.call_count, cancel.call_count, predictions.call_count) == (1, 1, 0)
    assert cancel.calls.last.request.content == b""  # cancel takes no body


async def test_list_trainings_follows_next_verbatim_across_three_pages_lazily(
    client: ReplicateClient, router: respx.MockRouter
) -> None:
    ids = [training_id(n) for n in range(237)]
    bodies = [training_body(tid, status="succeeded", output={"version": f"{DESTINATION}:{'b' * 64}", "weights": "https://example.com/w.tar"}) for tid in ids]
    page2 = f"{BASE}/v1/trainings?cursor=cD0yMDI0LTA5LTEwKzA1JTNBMTA%3D"
    page3 = f"{BASE}/v1/trainings?cursor=cD0yMDI0LTA4LTAxKzA5JTNBMDA%3D"
    first = router.get(url__eq=f"{BASE}/v1/trainings").mock(return_value=httpx.Response(200, json=page_body(bodies[:100], page2)))
    second = router.get(url__eq=page2).mock(return_value=httpx.Response(200, json=page_body(bodies[100:200], page3, f"{BASE}/v1/trainings")))
    third = router.get(url__eq=page3).mock(return_value=httpx.Response(200, json=page_body(bodies[200:], None, page2)))

    seen: list[str] = []
    async for training in client.list_trainings():
        seen.append(training.id)
        assert training.logs is None  # list items carry no logs
        if len(seen) == 100:
            # Still inside page one: the next page is fetched only when it is needed.
            assert (first.call_count, second.call_count, third.call_count) == (1, 0, 0)
    assert seen == ids
    assert (first.call_count, second.call_count, third.call_count) == (1, 1, 1)


async def test_next_link_with_the_default_port_spelled_out_is_the_same_origin(
    client: ReplicateClient, router: respx.MockRouter
) -> None:
    page2 = "https://api.replicate.com:443/v1/trainings?cursor=x"
    router.get(url__eq=f"{BASE}/v1/trainings").mock(return_value=httpx.Response(200, json=page_body([training_body(training_id(1))], page2)))
    second = router.get(url__regex=r".*cursor=x$").mock(return_value=httpx.Response(200, json=page_body([training_body(training_id(2))], None)))
    assert [t.id async for t in client.list_trainings()] == [training_id(1), training_id(2)]
    assert second.call_count == 1


async def test_list_trainings_page_hands_back_the_cursor(client: ReplicateClient, router: respx.MockRouter) -> None:
    page2 = f"{BASE}/v1/trainings?cursor=abc"
    router.get(url__eq=f"{BASE}/v1/trainings").mock(
        return_value=httpx.Response(200, json=page_body([training_body(training_id(1))], page2))
    )
    router.get(url__eq=page2).mock(return_value=httpx.Response(200, json=page_body([training_body(training_id(2))], None)))
    trainings, next_url = await client.list_trainings_page()
    assert [t.id for t in trainings] == [training_id(1)] and next_url == page2
    trainings, next_url = await client.list_trainings_page(next_url)
    assert [t.id for t in trainings] == [training_id(2)] and next_url is None
    raw, _ = await client.list_trainings_page_raw()
    assert raw[0]["id"] == training_id(1) and "urls" in raw[0]


async def test_next_link_to_another_host_is_refused(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.get(url__eq=f"{BASE}/v1/trainings").mock(
        return_value=httpx.Response(200, json=page_body([training_body(training_id(1))], "https://evil.example/v1/trainings?c=1"))
    )
    elsewhere = router.route(host="evil.example").mock(return_value=httpx.Response(200, json=page_body([], None)))
    with pytest.raises(ApiError, match="refusing to send your token"):
        async for _ in client.list_trainings():
            pass
    assert elsewhere.call_count == 0


async def test_create_training_sends_the_spec_request_and_keeps_the_destination(
    client: ReplicateClient, router: respx.MockRouter
) -> None:
    tid = training_id(3)
    created = training_body(tid, created_at="2023-09-08T16:32:56.990893084Z")  # 9 digits, as real creates send
    route = router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(
        return_value=httpx.Response(201, json=created)
    )
    training = await client.create_training(
        FLUX,
        FLUX_VERSION,
        DESTINATION,
        {"input_images": "https://example.com/images.zip", "steps": 1000},
        webhook="https://abc.ngrok.app/hook?run=1",
        webhook_events_filter=["start", "logs", "completed"],
    )
    assert training.id == tid and training.status is Status.STARTING
    assert training.destination == DESTINATION  # not in the response; we know what we asked for
    assert training.created_at == datetime(2023, 9, 8, 16, 32, 56, 990893, tzinfo=timezone.utc)
    sent = spec_shaped(sent_json(route), TRAINING_REQUEST)
    assert sent == {
        "destination": DESTINATION,
        "input": {"input_images": "https://example.com/images.zip", "steps": 1000},
        "webhook": "https://abc.ngrok.app/hook?run=1",
        "webhook_events_filter": ["start", "logs", "completed"],
    }
    assert route.calls.last.request.headers["content-type"] == "application/json"


async def test_create_training_without_version_uses_the_latest(client: ReplicateClient, router: respx.MockRouter) -> None:
    latest = version_body(FLUX_VERSION)
    model = router.get(f"/v1/models/{FLUX}").mock(return_value=httpx.Response(200, json=model_body(FLUX, latest)))
    route = router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(
        return_value=httpx.Response(201, json=training_body(training_id(4)))
    )
    training = await client.create_training(FLUX, None, DESTINATION, {"input_images": "https://x/y.zip"})
    assert training.id == training_id(4) and model.call_count == 1 and route.call_count == 1
    assert sent_json(route) == {"destination": DESTINATION, "input": {"input_images": "https://x/y.zip"}}
    # `owner/name:version` pins the version without a model lookup.
    await client.create_training(f"{FLUX}:{FLUX_VERSION}", None, DESTINATION, {})
    assert model.call_count == 1 and route.call_count == 2


async def test_create_training_for_a_model_without_versions(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.get("/v1/models/alice/empty").mock(return_value=httpx.Response(200, json=model_body("alice/empty", None)))
    with pytest.raises(BadArgumentError, match="alice/empty has no published version"):
        await client.create_training("alice/empty", None, DESTINATION, {})


async def test_create_training_checks_arguments_before_sending(client: ReplicateClient, router: respx.MockRouter) -> None:
    anything = router.route().mock(return_value=httpx.Response(500))
    with pytest.raises(BadArgumentError, match="destination 'nobody' is not of the form owner/name"):
        await client.create_training(FLUX, FLUX_VERSION, "nobody", {})
    with pytest.raises(BadArgumentError, match="unknown webhook event.*'finished'.*start, output, logs, completed"):
        await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {}, "https://h/x", ["start", "finished"])
    with pytest.raises(BadArgumentError, match="cannot be sent as JSON"):
        await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {"when": datetime.now()})
    with pytest.raises(BadArgumentError, match="is not an http"):
        await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {}, webhook="ftp://h/x")
    with pytest.raises(BadArgumentError, match="trainer version '../../account' is not a valid id"):
        await client.create_training(FLUX, "../../account", DESTINATION, {})
    assert anything.call_count == 0


async def test_ids_that_would_change_the_path_are_refused(client: ReplicateClient, router: respx.MockRouter) -> None:
    anything = router.route().mock(return_value=httpx.Response(200, json={}))
    for bad in ("../account", "abc/cancel", "", "a b"):
        with pytest.raises(BadArgumentError, match="is not a valid id"):
            await client.get_training(bad)
    with pytest.raises(BadArgumentError, match="is not of the form owner/name"):
        await client.get_model("ostris/flux/../x")
    assert anything.call_count == 0


# ---------------------------------------------------------------------------------------------
# Models, versions, schemas, files


async def test_training_input_schema_from_the_latest_version_with_refs_inlined(
    client: ReplicateClient, router: respx.MockRouter
) -> None:
    router.get(f"/v1/models/{FLUX}").mock(return_value=httpx.Response(200, json=model_body(FLUX, version_body())))
    schema = await client.training_input_schema(FLUX)
    assert schema["required"] == ["input_images"]
    assert schema["properties"]["steps"]["default"] == 1000
    optimizer = schema["properties"]["optimizer"]
    assert optimizer["allOf"][0]["enum"] == ["adamw8bit", "prodigy"] and optimizer["default"] == "adamw8bit"


async def test_training_input_schema_of_a_given_version(client: ReplicateClient, router: respx.MockRouter) -> None:
    other = hashlib.sha256(b"older").hexdigest()
    route = router.get(f"/v1/models/{FLUX}/versions/{other}").mock(return_value=httpx.Response(200, json=version_body(other)))
    schema = await client.training_input_schema(FLUX, other)
    assert "input_images" in schema["properties"] and route.call_count == 1
    assert (await client.get_model_version(FLUX, other))["id"] == other


async def test_latest_version_without_schema_is_fetched(client: ReplicateClient, router: respx.MockRouter) -> None:
    bare = {"id": FLUX_VERSION, "created_at": "2024-08-14T17:12:03.318466Z", "cog_version": "0.9.13", "openapi_schema": None}
    router.get(f"/v1/models/{FLUX}").mock(return_value=httpx.Response(200, json=model_body(FLUX, spec_shaped(bare, VERSION))))
    full = router.get(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}").mock(return_value=httpx.Response(200, json=version_body()))
    assert "steps" in (await client.training_input_schema(FLUX))["properties"] and full.call_count == 1


async def test_a_model_that_is_not_a_trainer(client: ReplicateClient, router: respx.MockRouter) -> None:
    plain = version_body(FLUX_VERSION, {"components": {"schemas": {"Input": {"type": "object"}}}})
    router.get("/v1/models/bob/sdxl-clone").mock(return_value=httpx.Response(200, json=model_body("bob/sdxl-clone", plain)))
    with pytest.raises(BadArgumentError, match="bob/sdxl-clone .*has no TrainingInput.*not a trainer"):
        await client.training_input_schema("bob/sdxl-clone")


async def test_list_model_versions_reads_every_page(client: ReplicateClient, router: respx.MockRouter) -> None:
    versions = [version_body(hashlib.sha256(bytes([n])).hexdigest()) for n in range(3)]
    page2 = f"{BASE}/v1/models/{FLUX}/versions?cursor=2"
    router.get(url__eq=f"{BASE}/v1/models/{FLUX}/versions").mock(
        return_value=httpx.Response(200, json=spec_shaped({"next": page2, "previous": None, "results": versions[:2]}, VERSIONS_PAGE))
    )
    router.get(url__eq=page2).mock(
        return_value=httpx.Response(200, json=spec_shaped({"next": None, "previous": None, "results": versions[2:]}, VERSIONS_PAGE))
    )
    assert [v["id"] for v in await client.list_model_versions(FLUX)] == [v["id"] for v in versions]


async def test_create_model_sends_the_spec_request(client: ReplicateClient, router: respx.MockRouter) -> None:
    created = model_body(DESTINATION, None)
    route = router.post("/v1/models").mock(return_value=httpx.Response(201, json=created))
    assert await client.create_model(DESTINATION, description="my LoRA") == created
    assert spec_shaped(sent_json(route), MODEL_REQUEST) == {
        "owner": "alice", "name": "my-flux-lora", "visibility": "private", "hardware": "cpu", "description": "my LoRA"
    }
    with pytest.raises(BadArgumentError, match="visibility 'secret'"):
        await client.create_model(DESTINATION, visibility="secret")


async def _serve(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=200 * 1024 * 1024)
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_upload_file_sends_multipart_content_to_a_real_server(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    async def files(request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        assert isinstance(part, BodyPartReader)
        received.append(
            {
                "auth": request.headers["Authorization"],
                "name": part.name,
                "filename": part.filename,
                "type": part.headers.get("Content-Type"),
                "data": await part.read(),
            }
        )
        fid = f"file{len(received)}"
        body = {
            "id": fid,
            "content_type": "application/zip",
            "size": len(received[-1]["data"]),
            "checksums": {"sha256": hashlib.sha256(received[-1]["data"]).hexdigest()},
            "metadata": {},
            "created_at": "2024-02-21T12:54:18.578761Z",
            "expires_at": "2024-02-22T12:54:18.578761Z",
            "urls": {"get": f"https://api.replicate.com/v1/files/{fid}"},
        }
        return web.json_response(spec_shaped(body, FILE), status=201)

    runner, base = await _serve([web.post("/v1/files", files)])
    try:
        archive = tmp_path / "faces.zip"
        archive.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
        async with ReplicateClient(TOKEN, base) as api:
            from_path = await api.upload_file(archive)
            from_bytes = await api.upload_file(b"PK\x05\x06rest", "inline.zip")
    finally:
        await runner.cleanup()
    assert from_path["urls"]["get"] == "https://api.replicate.com/v1/files/file1"
    assert from_bytes["size"] == 8
    assert received[0] == {
        "auth": f"Bearer {TOKEN}",
        "name": "content",
        "filename": "faces.zip",
        "type": "application/zip",
        "data": archive.read_bytes(),
    }
    assert received[1]["filename"] == "inline.zip" and received[1]["data"] == b"PK\x05\x06rest"


async def test_upload_file_refuses_what_replicate_would(client: ReplicateClient, router: respx.MockRouter, tmp_path: Path) -> None:
    anything = router.route().mock(return_value=httpx.Response(500))
    with pytest.raises(BadArgumentError, match=r"cannot read .*missing\.zip"):
        await client.upload_file(tmp_path / "missing.zip")
    huge = tmp_path / "huge.zip"
    with huge.open("wb") as handle:  # sparse: 100 MB on paper, nothing on disk
        handle.truncate(100 * 1024 * 1024)
    with pytest.raises(BadArgumentError, match=r"huge\.zip is 100\.0 MB: Replicate takes files under 100 MB"):
        await client.upload_file(huge)
    assert anything.call_count == 0


async def test_upload_file_413_reports_replicates_detail(client: ReplicateClient, router: respx.MockRouter) -> None:
    too_big = spec_shaped({"detail": "Files must be less than 100MB in size"}, response_schema("/files", "post", "413"))
    router.post("/v1/files").mock(return_value=httpx.Response(413, json=too_big))
    with pytest.raises(ApiError, match="413 .*Files must be less than 100MB in size") as caught:
        await client.upload_file(b"x", "x.zip")
    assert caught.value.status == 413


# ---------------------------------------------------------------------------------------------
# Retries and backoff


def test_backoff_doubles_from_half_a_second_with_jitter_and_a_cap() -> None:
    def backoff_delay(retry: int, rng: Callable[[], float]) -> float:  # the client's schedule
        return Backoff(BACKOFF_BASE, BACKOFF_CAP, jitter=JITTER, rng=rng).delay(retry)

    assert [backoff_delay(n, lambda: 0.5) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 20, 20]
    assert backoff_delay(0, lambda: 0.0) == 0.375 and backoff_delay(0, lambda: 1.0) == 0.625
    assert backoff_delay(5, lambda: 1.0) == BACKOFF_CAP  # 16 s + 25 % would pass the cap
    assert backoff_delay(1000, lambda: 0.0) == 15.0


def test_retry_after_hint_reads_header_seconds_dates_and_the_429_body() -> None:
    now = time.time()
    assert retry_after_hint(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after_hint(httpx.Response(429, headers={"Retry-After": "1.5"})) == 1.5
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert retry_after_hint(httpx.Response(429, headers={"Retry-After": date}), now=now) == pytest.approx(12, abs=1)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert retry_after_hint(httpx.Response(429, headers={"Retry-After": past}), now=now) == 0.0
    throttled = {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}
    assert retry_after_hint(httpx.Response(429, json=throttled)) == 30.0
    assert retry_after_hint(httpx.Response(429, json={"detail": "resets in ~2m"})) == 120.0
    assert retry_after_hint(httpx.Response(429, headers={"Retry-After": "soon"}, json=throttled)) == 30.0
    assert retry_after_hint(httpx.Response(429, text="<html>slow down</html>")) is None


async def test_get_retries_5xx_with_growing_backoff(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    tid = training_id(9)
    route = router.get(f"/v1/trainings/{tid}").mock(
        side_effect=[httpx.Response(503), httpx.Response(502, text="<html>Bad gateway</html>"), problem(500, "oops"),
                     httpx.Response(200, json=training_body(tid))]
    )
    assert (await client.get_training(tid)).id == tid
    assert route.call_count == 4
    lows, highs = [0.375, 0.75, 1.5], [0.625, 1.25, 2.5]
    assert all(low <= d <= high for d, low, high in zip(sleeps.delays, lows, highs, strict=True))


async def test_get_gives_up_after_max_retries_with_a_server_error(router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    route = router.get("/v1/account").mock(return_value=problem(500, "Internal server error", "Internal Server Error"))
    async with ReplicateClient(TOKEN, transport=httpx.MockTransport(router.handler), sleep=sleeps, max_retries=8) as api:
        with pytest.raises(ServerError) as caught:
            await api.account()
    assert route.call_count == 9 and len(sleeps.delays) == 8
    assert all(15 <= d <= 20 for d in sleeps.delays[6:])  # 32 s would be past the cap
    assert sleeps.delays == sorted(sleeps.delays[:6]) + sleeps.delays[6:]
    error = caught.value
    assert (error.status, error.title, error.detail) == (500, "Internal Server Error", "Internal server error")
    assert str(error) == (
        "500 Internal Server Error from Replicate after 8 retries: Internal server error: "
        "Replicate is having trouble; try again in a few minutes"
    )


async def test_429_waits_as_long_as_retry_after_says(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    route = router.get("/v1/account").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7", "ratelimit-remaining": "0", "ratelimit-reset": "7"}),
            httpx.Response(429, headers={"Retry-After": email.utils.formatdate(time.time() + 10, usegmt=True)}),
            httpx.Response(429, json={"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}),
            httpx.Response(429),
            httpx.Response(200, json={"type": "user", "username": "alice"}),
        ]
    )
    assert (await client.account())["username"] == "alice"
    assert route.call_count == 5
    assert sleeps.delays[0] == 7.0
    assert 8.0 <= sleeps.delays[1] <= 10.5
    assert sleeps.delays[2] == 30.0
    assert 3.0 <= sleeps.delays[3] <= 5.0  # no hint: the backoff for the 4th retry (4 s ± 25 %)


async def test_persistent_429_becomes_a_rate_limit_error_that_says_when(
    client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder
) -> None:
    throttled = {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}
    route = router.get("/v1/account").mock(return_value=httpx.Response(429, json=throttled))
    with pytest.raises(RateLimitError) as caught:
        await client.account()
    assert route.call_count == 6 and sleeps.delays == [30.0] * 5
    assert caught.value.retry_after == 30.0 and caught.value.status == 429
    assert str(caught.value) == (
        "429 rate limited by Replicate after 5 retries: try again in 30 s "
        "(Request was throttled. Your rate limit resets in ~30s.)"
    )


async def test_a_long_retry_after_is_handed_to_the_caller_at_once(
    client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder
) -> None:
    route = router.get("/v1/account").mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimitError, match="try again in 120 s") as caught:
        await client.account()
    assert caught.value.retry_after == 120.0 and route.call_count == 1 and sleeps.delays == []


async def test_post_is_never_retried_on_5xx(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    route = router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(return_value=problem(500, "boom"))
    with pytest.raises(ServerError) as caught:
        await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {})
    assert route.call_count == 1 and sleeps.delays == []
    assert str(caught.value) == (
        "500 Internal Server Error from Replicate: boom: not retried, because repeating this request "
        "could do it twice; check whether it took effect before trying again"
    )


async def test_post_is_never_retried_on_connection_errors(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    route = router.post(f"/v1/trainings/{training_id(1)}/cancel").mock(side_effect=httpx.ReadError("connection reset"))
    with pytest.raises(NetworkError, match="cannot reach https://api.replicate.com: connection reset; check your connection"):
        await client.cancel_training(training_id(1))
    assert route.call_count == 1 and sleeps.delays == []


async def test_post_is_retried_on_429(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    route = router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(201, json=training_body(training_id(5)))]
    )
    training = await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {"steps": 10})
    assert training.id == training_id(5) and route.call_count == 2 and sleeps.delays == [2.0]
    assert sent_json(route, 0) == sent_json(route, 1)


async def test_get_retries_timeouts_and_connection_errors(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    route = router.get("/v1/account").mock(
        side_effect=[httpx.ConnectTimeout("slow"), httpx.ConnectError("refused"), httpx.Response(200, json={"type": "user", "username": "a"})]
    )
    assert (await client.account())["username"] == "a"
    assert route.call_count == 3 and len(sleeps.delays) == 2 and 0.375 <= sleeps.delays[0] <= 0.625


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_on_loopback_is_a_network_error(sleeps: SleepRecorder) -> None:
    port = _closed_port()
    async with ReplicateClient(TOKEN, f"http://127.0.0.1:{port}", sleep=sleeps, max_retries=2) as api:
        with pytest.raises(NetworkError) as caught:
            await api.get_training(training_id(1))
    message = str(caught.value)
    assert message.startswith(f"cannot reach http://127.0.0.1:{port}: ") and message.endswith("3 attempts; check your connection")
    assert len(sleeps.delays) == 2 and caught.value.status is None


async def test_a_server_that_does_not_answer_in_time_is_a_network_error() -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response({})

    runner, base = await _serve([web.get("/v1/account", stall)])
    try:
        async with ReplicateClient(TOKEN, base, timeout=0.2, max_retries=0) as api:
            started = time.monotonic()
            with pytest.raises(NetworkError, match=rf"cannot reach {base}: no answer within 0\.2 s \(ReadTimeout\); check your connection"):
                await api.account()
            assert time.monotonic() - started < 2
    finally:
        release.set()
        await runner.cleanup()


# ---------------------------------------------------------------------------------------------
# Error messages


async def test_401_is_an_auth_error(client: ReplicateClient, router: respx.MockRouter, sleeps: SleepRecorder) -> None:
    real = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
    route = router.get("/v1/account").mock(return_value=httpx.Response(401, json=real, headers={"content-type": "application/problem+json"}))
    with pytest.raises(AuthError) as caught:
        await client.account()
    assert str(caught.value) == "401 Unauthenticated: set REPLICATE_API_TOKEN to a valid token"
    assert (caught.value.status, caught.value.title, caught.value.detail) == (401, "Unauthenticated", real["detail"])
    assert route.call_count == 1 and sleeps.delays == []


async def test_404_training_names_the_training(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.get("/v1/trainings/xyz").mock(return_value=problem(404, "Not found.", "Not Found"))
    with pytest.raises(NotFoundError) as caught:
        await client.get_training("xyz")
    assert str(caught.value).startswith("404: training xyz not found on Replicate: check the id")
    assert (caught.value.kind, caught.value.name, caught.value.status) == ("training", "xyz", 404)


async def test_404_destination_says_to_create_it(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(
        return_value=httpx.Response(404, json={"detail": "The specified training destination does not exist", "status": 404})
    )
    with pytest.raises(NotFoundError) as caught:
        await client.create_training(FLUX, FLUX_VERSION, "alice/missing", {})
    assert str(caught.value).startswith(
        "404: destination model alice/missing does not exist: create it first (replitrack can create it: "
    )
    assert (caught.value.kind, caught.value.name) == ("destination", "alice/missing")
    assert caught.value.detail == "The specified training destination does not exist"


async def test_404_trainer_version_and_model(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(return_value=problem(404, "Not found."))
    with pytest.raises(NotFoundError, match=f"404: trainer {FLUX} version {FLUX_VERSION} not found on Replicate") as caught:
        await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {})
    assert caught.value.kind == "trainer"
    router.get("/v1/models/nobody/nothing").mock(return_value=problem(404, "Not found."))
    with pytest.raises(NotFoundError, match="404: model nobody/nothing not found on Replicate: check the owner/name"):
        await client.get_model("nobody/nothing")


@pytest.mark.parametrize("status", [400, 422])
async def test_400_and_422_carry_the_apis_detail(client: ReplicateClient, router: respx.MockRouter, status: int) -> None:
    body = {
        "title": "Input validation failed",
        "detail": "- input.steps: Must be greater than or equal to 3",
        "status": status,
        "invalid_fields": [{"type": "minimum", "field": "input.steps", "description": "steps must be at least 3"}],
    }
    router.post(f"/v1/models/{FLUX}/versions/{FLUX_VERSION}/trainings").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ValidationError) as caught:
        await client.create_training(FLUX, FLUX_VERSION, DESTINATION, {"steps": 1})
    assert str(caught.value) == (
        f"{status} Input validation failed: Replicate rejected the training input: "
        "- input.steps: Must be greater than or equal to 3; steps must be at least 3; fix it and try again"
    )
    assert caught.value.status == status


async def test_403_and_other_4xx(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.post("/v1/models").mock(
        side_effect=[problem(403, "You do not have permission to create models for acme", "Forbidden"),
                     problem(409, "A model with that name already exists", "Conflict")]
    )
    with pytest.raises(ApiError, match="403 Forbidden: You do not have permission .*: this token may not do that"):
        await client.create_model("acme/thing")
    with pytest.raises(ApiError, match="409 Conflict: Replicate refused the request: A model with that name already exists"):
        await client.create_model("alice/thing")


async def test_non_json_bodies_are_tolerated(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.get("/v1/account").mock(
        side_effect=[httpx.Response(404, text="<html><body>nginx</body></html>"), httpx.Response(200, text="hello")]
    )
    with pytest.raises(NotFoundError) as caught:
        await client.account()
    assert "<html>" not in str(caught.value) and "REPLICATE_BASE_URL" in str(caught.value) and caught.value.detail is None
    with pytest.raises(ApiError, match="not a JSON object: check that REPLICATE_BASE_URL"):
        await client.account()


async def test_a_body_that_is_not_a_training(client: ReplicateClient, router: respx.MockRouter) -> None:
    router.get(f"/v1/trainings/{training_id(1)}").mock(return_value=httpx.Response(200, json={"detail": "hm"}))
    with pytest.raises(ApiError, match=r"not a training \(not a training object: it has no 'id'\)"):
        await client.get_training(training_id(1))
    router.get(f"/v1/trainings/{training_id(2)}").mock(
        return_value=httpx.Response(200, json={"id": training_id(2), "status": "starting", "created_at": 1725944431})
    )
    with pytest.raises(ApiError, match="is not a training"):
        await client.get_training(training_id(2))


async def test_redirects_are_reported_not_followed(client: ReplicateClient, router: respx.MockRouter) -> None:
    route = router.get("/v1/account").mock(return_value=httpx.Response(301, headers={"location": "https://elsewhere.example/v1/account"}))
    with pytest.raises(ApiError, match="301: https://api.replicate.com redirects to https://elsewhere.example/v1/account"):
        await client.account()
    assert route.call_count == 1


def test_every_client_error_is_a_replitrack_error() -> None:
    for cls in (ApiError, AuthError, NotFoundError, RateLimitError, ServerError, NetworkError, ValidationError, BadArgumentError):
        assert issubclass(cls, ReplitrackError)
    assert issubclass(NetworkError, ApiError) and issubclass(AuthError, ApiError)


async def test_client_is_usable_without_a_context_manager(router: respx.MockRouter) -> None:
    router.get("/v1/account").mock(return_value=httpx.Response(200, json={"type": "user", "username": "x"}))
    api = ReplicateClient(TOKEN, transport=httpx.MockTransport(router.handler))
    assert (await api.account())["username"] == "x"
    await api.aclose()

