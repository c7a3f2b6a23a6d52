"""POST /api/stream/revoke (the caller's own) and POST /api/admin/users/{user}/revoke-streams:
the user's stream tokens issued up to then are refused, their open streams on every node end
with a `revoked` event, and nobody else's are touched. Run on both backends, and across two
nodes sharing the store and bus."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack, nullcontext

import anyio
import httpx
import pytest

from herald_server.auth import Authenticator
from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import Principal
from tests.api.bodies import MALFORMED, malformed, send_malformed
from tests.conftest import run_server
from tests.helpers import assert_problem, open_stream

pytestmark = pytest.mark.anyio


def stream_token(settings: Settings, user: str, issued_at: int | None = None) -> str:
    token, _ = Authenticator(settings).issue_stream_token(Principal(user), issued_at)
    return token


async def stream_status(client: httpx.AsyncClient, token: str) -> int:
    async with client.stream("GET", "/api/stream", params={"token": token}) as response:
        return response.status_code


async def test_revoking_my_streams_refuses_my_tokens_and_not_a_later_one_or_anyone_elses(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    mine, bobs = stream_token(settings, "alice"), stream_token(settings, "bob")

    answer = await client.post("/api/stream/revoke", headers=alice)

    assert answer.status_code == 204, answer.text
    refused = await client.get("/api/stream", params={"token": mine})
    assert_problem(refused, 401, "unauthenticated")
    assert "revoked" in refused.json()["detail"]
    assert await stream_status(client, bobs) == 200
    # iat has whole seconds: a token from the next second on is a new one.
    assert await stream_status(client, stream_token(settings, "alice", int(time.time()) + 1)) == 200


async def test_an_admin_revocation_ends_the_users_open_streams_on_every_node(
    settings: Settings, admin: dict[str, str]
) -> None:
    async with run_server(create_app(settings)) as first, AsyncExitStack() as stack:
        # The in-process bus links one node's streams: two nodes only on PostgreSQL + Redis.
        second = await stack.enter_async_context(
            run_server(create_app(settings)) if settings.redis_url else nullcontext(first)
        )
        one = await stack.enter_async_context(httpx.AsyncClient(base_url=first.url, timeout=10))
        two = await stack.enter_async_context(httpx.AsyncClient(base_url=second.url, timeout=10))
        token = {"token": stream_token(settings, "bob")}
        bystander = {"token": stream_token(settings, "carol")}
        async with (
            open_stream(one, params=token) as here,
            open_stream(two, params=token) as there,
            open_stream(two, params=bystander) as carols,
        ):
            for reader in (here, there, carols):
                await reader.next_of("unread_count")
            answer = await one.post("/api/admin/users/bob/revoke-streams", headers=admin)
            assert answer.status_code == 204, answer.text

            for reader in (here, there):
                assert (await reader.next_of("revoked")).data == {}
                with pytest.raises(EOFError):
                    await reader.next(timeout=5)
            with anyio.move_on_after(0.5) as still_open:
                await carols.next()
            assert still_open.cancel_called, "carol's stream should stay open and quiet"
        assert await stream_status(two, token["token"]) == 401


async def test_revoking_another_users_streams_needs_the_admin_scope(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    bobs = stream_token(settings, "bob")
    answer = await client.post("/api/admin/users/bob/revoke-streams", headers=alice)
    assert_problem(answer, 403, "forbidden")
    assert_problem(await client.post("/api/stream/revoke"), 401, "unauthenticated")
    assert await stream_status(client, bobs) == 200


@pytest.mark.parametrize("kind", MALFORMED)
@pytest.mark.parametrize("path", ["/api/stream/revoke", "/api/admin/users/alice/revoke-streams"])
async def test_a_malformed_body_is_refused_and_revokes_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    admin: dict[str, str],
    alice: dict[str, str],
    kind: str,
    path: str,
) -> None:
    caller = admin if "admin" in path else alice
    case = malformed(kind, {})
    token = stream_token(settings, "alice")
    response = await send_malformed(client, "POST", path, caller, case)
    assert_problem(response, case.status, case.slug)
    assert await stream_status(client, token) == 200
