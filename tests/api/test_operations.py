"""Operations and plumbing: health, readiness, the OpenAPI document, stream tokens, and
unknown paths or methods answered as problem documents."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from herald_server.config import Settings
from herald_server.main import create_app
from tests.conftest import token_for
from tests.helpers import assert_problem, open_stream, publish

pytestmark = pytest.mark.anyio

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


HTML_PAGES = {"/", "/admin", "/docs"}


def app_operations(settings: Settings) -> set[tuple[str, str]]:
    """(path, method) for every route the app serves, but the static mount and the HTML pages."""
    found: set[tuple[str, str]] = set()
    for route in create_app(settings).routes:
        if isinstance(route, Mount):
            continue
        if isinstance(route, WebSocketRoute):
            found.add((route.path, "get"))
        elif isinstance(route, Route) and route.path not in HTML_PAGES:
            assert route.methods is not None
            found.update((route.path, method.lower()) for method in route.methods - {"HEAD"})
    return found


# --- health --------------------------------------------------------------------------------


async def test_healthz_answers_200_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_with_store_and_bus_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "ready",
        "store": "up",
        "bus": "up",
        "loops": {"bus listener": "up", "scheduler": "up"},
    }


# --- OpenAPI -------------------------------------------------------------------------------


async def test_openapi_is_a_valid_looking_3_1_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert isinstance(document["info"]["title"], str)
    assert isinstance(document["info"]["version"], str)
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for ref in refs_in(document):
        prefix = "#/components/schemas/"
        assert ref.startswith(prefix), ref
        assert ref.removeprefix(prefix) in schemas, ref
    for path, item in document["paths"].items():
        assert path.startswith("/")
        operations = {key: value for key, value in item.items() if key in HTTP_METHODS}
        assert operations, path
        for method, operation in operations.items():
            assert operation["responses"], (path, method)
            for status in operation["responses"]:
                assert re.fullmatch(r"[1-5][0-9][0-9]", status), (path, method, status)
            declared = [*item.get("parameters", ()), *operation.get("parameters", ())]
            in_path = {p["name"] for p in declared if p["in"] == "path" and p["required"]}
            assert set(re.findall(r"{(\w+)}", path)) == in_path, (path, method)


async def test_openapi_lists_every_route_the_app_serves(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    document = (await client.get("/openapi.json")).json()
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    served = app_operations(settings)
    assert served - documented == set()
    assert {path for path, _ in documented} - {path for path, _ in served} == set()


async def test_openapi_documents_the_problem_type_for_errors(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    publish_op = document["paths"]["/api/notifications"]["post"]
    for status in ("400", "401", "403", "409", "413", "415", "422"):
        content = publish_op["responses"][status]["content"]
        assert "application/problem+json" in content, status
    problem = document["components"]["schemas"]["ProblemDoc"]
    assert {"type", "title", "status"} <= set(problem["properties"])


# --- unknown paths and methods -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/api/nope"),
        ("POST", "/api/notifications/1/explode"),
        ("GET", "/api/topics/deploys"),
        ("GET", "/api/notifications/1/read/extra"),
        # GET /api/notifications/{id} with an id that is no id.
        ("GET", "/api/notifications/read-all"),
    ],
)
async def test_an_unknown_path_is_a_404_problem(
    client: httpx.AsyncClient, alice: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path, headers=alice)
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/healthz", {"GET"}),
        ("POST", "/readyz", {"GET"}),
        ("DELETE", "/openapi.json", {"GET"}),
        ("GET", "/api/stream/token", {"POST"}),
        ("GET", "/api/notifications/1/read", {"POST"}),
        ("POST", "/api/stream", {"GET"}),
        ("DELETE", "/api/topics", {"GET"}),
        # One path served by several routes: Allow lists every method of the path.
        ("PATCH", "/api/notifications", {"GET", "POST"}),
        ("PUT", "/api/notifications/1", {"GET", "DELETE"}),
        ("POST", "/api/topics/deploys/subscription", {"PUT", "DELETE"}),
    ],
)
async def test_a_wrong_method_is_a_405_problem_with_allow(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    method: str,
    path: str,
    allowed: set[str],
) -> None:
    response = await client.request(method, path, headers=alice)
    assert_problem(response, 405, "method-not-allowed")
    listed = {part.strip() for part in response.headers["allow"].split(",")}
    assert allowed <= listed


# --- stream tokens -------------------------------------------------------------------------


async def test_a_stream_token_is_issued_with_its_expiry_and_opens_a_stream(
    client: httpx.AsyncClient,
    settings: Settings,
    alice: dict[str, str],
    publisher: dict[str, str],
) -> None:
    response = await client.post("/api/stream/token", headers=alice)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    issued = response.json()
    assert set(issued) == {"token", "expires_at"}
    assert isinstance(issued["token"], str)
    assert issued["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(issued["expires_at"]).timestamp()
    assert time.time() < expires <= time.time() + settings.stream_token_ttl + 5
    async with open_stream(client, params={"token": issued["token"]}) as stream:
        await stream.next_of("unread_count")
        sent = await publish(client, publisher, recipients=["alice"], title="via token")
        event = await stream.next_of("notification")
    assert event.data["id"] == sent["id"]


async def test_a_stream_token_accepts_an_empty_json_body(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post("/api/stream/token", headers=alice, json={})
    assert response.status_code == 201
    assert response.json()["token"]


async def test_a_stream_token_never_outlives_the_token_that_asked_for_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    short = bearer(token_for(settings, "alice", ttl=60))
    response = await client.post("/api/stream/token", headers=short)
    assert response.status_code == 201
    expires = datetime.fromisoformat(response.json()["expires_at"]).timestamp()
    assert expires <= time.time() + 61


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic YWxpY2U6c2VjcmV0"],
    ids=["absent", "garbled", "basic"],
)
async def test_a_stream_token_needs_an_api_token(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post("/api/stream/token", headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_stream_token_is_no_api_token(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    stream_token = (await client.post("/api/stream/token", headers=alice)).json()["token"]
    headers = bearer(stream_token)
    for method, path in (
        ("GET", "/api/notifications"),
        ("POST", "/api/stream/token"),
        ("GET", "/api/topics"),
    ):
        response = await client.request(method, path, headers=headers)
        assert_problem(response, 401, "unauthenticated")
    sent = await client.post(
        "/api/notifications", headers=headers, json={"recipients": ["alice"], "title": "hi"}
    )
    assert_problem(sent, 401, "unauthenticated")
    listed = await client.get("/api/notifications", headers=alice)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("content", "media", "status", "slug"),
    [
        pytest.param(b"{", "application/json", 400, "malformed-body", id="truncated"),
        pytest.param(b'{"ttl": 99999}', "application/json", 422, "validation-failed", id="key"),
        pytest.param(b'"x"', "application/json", 422, "validation-failed", id="string"),
        pytest.param(b"{}", "text/plain", 415, "unsupported-media-type", id="text"),
    ],
)
async def test_a_malformed_stream_token_body_is_refused(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    content: bytes,
    media: str,
    status: int,
    slug: str,
) -> None:
    response = await client.post(
        "/api/stream/token", headers={**alice, "Content-Type": media}, content=content
    )
    assert_problem(response, status, slug)
