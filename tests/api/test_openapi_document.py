"""/openapi.json as a client generator and a person read it: every operation named, tagged
and described, and the answers a client must handle (429, 503, 304 and their headers) are
the ones a live node really gives. tests/api/test_operations.py checks the document's shape;
tests/api/test_openapi_delivery.py its bodies against the delivery endpoints.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest

from herald_server.api.openapi import document as openapi_document
from herald_server.auth import issue_unsubscribe_token
from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.api.test_operations import HTTP_METHODS
from tests.conftest import auth, run_server
from tests.helpers import free_port, open_stream, publish

pytestmark = pytest.mark.anyio

REF = "#/components/schemas/"
# What each documented path parameter is filled with, and a valid body per request schema:
# a request must get past validation to reach the store.
PATH_VALUES = {"id": "1", "user": "alice", "key": "welcome", "type": "alert", "name": "news"}
BODIES: dict[str, Any] = {
    "PublishBody": {"recipients": ["alice"], "title": "hello"},
    "ContactBody": {"email": "alice@example.com"},
    "PreferencesBody": {},
    "PushSubscriptionBody": {
        "endpoint": "https://push.example.com/1",
        "keys": {"p256dh": "x", "auth": "y"},
    },
    "PushEndpointBody": {"endpoint": "https://push.example.com/1"},
    "WebhookBody": {"url": "http://127.0.0.1:9/hook"},
    "TemplateBody": {"locales": {"en": {"in_app": {"title": "Hi"}}}},
    "PreviewBody": {},
    "TypeDefaultsBody": {"channels": {"email": True}},
    "UpToBody": {},
    "EmptyBody": {},
    "TopicAccessBody": {"private": True},
}
# The endless streams answer 200 and never end: tests below open them apart.
STREAMS = {"/api/stream", "/api/ws"}
# A store that refuses connections answers within its pool's wait; a bound for the whole walk.
WALK_SECONDS = 60


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def undocumented(document: dict[str, Any], method: str, path: str, answer: httpx.Response) -> str:
    """What of `answer` the document does not say: its status, or a required header."""
    responses = document["paths"][path][method]["responses"]
    documented = responses.get(str(answer.status_code))
    if documented is None:
        return f"{method.upper()} {path} → {answer.status_code} is not documented"
    missing = [
        name
        for name, header in documented.get("headers", {}).items()
        if header.get("required") and name not in answer.headers
    ]
    return f"{method.upper()} {path} → {answer.status_code} lacks {missing}" if missing else ""


def _request(
    settings: Settings, path: str, operation: dict[str, Any]
) -> tuple[str, dict[str, str], Any]:
    """A request that passes validation: path filled, required query given, a valid body."""
    concrete = re.sub(r"{(\w+)}", lambda found: PATH_VALUES[found.group(1)], path)
    declared = operation.get("parameters", ())
    params = {p["name"]: "alice" for p in declared if p["in"] == "query" and p["required"]}
    if "token" in params:
        params["token"] = issue_unsubscribe_token(settings, "alice", "billing")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    sample = None if body is None else BODIES[body["schema"]["$ref"].removeprefix(REF)]
    return concrete, params, sample


# --- the document as a generator reads it ----------------------------------------------------


async def test_every_operation_has_a_unique_id_a_declared_tag_a_summary_and_a_description() -> None:
    document = openapi_document()
    declared = {tag["name"] for tag in document["tags"]}
    found = operations(document)
    ids = [operation["operationId"] for operation in found.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
    for where, operation in found.items():
        assert re.fullmatch(r"[a-z][A-Za-z]+", operation["operationId"]), where
        assert len(operation["tags"]) == 1, where
        assert operation["tags"][0] in declared, where
        assert operation["summary"], where
        assert operation["description"], where
        assert operation["summary"] != operation["description"], where
    assert found[("/api/notifications", "post")]["operationId"] == "publishNotification"
    assert found[("/api/notifications", "get")]["operationId"] == "listNotifications"


async def test_the_streams_accept_a_stream_token_in_the_query() -> None:
    document = openapi_document()
    scheme = document["components"]["securitySchemes"]["streamToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "query", "token")
    for path in STREAMS:
        security = document["paths"][path]["get"]["security"]
        assert {"streamToken": []} in security, path
        assert {"bearer": []} in security, path


async def test_every_problem_answer_is_the_problem_document_and_429_503_say_retry_after() -> None:
    for where, operation in operations(openapi_document()).items():
        for status, answer in operation["responses"].items():
            content = answer.get("content", {})
            if "application/problem+json" in content:
                assert content["application/problem+json"]["schema"]["$ref"] == REF + "ProblemDoc"
            if status in ("429", "503") and where != ("/readyz", "get"):
                assert answer["headers"]["Retry-After"]["required"], (where, status)


# --- the document against a live node -------------------------------------------------------


async def test_with_the_store_down_every_answer_and_its_retry_after_is_documented(
    production_settings: Settings,
) -> None:
    settings = replace(
        production_settings,
        # Nothing listens there: every query fails at once, as with a stopped PostgreSQL.
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/herald",
        migrate_on_start=False,
        db_pool_timeout_seconds=1.0,
        db_query_timeout_seconds=1.0,
        scheduler_interval=3600,
    )
    document = openapi_document()
    everyone = auth(settings, "ops", SCOPE_ADMIN, SCOPE_PUBLISH)
    found: list[str] = []
    refused: set[tuple[str, str]] = set()
    async with (
        run_server(create_app(settings)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        with anyio.fail_after(WALK_SECONDS):
            for (path, method), operation in operations(document).items():
                if path in STREAMS:
                    continue
                concrete, params, body = _request(settings, path, operation)
                answer = await http.request(
                    method.upper(), concrete, headers=everyone, params=params, json=body
                )
                found.append(undocumented(document, method, path, answer))
                if answer.status_code == 503:
                    refused.add((path, method))
    assert [problem for problem in found if problem] == []
    # The walk reached the store: a publish, a list and an admin page were all refused.
    assert {
        ("/api/notifications", "post"),
        ("/api/notifications", "get"),
        ("/api/admin/deliveries", "get"),
    } <= refused


async def test_a_rate_limited_publish_is_a_documented_429_with_retry_after(
    settings: Settings,
) -> None:
    configured = replace(settings, publish_rate=0.01, publish_burst=1, recipient_rate=0)
    publisher = auth(configured, "shop", SCOPE_PUBLISH)
    body = {"recipients": ["alice"], "title": "hi"}
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        assert (await http.post("/api/notifications", json=body, headers=publisher)).is_success
        refused = await http.post("/api/notifications", json=body, headers=publisher)
    assert refused.status_code == 429
    assert undocumented(openapi_document(), "post", "/api/notifications", refused) == ""


async def test_a_stream_over_the_limit_is_a_documented_429_with_retry_after(
    settings: Settings,
) -> None:
    configured = replace(settings, max_streams_per_user=1)
    alice = auth(configured, "alice")
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
        open_stream(http, alice) as stream,
    ):
        await stream.next_of("unread_count")
        with anyio.fail_after(10):
            async with http.stream("GET", "/api/stream", headers=alice) as refused:
                await refused.aread()
    assert refused.status_code == 429
    assert undocumented(openapi_document(), "get", "/api/stream", refused) == ""


async def test_a_conditional_list_is_a_documented_304_with_its_etag(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"])
    page = await client.get("/api/notifications", headers=alice)
    again = await client.get(
        "/api/notifications", headers={**alice, "If-None-Match": page.headers["etag"]}
    )
    assert again.status_code == 304
    document = openapi_document()
    for answer in (page, again):
        assert undocumented(document, "get", "/api/notifications", answer) == ""
        documented = document["paths"]["/api/notifications"]["get"]["responses"]
        assert "ETag" in documented[str(answer.status_code)]["headers"]


async def test_a_replayed_publish_documents_its_idempotent_replayed_header(
    client: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    headers = {**publisher, "Idempotency-Key": "order-1"}
    body = {"recipients": ["alice"], "title": "once"}
    first = await client.post("/api/notifications", json=body, headers=headers)
    replayed = await client.post("/api/notifications", json=body, headers=headers)
    assert "idempotent-replayed" not in first.headers
    assert replayed.headers["idempotent-replayed"] == "true"
    documented = openapi_document()["paths"]["/api/notifications"]["post"]["responses"]["202"]
    assert documented["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
