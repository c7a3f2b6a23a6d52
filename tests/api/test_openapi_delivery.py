"""/openapi.json for delivery beyond the browser: every endpoint is there, its request body is
the schema the endpoint decodes, and what the endpoint really answers matches the documented
schema. tests/api/test_operations.py checks the document as a whole (every route listed, every
`$ref` resolves); this file checks it against the live endpoints.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from herald_server.api import schemas
from herald_server.api.openapi import document as openapi_document
from herald_server.auth import issue_unsubscribe_token
from herald_server.config import Settings, with_dev_vapid_key
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.api.test_operations import HTTP_METHODS
from tests.api.test_push_subscriptions import subscription
from tests.conftest import auth, run_server
from tests.helpers import eventually
from tests.servers.webhook import webhook_receiver

pytestmark = pytest.mark.anyio

REF = "#/components/schemas/"
# Path → method → the Struct its handler decodes (None: no body).
ENDPOINTS: dict[str, dict[str, type[msgspec.Struct] | None]] = {
    "/api/preferences": {"get": None, "put": schemas.PreferencesBody},
    "/api/channels": {"get": None},
    "/api/contacts/{user}": {"get": None, "put": schemas.ContactBody, "delete": None},
    "/api/push-subscriptions": {
        "get": None,
        "post": schemas.PushSubscriptionBody,
        "delete": schemas.PushEndpointBody,
    },
    "/api/webhooks": {"get": None, "post": schemas.WebhookBody},
    "/api/webhooks/{id}": {"delete": None},
    "/api/templates": {"get": None},
    "/api/templates/{key}": {"get": None, "put": schemas.TemplateBody, "delete": None},
    "/api/templates/{key}/preview": {"post": schemas.PreviewBody},
    "/api/unsubscribe": {"get": None, "post": None},
    "/api/admin/deliveries": {"get": None},
    "/api/admin/deliveries/{id}": {"get": None},
    "/api/admin/dead-letters": {"get": None},
    "/api/admin/dead-letters/{id}/retry": {"post": None},
    "/api/admin/types": {"get": None},
    "/api/admin/types/{type}": {"put": schemas.TypeDefaultsBody, "delete": None},
}


# --- a small JSON Schema check, enough for what msgspec generates ---------------------------


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[kind])


def mismatches(
    value: Any, schema: dict[str, Any], components: dict[str, Any], at: str
) -> list[str]:
    """Where `value` breaks `schema`; empty when it conforms."""
    if "$ref" in schema:
        return mismatches(value, components[schema["$ref"].removeprefix(REF)], components, at)
    if "anyOf" in schema:
        fits = any(not mismatches(value, option, components, at) for option in schema["anyOf"])
        return [] if fits else [f"{at}: {value!r} matches no choice of {schema['anyOf']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} not in {schema['enum']}"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            return [f"{at}: {value!r} is not {kinds}"]
    if isinstance(value, dict):
        return _object_mismatches(value, schema, components, at)
    if isinstance(value, list):
        item = schema.get("items", {})
        return [
            m
            for n, entry in enumerate(value)
            for m in mismatches(entry, item, components, f"{at}[{n}]")
        ]
    if isinstance(value, str):
        return _string_mismatches(value, schema, at)
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum", value), schema.get("maximum", value)
        return [] if low <= value <= high else [f"{at}: {value!r} is out of [{low}, {high}]"]
    return []


def _object_mismatches(
    value: dict[str, Any], schema: dict[str, Any], components: dict[str, Any], at: str
) -> list[str]:
    found = [f"{at}: {name!r} missing" for name in schema.get("required", ()) if name not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames", {})
    for name, entry in value.items():
        found += _string_mismatches(name, names, f"{at} key")
        if name in properties:
            found += mismatches(entry, properties[name], components, f"{at}.{name}")
        elif extra is False:
            found.append(f"{at}: {name!r} is not in the schema")
        elif isinstance(extra, dict):
            found += mismatches(entry, extra, components, f"{at}.{name}")
    return found


def _string_mismatches(value: str, schema: dict[str, Any], at: str) -> list[str]:
    found = []
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{at}: {value!r} does not match {schema['pattern']}")
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
        found.append(f"{at}: {value!r} has the wrong length")
    return found


# --- a node that exercises every endpoint ---------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    path: str
    method: str
    request: Any
    status: int
    media: str
    answer: Any


@dataclass
class Recorder:
    client: httpx.AsyncClient
    exchanges: list[Exchange]

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        concrete: str | None = None,
        body: Any = None,
        **params: str,
    ) -> Any:
        response = await self.client.request(
            method.upper(), concrete or path, headers=headers, json=body, params=params
        )
        media = response.headers.get("content-type", "").split(";")[0]
        answer = response.json() if "json" in media else response.text
        self.exchanges.append(Exchange(path, method, body, response.status_code, media, answer))
        return answer


async def _targets(record: Recorder, settings: Settings, hook_url: str) -> dict[str, Any]:
    alice, bob = auth(settings, "alice"), auth(settings, "bob")
    publisher = auth(settings, "shop", SCOPE_PUBLISH)
    chosen = {"timezone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:00:30"}}
    await record.call("get", "/api/preferences", alice)
    await record.call(
        "put", "/api/preferences", alice, body={**chosen, "types": {"x": {"sms": True}}}
    )
    await record.call("put", "/api/preferences", alice, body={"timezone": "Nowhere/Atlantis"})
    contact = {"email": "alice@example.com", "phone": "+15551230001"}
    for _ in range(2):
        await record.call("put", "/api/contacts/{user}", publisher, "/api/contacts/alice", contact)
    await record.call("get", "/api/contacts/{user}", alice, "/api/contacts/alice")
    await record.call("get", "/api/contacts/{user}", bob, "/api/contacts/alice")
    await record.call("get", "/api/channels", alice)
    await record.call("delete", "/api/contacts/{user}", publisher, "/api/contacts/alice")
    await record.call("delete", "/api/contacts/{user}", publisher, "/api/contacts/alice")
    browser = subscription()
    for _ in range(2):
        await record.call("post", "/api/push-subscriptions", alice, body=browser)
    await record.call("get", "/api/push-subscriptions", alice)
    await record.call(
        "post",
        "/api/push-subscriptions",
        alice,
        body={**browser, "keys": {"p256dh": "x", "auth": "y"}},
    )
    for _ in range(2):
        await record.call(
            "delete", "/api/push-subscriptions", alice, body={"endpoint": browser["endpoint"]}
        )
    hook = await record.call(
        "post", "/api/webhooks", auth(settings, "dave"), body={"url": hook_url}
    )
    spare = await record.call("post", "/api/webhooks", bob, body={"url": hook_url, "types": ["x"]})
    await record.call("post", "/api/webhooks", bob, body={"url": "ftp://example.com/"})
    await record.call("get", "/api/webhooks", bob)
    await record.call("get", "/api/webhooks", auth(settings, "ops", SCOPE_ADMIN), all="true")
    for _ in range(2):
        await record.call("delete", "/api/webhooks/{id}", bob, f"/api/webhooks/{spare['id']}")
    return {"hook_secret": hook["secret"]}


async def _templates(record: Recorder, settings: Settings, admin: dict[str, str]) -> None:
    document = {
        "description": "d",
        "locales": {
            "en": {
                "in_app": {"title": "Hi {{ name }}"},
                "email": {"subject": "s", "html": "<p>{{ name }}</p>"},
            }
        },
    }
    for _ in range(2):
        await record.call("put", "/api/templates/{key}", admin, "/api/templates/hi", document)
    await record.call(
        "put",
        "/api/templates/{key}",
        admin,
        "/api/templates/hi",
        {"locales": {"en": {"sms": {"text": "x"}}}},
    )
    await record.call("get", "/api/templates", admin)
    await record.call("get", "/api/templates/{key}", admin, "/api/templates/hi")
    preview = "/api/templates/hi/preview"
    await record.call(
        "post", "/api/templates/{key}/preview", admin, preview, {"vars": {"name": "A"}}
    )
    await record.call("post", "/api/templates/{key}/preview", admin, preview, {"vars": {}})
    for _ in range(2):
        await record.call("delete", "/api/templates/{key}", admin, "/api/templates/hi")
    await record.call("get", "/api/templates/{key}", admin, "/api/templates/hi")
    await record.call("get", "/api/templates", auth(settings, "mallory"))
    await record.call("get", "/api/templates", {})


async def _operations(record: Recorder, settings: Settings, admin: dict[str, str]) -> None:
    steps = [{"after_seconds": 60, "unless": "seen", "channel": "email"}]
    for body in ({"channels": {"email": True}}, {"channels": {"push": False}, "escalation": steps}):
        await record.call("put", "/api/admin/types/{type}", admin, "/api/admin/types/*", body)
    await record.call("get", "/api/admin/types", admin)
    for _ in range(2):
        await record.call("delete", "/api/admin/types/{type}", admin, "/api/admin/types/*")
    publisher = auth(settings, "shop", SCOPE_PUBLISH)
    sent = await record.call(
        "post", "/api/notifications", publisher, body={"recipients": ["dave"], "title": "t"}
    )

    async def delivered() -> bool:
        page = await record.client.get(
            "/api/admin/deliveries", headers=admin, params={"status": "delivered"}
        )
        return bool(page.json()["items"])

    await eventually(delivered)
    page = await record.call("get", "/api/admin/deliveries", admin, notification=sent["id"])
    delivery = page["items"][0]["id"]
    await record.call("get", "/api/admin/deliveries", admin, status="nonsense")
    await record.call(
        "get", "/api/admin/deliveries/{id}", admin, f"/api/admin/deliveries/{delivery}"
    )
    await record.call("get", "/api/admin/deliveries/{id}", admin, "/api/admin/deliveries/999999")
    await record.call("get", "/api/admin/dead-letters", admin)
    retry = "/api/admin/dead-letters/{id}/retry"
    await record.call("post", retry, admin, retry.replace("{id}", delivery))
    token = issue_unsubscribe_token(settings, "alice", "billing")
    for method in ("get", "post"):
        await record.call(method, "/api/unsubscribe", {}, token=token)
        await record.call(method, "/api/unsubscribe", {}, token="forged")


@pytest.fixture
async def exchanges(settings: Settings, tmp_path: Path) -> AsyncIterator[list[Exchange]]:
    """Every endpoint called as in the tests of each, with what it answered."""
    configured = with_dev_vapid_key(
        replace(
            settings,
            dev_vapid_file=str(tmp_path / "vapid"),
            allow_private_targets=True,
            in_process_worker=True,
            dispatch_interval=0.05,
        )
    )
    async with (
        webhook_receiver() as hooks,
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        record = Recorder(client, [])
        admin = auth(configured, "ops", SCOPE_ADMIN)
        found = await _targets(record, configured, hooks.url("dave"))
        hooks.set_secret("dave", found["hook_secret"])
        await _templates(record, configured, admin)
        await _operations(record, configured, admin)
        yield [exchange for exchange in record.exchanges if exchange.path in ENDPOINTS]


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


# --- the document against the endpoints ----------------------------------------------------


async def test_every_delivery_endpoint_is_documented_with_its_methods(
    client: httpx.AsyncClient,
) -> None:
    paths = (await openapi(client))["paths"]
    for path, methods in ENDPOINTS.items():
        assert path in paths, path
        assert {method for method in paths[path] if method in HTTP_METHODS} == set(methods), path


async def test_each_documented_request_body_is_the_schema_its_endpoint_decodes(
    client: httpx.AsyncClient,
) -> None:
    document = await openapi(client)
    components = document["components"]["schemas"]
    for path, methods in ENDPOINTS.items():
        for method, struct in methods.items():
            body = document["paths"][path][method].get("requestBody")
            if struct is None:
                assert body is None, (path, method)
                continue
            ref = body["content"]["application/json"]["schema"]["$ref"]
            assert ref == REF + struct.__name__, (path, method)
            documented = set(components[struct.__name__]["properties"])
            assert documented == {field.encode_name for field in msgspec.structs.fields(struct)}


def _documented(operation: dict[str, Any], status: int) -> dict[str, Any] | None:
    responses: dict[str, Any] = operation["responses"]
    found = responses.get(str(status))
    if found is None and 200 <= status < 300:
        # The success answer as documented, for a 2xx the document does not list apart.
        found = next(value for key, value in responses.items() if key.startswith("2"))
    return found


async def test_every_answer_matches_its_documented_schema(
    exchanges: list[Exchange], client: httpx.AsyncClient
) -> None:
    document = await openapi(client)
    components = document["components"]["schemas"]
    checked: set[tuple[str, str]] = set()
    for exchange in exchanges:
        operation = document["paths"][exchange.path][exchange.method]
        response = _documented(operation, exchange.status)
        where = f"{exchange.method.upper()} {exchange.path} → {exchange.status}"
        assert response is not None, where
        content: dict[str, Any] | None = response.get("content")
        if exchange.status == 204:
            assert content is None, where
            continue
        assert content is not None, where
        assert exchange.media in content, (where, exchange.media, list(content))
        schema = content[exchange.media].get("schema")
        if schema is not None:
            assert mismatches(exchange.answer, schema, components, "$") == [], where
        checked.add((exchange.path, exchange.method))
    # Each documented request body accepts what the endpoint accepted.
    for exchange in exchanges:
        struct = ENDPOINTS[exchange.path][exchange.method]
        if struct is not None and exchange.status < 300:
            schema = {"$ref": REF + struct.__name__}
            assert mismatches(exchange.request, schema, components, "$") == [], exchange
    every = {(path, method) for path, methods in ENDPOINTS.items() for method in methods}
    assert every - checked - {("/api/admin/dead-letters/{id}/retry", "post")} == set()


async def test_every_status_an_endpoint_answers_is_documented(
    exchanges: list[Exchange], client: httpx.AsyncClient
) -> None:
    paths = (await openapi(client))["paths"]
    undocumented = {
        f"{exchange.method.upper()} {exchange.path} → {exchange.status}"
        for exchange in exchanges
        if str(exchange.status) not in paths[exchange.path][exchange.method]["responses"]
    }
    assert undocumented == set()


async def test_a_problem_answer_is_the_documented_problem_document(
    exchanges: list[Exchange],
) -> None:
    problems = [exchange for exchange in exchanges if exchange.status >= 400]
    assert {exchange.status for exchange in problems} >= {400, 403, 404, 422}
    for exchange in problems:
        assert exchange.media == "application/problem+json", exchange
        assert set(exchange.answer) <= {"type", "title", "status", "detail"}, exchange
        assert exchange.answer["status"] == exchange.status


async def test_the_schema_check_finds_what_breaks_a_schema() -> None:
    """The check above passes only because the answers conform, not because it sees nothing."""
    components = openapi_document()["components"]["schemas"]
    broken = {
        "WebhookOut": {"id": "1", "url": "u", "types": None, "created_at": "t"},
        "PreferencesBody": {"muted": "no", "quiet_hours": {"start": "25:00", "end": "07:00"}},
        "TypeDefaultsOut": {
            "type": "x",
            "updated_at": None,
            "escalation": [{"after_seconds": -1, "unless": "seen", "channel": "email"}],
        },
        "TemplateOut": {"locales": {}, "key": "k", "version": "1", "updated_at": "t"},
        "DeliveryPage": {"items": [{"id": 1}], "next_cursor": None},
    }
    for name, value in broken.items():
        assert mismatches(value, {"$ref": REF + name}, components, "$") != [], name
