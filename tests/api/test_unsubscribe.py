"""GET|POST /api/unsubscribe?token=: the one-click link in every email (RFC 8058). Opening it
changes nothing; posting to it switches email off for the link's type, for the link's user
only; no other token works there, and the link's token works nowhere else."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from joserfc import jwk, jwt

from herald_server import codec
from herald_server.auth import UNSUBSCRIBE_AUDIENCE, UNSUBSCRIBE_TYP, issue_unsubscribe_token
from herald_server.config import Settings
from tests.api.bodies import get_json
from tests.conftest import token_for
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

PATH = "/api/unsubscribe"
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


async def preferences_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = await get_json(client, "/api/preferences", headers)
    return found


async def one_click(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """What a mail client sends for a List-Unsubscribe-Post header (RFC 8058 §3.1)."""
    return await client.post(
        PATH, params={"token": token}, headers=ONE_CLICK, content=b"List-Unsubscribe=One-Click"
    )


def signed(
    settings: Settings,
    claims: dict[str, Any],
    header: dict[str, Any] | None = None,
    secret: str | None = None,
) -> str:
    key = jwk.OctKey.import_key(secret or settings.jwt_secret or "")
    return jwt.encode(header or {"alg": "HS256", "typ": UNSUBSCRIBE_TYP}, claims, key)


def link_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "alice", "aud": UNSUBSCRIBE_AUDIENCE, "type": "billing", "iat": now}
    return {**claims, "exp": now + 3600, **changes}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- the happy path ------------------------------------------------------------------------


async def test_opening_the_link_shows_a_page_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    before = await preferences_of(client, alice)
    response = await client.get(
        PATH, params={"token": issue_unsubscribe_token(settings, "alice", "billing")}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "email about billing" in response.text
    assert '<form method="post">' in response.text
    assert await preferences_of(client, alice) == before


async def test_one_click_switches_email_off_for_that_type_only(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    kept = {
        "channels": {"sms": True},
        "types": {"billing": {"push": False}, "deploy": {"email": True}},
    }
    put = await client.put("/api/preferences", headers=alice, json=kept)
    assert put.status_code == 200, put.text

    response = await one_click(client, issue_unsubscribe_token(settings, "alice", "billing"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "You will not receive email about billing" in response.text

    chosen = await preferences_of(client, alice)
    assert chosen["types"] == {
        "billing": {"email": False, "push": False},
        "deploy": {"email": True},
    }
    assert chosen["channels"] == {"sms": True}


async def test_a_link_for_every_type_switches_email_off_everywhere(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    response = await one_click(client, issue_unsubscribe_token(settings, "alice", "*"))
    assert response.status_code == 200, response.text
    assert "any email" in response.text
    chosen = await preferences_of(client, alice)
    assert (chosen["channels"], chosen["types"]) == ({"email": False}, {})


async def test_a_person_pressing_the_pages_button_unsubscribes_too(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    """The page's form posts `List-Unsubscribe=One-Click` as a browser would, or nothing."""
    token = issue_unsubscribe_token(settings, "alice", "billing")
    response = await client.post(PATH, params={"token": token})
    assert response.status_code == 200, response.text
    assert (await preferences_of(client, alice))["types"] == {"billing": {"email": False}}


async def test_one_click_twice_is_harmless(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    token = issue_unsubscribe_token(settings, "alice", "billing")
    for _ in range(2):
        assert (await one_click(client, token)).status_code == 200
    assert (await preferences_of(client, alice))["types"] == {"billing": {"email": False}}


async def test_the_page_escapes_the_type_it_names(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = issue_unsubscribe_token(settings, "alice", "<script>alert(1)</script>")
    for method in ("GET", "POST"):
        response = await client.request(method, PATH, params={"token": token})
        assert response.status_code == 200, response.text
        assert "<script>" not in response.text
        assert "&lt;script&gt;" in response.text


# --- isolation -----------------------------------------------------------------------------


async def test_a_link_changes_only_its_own_users_preferences(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], bob: dict[str, str]
) -> None:
    before = await preferences_of(client, bob)
    assert (
        await one_click(client, issue_unsubscribe_token(settings, "alice", "billing"))
    ).status_code == 200
    assert await preferences_of(client, bob) == before


async def test_the_links_token_is_not_a_bearer_token(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    link = {"Authorization": f"Bearer {issue_unsubscribe_token(settings, 'alice', '*')}"}
    before = await preferences_of(client, alice)
    for method, path, body in (
        ("GET", "/api/notifications", None),
        ("GET", "/api/preferences", None),
        ("PUT", "/api/preferences", {"muted": True}),
        ("POST", "/api/notifications", {"recipients": ["alice"], "title": "x"}),
        ("POST", "/api/stream/token", None),
        ("GET", "/api/contacts/alice", None),
    ):
        response = await client.request(method, path, headers=link, json=body)
        assert_problem(response, 401, "unauthenticated")
    assert await preferences_of(client, alice) == before
    assert (await get_json(client, "/api/notifications", alice))["items"] == []


# --- refusals ------------------------------------------------------------------------------


def forged(settings: Settings, kind: str) -> str:
    if kind == "other-secret":
        return signed(settings, link_claims(), secret="another-secret-" + "y" * 40)
    if kind == "expired":
        return signed(
            settings, link_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
        )
    if kind == "stream-audience":
        return signed(settings, link_claims(aud="herald-stream"))
    if kind == "no-audience":
        return signed(settings, {k: v for k, v in link_claims().items() if k != "aud"})
    if kind == "no-type":
        return signed(settings, {k: v for k, v in link_claims().items() if k != "type"})
    if kind == "empty-type":
        return signed(settings, link_claims(type=""))
    if kind == "type-not-a-string":
        return signed(settings, link_claims(type=["billing"]))
    if kind == "plain-jwt-header":
        return signed(settings, link_claims(), header={"alg": "HS256"})
    if kind == "alg-none":
        header = b64url(codec.dumps({"alg": "none", "typ": UNSUBSCRIBE_TYP}))
        return f"{header}.{b64url(codec.dumps(link_claims()))}."
    if kind == "tampered":
        # Bob's genuine link with Alice's claims put in its place: the signature no longer fits.
        head, _, signature = issue_unsubscribe_token(settings, "bob", "billing").split(".")
        claims = signed(settings, link_claims()).split(".")[1]
        return f"{head}.{claims}.{signature}"
    if kind == "api-token":
        return token_for(settings, "alice")
    if kind == "junk":
        return "not-a-token"
    raise AssertionError(kind)


async def test_the_forging_helper_signs_valid_links_when_nothing_is_forged(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    """So each refusal below is the refusal of what was changed, not of a broken helper."""
    assert (await one_click(client, signed(settings, link_claims()))).status_code == 200
    assert (await preferences_of(client, alice))["types"] == {"billing": {"email": False}}


FORGED = [
    "other-secret",
    "expired",
    "stream-audience",
    "no-audience",
    "no-type",
    "empty-type",
    "type-not-a-string",
    "plain-jwt-header",
    "alg-none",
    "tampered",
    "api-token",
    "junk",
]


@pytest.mark.parametrize("kind", FORGED)
async def test_a_token_that_is_no_valid_link_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], kind: str
) -> None:
    before = await preferences_of(client, alice)
    token = forged(settings, kind)
    assert_problem(await client.get(PATH, params={"token": token}), 400, "invalid-parameter")
    assert_problem(await one_click(client, token), 400, "invalid-parameter")
    assert await preferences_of(client, alice) == before


async def test_a_stream_token_is_no_link(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    issued = await client.post("/api/stream/token", headers=alice)
    assert issued.status_code == 201, issued.text
    before = await preferences_of(client, alice)
    token = issued.json()["token"]
    assert_problem(await client.get(PATH, params={"token": token}), 400, "invalid-parameter")
    assert_problem(await one_click(client, token), 400, "invalid-parameter")
    assert await preferences_of(client, alice) == before


@pytest.mark.parametrize("query", ["", "?token=", "?tok=abc"])
async def test_a_link_without_a_token_is_a_400(
    client: httpx.AsyncClient, alice: dict[str, str], query: str
) -> None:
    before = await preferences_of(client, alice)
    assert_problem(await client.get(PATH + query), 400, "invalid-parameter")
    assert_problem(await client.post(PATH + query), 400, "invalid-parameter")
    assert await preferences_of(client, alice) == before


async def test_an_oversized_one_click_body_is_a_413_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    before = await preferences_of(client, alice)
    token = issue_unsubscribe_token(settings, "alice", "billing")
    response = await client.post(
        PATH, params={"token": token}, headers=ONE_CLICK, content=b"x" * (64 * 1024)
    )
    assert_problem(response, 413, "payload-too-large")
    assert await preferences_of(client, alice) == before
