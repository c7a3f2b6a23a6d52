"""Cross-origin callers: pages on a configured origin may call the API (CORS) and open the
WebSocket; any other origin's preflight and WebSocket handshake are refused with a problem."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from herald_server.config import Settings
from herald_server.main import create_app
from tests.conftest import auth, run_server
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

APP = "https://app.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = replace(settings, cors_origins=(APP,))
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield client


def preflight(
    origin: str, method: str = "POST", headers: str = "authorization,content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_configured_origin_passes_the_preflight_and_reads_the_answer(
    cors_client: httpx.AsyncClient, settings: Settings
) -> None:
    allowed = await cors_client.options("/api/notifications", headers=preflight(APP))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

    answer = await cors_client.get(
        "/api/notifications", headers={"Origin": APP, **auth(settings, "alice")}
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


async def test_another_origin_is_refused_with_a_problem(
    cors_client: httpx.AsyncClient, settings: Settings
) -> None:
    refused = await cors_client.options("/api/notifications", headers=preflight(EVIL))
    assert_problem(refused, 403, "origin-not-allowed")
    assert "access-control-allow-origin" not in refused.headers

    answer = await cors_client.get(
        "/api/notifications", headers={"Origin": EVIL, **auth(settings, "alice")}
    )
    assert "access-control-allow-origin" not in answer.headers


async def test_a_method_herald_does_not_serve_cross_origin_is_refused(
    cors_client: httpx.AsyncClient,
) -> None:
    refused = await cors_client.options("/api/notifications", headers=preflight(APP, "PATCH"))
    assert_problem(refused, 403, "origin-not-allowed")


async def test_without_configured_origins_nothing_cross_origin_is_allowed(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.options("/api/notifications", headers=preflight(APP))
    assert refused.status_code >= 400
    assert "access-control-allow-origin" not in refused.headers


async def websocket_answer(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """101 when the handshake succeeded, else the status it was refused with."""
    url = str(client.base_url).replace("http://", "ws://") + "/api/ws"
    try:
        async with connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_the_websocket_checks_the_origin_a_browser_sends(
    cors_client: httpx.AsyncClient, settings: Settings
) -> None:
    alice = auth(settings, "alice")
    own = str(cors_client.base_url).rstrip("/")

    assert await websocket_answer(cors_client, {"Origin": APP, **alice}) == 101
    assert await websocket_answer(cors_client, {"Origin": own, **alice}) == 101
    assert await websocket_answer(cors_client, alice) == 101  # no Origin: not a browser
    assert await websocket_answer(cors_client, {"Origin": EVIL, **alice}) == 403
