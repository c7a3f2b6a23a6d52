"""POST /api/dev/login: how the demo page signs in; never available in production."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from herald_server.config import ConfigError, Settings, from_env
from herald_server.main import create_app
from tests.conftest import run_server
from tests.helpers import assert_problem, publish

pytestmark = pytest.mark.anyio


async def test_the_token_works_for_that_user_and_only_that_user(
    client: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="for alice")
    await publish(client, publisher, recipients=["bob"], title="for bob")
    response = await client.post("/api/dev/login?sub=alice")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["sub"], body["scopes"]) == ("alice", [])
    headers = {"Authorization": f"Bearer {body['token']}"}
    inbox = await client.get("/api/notifications", headers=headers)
    assert [item["title"] for item in inbox.json()["items"]] == ["for alice"]
    # No publish scope: sending to others is refused, sending to oneself is not.
    refused = await client.post(
        "/api/notifications", headers=headers, json={"recipients": ["bob"], "title": "hi"}
    )
    assert_problem(refused, 403, "forbidden")
    await publish(client, headers, recipients=["alice"], title="note to self")


async def test_scopes_are_granted_as_asked(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/dev/login?sub=ops&scope=notifications:admin")
    assert response.status_code == 201, response.text
    headers = {"Authorization": f"Bearer {response.json()['token']}"}
    stats = await client.get("/api/admin/stats", headers=headers)
    assert stats.status_code == 200, stats.text


@pytest.mark.parametrize(
    ("query", "body", "status", "slug"),
    [
        ("", None, 400, "invalid-parameter"),
        ("sub=a%20b", None, 400, "invalid-parameter"),
        ("sub=alice&scope=root", None, 400, "invalid-parameter"),
        ("sub=alice", b'{"sub": "bob"}', 422, "validation-failed"),
        ("sub=alice", b"{not json", 400, "malformed-body"),
    ],
)
async def test_bad_requests_get_a_problem(
    client: httpx.AsyncClient, query: str, body: bytes | None, status: int, slug: str
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await client.post(f"/api/dev/login?{query}", content=body, headers=headers)
    assert_problem(response, status, slug)


async def test_off_when_disabled(settings: Settings) -> None:
    async with (
        run_server(create_app(replace(settings, dev_login=False))) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        response = await client.post("/api/dev/login?sub=alice")
    assert_problem(response, 404, "not-found")


def test_off_in_production_and_cannot_be_turned_on() -> None:
    secret = {"HERALD_ENV": "production", "HERALD_JWT_SECRET": "s" * 40}
    assert not from_env(secret).dev_login_enabled
    assert from_env({}).dev_login_enabled
    with pytest.raises(ConfigError, match="HERALD_DEV_LOGIN"):
        from_env({**secret, "HERALD_DEV_LOGIN": "true"})
