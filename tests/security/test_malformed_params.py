"""Hole 11: input that slipped past the checks and became a 500 or a dead socket.

Each attack is the request an attacker with an ordinary token sends; each answer must be a 4xx
problem (or an error frame), and the node goes on serving the victim.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from joserfc import jwk, jwt

from herald_server import codec
from herald_server.config import Settings
from tests.conftest import SECRET
from tests.helpers import assert_problem, publish
from tests.streams.test_ws import next_frame, open_ws

pytestmark = pytest.mark.anyio


def signed(**claims: Any) -> dict[str, str]:
    """A bearer header with a token signed with the node's real secret: only the claims lie."""
    body = {"sub": "mallory", "exp": int(time.time()) + 3600, **claims}
    token = jwt.encode({"alg": "HS256"}, body, jwk.OctKey.import_key(SECRET))
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/notifications?limit=²",
        "/api/notifications?limit=٣",
    ],
)
async def test_unicode_digits_in_a_query_are_a_400_not_a_500(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str], path: str
) -> None:
    await publish(client, publisher, recipients=["alice"], title="still here")

    attack = await client.get(path, headers=alice)

    assert attack.status_code == 400, attack.text
    assert attack.headers["content-type"] == "application/problem+json"
    after = await client.get("/api/notifications", headers=alice)
    assert [item["title"] for item in after.json()["items"]] == ["still here"]


async def test_unicode_digits_in_the_admin_and_delivery_lists_are_a_400(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for path in ("/api/admin/notifications?limit=²", "/api/admin/deliveries?limit=³"):
        assert_problem(await client.get(path, headers=admin), 400, "invalid-parameter")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1e308},
        {"exp": 10**30},
        {"iat": -1},
        {"nbf": -1e308},
    ],
    ids=["exp-1e308", "exp-10e30", "iat-negative", "nbf-huge-negative"],
)
async def test_a_signed_token_with_an_absurd_date_is_a_401(
    server: str, client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    headers = signed(**claims)

    for path in ("/api/notifications", "/api/notifications/unread-count"):
        assert_problem(await client.get(path, headers=headers), 401, "unauthenticated")
    minted = await client.post("/api/stream/token", headers=headers)
    assert_problem(minted, 401, "unauthenticated")


async def test_a_signed_token_with_exp_1e308_cannot_open_a_stream(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/stream", headers=signed(exp=1e308))
    assert_problem(response, 401, "unauthenticated")


async def test_a_websocket_frame_of_1500_open_brackets_gets_an_error_frame(
    server: str, alice: dict[str, str]
) -> None:
    async with open_ws(server, alice) as ws:
        await next_frame(ws, "unread_count")
        await ws.send("[" * 1500)
        error = await next_frame(ws, "error")
        await ws.send('{"type": "ping"}')
        pong = await next_frame(ws, "pong")
    assert error["data"]["status"] == 422
    assert pong["event"] == "pong"


async def test_a_websocket_frame_nested_past_the_limit_gets_an_error_frame(
    server: str, alice: dict[str, str], settings: Settings
) -> None:
    levels = settings.max_json_depth
    async with open_ws(server, alice) as ws:
        await next_frame(ws, "unread_count")
        await ws.send('{"type": "ping", "x": ' + "[" * levels + "]" * levels + "}")
        error = await next_frame(ws, "error")
    assert error["data"]["type"].endswith("/validation-failed")
    assert f"{levels} levels" in error["data"]["detail"]


@pytest.mark.parametrize("raw_id", ["²", "1²"])
async def test_a_read_frame_with_a_unicode_digit_id_is_not_found_and_the_socket_stays(
    server: str,
    client: httpx.AsyncClient,
    alice: dict[str, str],
    publisher: dict[str, str],
    raw_id: str,
) -> None:
    async with open_ws(server, alice) as ws:
        await next_frame(ws, "unread_count")
        await ws.send(codec.dumps_str({"type": "read", "id": raw_id}))
        error = await next_frame(ws, "error")
        sent = await publish(client, publisher, recipients=["alice"], title="after the attack")
        delivered = await next_frame(ws, "notification")
    assert error["data"]["type"].endswith("/not-found")
    assert delivered["data"]["id"] == sent["id"]
