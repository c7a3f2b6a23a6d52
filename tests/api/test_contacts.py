"""GET|PUT|DELETE /api/contacts/{user}: where a user's email and SMS go. A trusted backend (the
publish scope) writes them; a user may read only their own; no address can smuggle a header."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.bodies import MALFORMED, get_json, malformed, send_malformed
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

CONTACT = {"email": "alice@example.com", "phone": "+15551230001"}
NONE = {"email": None, "phone": None}


async def contact_of(
    client: httpx.AsyncClient, user: str, headers: dict[str, str]
) -> dict[str, Any]:
    found: dict[str, Any] = await get_json(client, f"/api/contacts/{user}", headers)
    assert found.pop("user") == user
    return found


async def set_contact(
    client: httpx.AsyncClient, user: str, headers: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    return await client.put(f"/api/contacts/{user}", headers=headers, json=body)


# --- the happy path ------------------------------------------------------------------------


async def test_a_publisher_sets_a_contact_201_then_200_and_reads_it_back(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    first = await set_contact(client, "alice", publisher, CONTACT)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"user": "alice", **CONTACT}
    assert await contact_of(client, "alice", publisher) == CONTACT
    assert await contact_of(client, "alice", alice) == CONTACT

    again = await set_contact(client, "alice", publisher, {"email": "a@example.org"})
    assert again.status_code == 200, again.text
    # A PUT replaces the whole contact: the phone left out is gone.
    assert again.json() == {"user": "alice", "email": "a@example.org", "phone": None}
    assert await contact_of(client, "alice", alice) == {"email": "a@example.org", "phone": None}


async def test_an_admin_may_write_and_read_anyones_contact(
    client: httpx.AsyncClient, admin: dict[str, str], bob: dict[str, str]
) -> None:
    response = await set_contact(client, "bob", admin, {"phone": "+4930123456"})
    assert response.status_code == 201, response.text
    assert await contact_of(client, "bob", admin) == {"email": None, "phone": "+4930123456"}
    assert await contact_of(client, "bob", bob) == {"email": None, "phone": "+4930123456"}


async def test_a_user_without_a_contact_reads_nulls(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    assert await contact_of(client, "alice", alice) == NONE


async def test_delete_forgets_the_contact_204_then_404(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await set_contact(client, "alice", publisher, CONTACT)
    await set_contact(client, "bob", publisher, {"email": "bob@example.com"})
    gone = await client.delete("/api/contacts/alice", headers=publisher)
    assert gone.status_code == 204
    assert gone.content == b""
    assert await contact_of(client, "alice", alice) == NONE
    assert_problem(await client.delete("/api/contacts/alice", headers=publisher), 404, "not-found")
    assert await contact_of(client, "bob", publisher) == {"email": "bob@example.com", "phone": None}


async def test_channels_show_the_contact_once_set(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await set_contact(client, "alice", publisher, CONTACT)
    assert (await get_json(client, "/api/channels", alice))["contact"] == CONTACT


# --- isolation -----------------------------------------------------------------------------


async def test_a_plain_user_may_not_read_another_users_contact(
    client: httpx.AsyncClient, publisher: dict[str, str], bob: dict[str, str]
) -> None:
    await set_contact(client, "alice", publisher, CONTACT)
    problem = assert_problem(await client.get("/api/contacts/alice", headers=bob), 403, "forbidden")
    assert "alice@example.com" not in str(problem)
    # Nor can the answer tell whether a user has a contact at all.
    assert_problem(await client.get("/api/contacts/nobody", headers=bob), 403, "forbidden")


async def test_a_plain_user_may_not_write_any_contact_not_even_their_own(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    """Otherwise anyone could point Herald's email at someone else's inbox."""
    await set_contact(client, "alice", publisher, CONTACT)
    for user, headers in (("alice", alice), ("alice", bob), ("bob", bob)):
        put = await set_contact(client, user, headers, {"email": "mallory@example.com"})
        assert_problem(put, 403, "forbidden")
        delete = await client.delete(f"/api/contacts/{user}", headers=headers)
        assert_problem(delete, 403, "forbidden")
    assert await contact_of(client, "alice", publisher) == CONTACT
    assert await contact_of(client, "bob", publisher) == NONE


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_contacts_need_a_token(
    client: httpx.AsyncClient, publisher: dict[str, str], method: str
) -> None:
    await set_contact(client, "alice", publisher, CONTACT)
    response = await client.request(method, "/api/contacts/alice", json={"email": "m@evil.test"})
    assert_problem(response, 401, "unauthenticated")
    assert await contact_of(client, "alice", publisher) == CONTACT


@pytest.mark.parametrize("user", ["%0A", "a%00b", "tab%09in", "x" * 201])
async def test_a_user_id_no_token_could_name_is_not_found(
    client: httpx.AsyncClient, publisher: dict[str, str], user: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, f"/api/contacts/{user}", headers=publisher, json=CONTACT
        )
        assert_problem(response, 404, "not-found")


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address"},
        {"email": "alice@localhost"},
        {"email": "alice@@example.com"},
        {"email": "alice smith@example.com"},
        {"email": "alice@example.com\r\nBcc: everyone@example.com"},
        {"email": "alice@example.com\nBcc: everyone@example.com"},
        {"email": "alice@example.com\n"},
        {"email": "alice@example.com\r\n"},
        {"email": "alice\u0000@example.com"},
        {"email": "a" * 250 + "@example.com"},
        {"email": ""},
        {"phone": "5551230001"},
        {"phone": "+05551230001"},
        {"phone": "+1 555 123 0001"},
        {"phone": "+1555123000123456"},
        {"phone": "+15551230001\n"},
        {"phone": "+15551230001\r\nX-Injected: 1"},
        {"email": 42},
        {},
        {"email": None, "phone": None},
    ],
    ids=[
        "no-at",
        "no-dot-in-domain",
        "two-ats",
        "space",
        "crlf-header",
        "lf-header",
        "trailing-lf",
        "trailing-crlf",
        "nul",
        "too-long",
        "empty",
        "phone-no-plus",
        "phone-leading-zero",
        "phone-spaces",
        "phone-too-long",
        "phone-trailing-lf",
        "phone-crlf-header",
        "not-a-string",
        "neither",
        "both-null",
    ],
)
async def test_a_bad_email_or_phone_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, publisher: dict[str, str], body: dict[str, Any]
) -> None:
    await set_contact(client, "alice", publisher, CONTACT)
    assert_problem(await set_contact(client, "alice", publisher, body), 422, "validation-failed")
    assert_problem(await set_contact(client, "bob", publisher, body), 422, "validation-failed")
    assert await contact_of(client, "alice", publisher) == CONTACT
    assert await contact_of(client, "bob", publisher) == NONE


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, publisher: dict[str, str], kind: str
) -> None:
    await set_contact(client, "alice", publisher, CONTACT)
    case = malformed(kind, {"email": "mallory@example.com"})
    response = await send_malformed(client, "PUT", "/api/contacts/alice", publisher, case)
    assert_problem(response, case.status, case.slug)
    assert await contact_of(client, "alice", publisher) == CONTACT
