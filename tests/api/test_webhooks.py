"""POST|GET /api/webhooks and DELETE /api/webhooks/{id}: URLs that receive a user's
notifications. The signing secret is shown once; a user registers and removes only their own
(an admin anyone's); a URL into Herald's own network is refused unless allowed.

URLs here are literal public addresses: they pass the SSRF guard without a DNS lookup, and
nothing is ever sent to them (no test here publishes).
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.api.bodies import MALFORMED, get_json, malformed, send_malformed
from tests.conftest import auth, run_server
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

PATH = "/api/webhooks"
HOOK = "https://8.8.8.8/hooks/alice"


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(PATH, headers=headers, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    hook: dict[str, Any] = response.json()
    return hook


async def hooks_of(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await get_json(client, PATH, headers, **params))["items"]
    return items


async def everyones(client: httpx.AsyncClient, settings: Settings) -> list[tuple[str, str]]:
    """(user, url) of every webhook, as an admin sees them."""
    admin = auth(settings, "ops", SCOPE_ADMIN)
    return [(hook["user"], hook["url"]) for hook in await hooks_of(client, admin, all="true")]


# --- the happy path ------------------------------------------------------------------------


async def test_registering_answers_201_with_a_secret_shown_only_once(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    hook = await register(client, alice, {"url": HOOK})
    assert set(hook) == {"id", "user", "url", "types", "created_at", "secret"}
    assert (hook["user"], hook["url"], hook["types"]) == ("alice", HOOK, None)
    assert hook["created_at"].endswith("Z")
    # Standard Webhooks: "whsec_" and the base64 of 24 to 64 random bytes.
    assert hook["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(hook["secret"].removeprefix("whsec_"), validate=True)) <= 64

    listed = await hooks_of(client, alice)
    assert listed == [{key: value for key, value in hook.items() if key != "secret"}]
    other = await register(client, alice, {"url": HOOK})
    assert other["secret"] != hook["secret"]
    assert [item["id"] for item in await hooks_of(client, alice)] == [hook["id"], other["id"]]


async def test_types_limit_a_hook_and_are_kept_once_each_in_order(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    body = {"url": HOOK, "types": ["build.failed", "deploy", "build.failed", "billing:due"]}
    hook = await register(client, alice, body)
    assert hook["types"] == ["build.failed", "deploy", "billing:due"]
    assert (await hooks_of(client, alice))[0]["types"] == hook["types"]


async def test_an_admin_may_register_a_hook_for_another_user(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], bob: dict[str, str]
) -> None:
    hook = await register(client, admin, {"url": HOOK, "user": "bob"})
    assert hook["user"] == "bob"
    assert [item["id"] for item in await hooks_of(client, bob)] == [hook["id"]]
    assert await hooks_of(client, admin) == []
    assert await everyones(client, settings) == [("bob", HOOK)]


async def test_a_user_may_name_themself(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    hook = await register(client, alice, {"url": HOOK, "user": "alice"})
    assert hook["user"] == "alice"


async def test_an_admin_lists_everyones_hooks_with_all_true(
    client: httpx.AsyncClient,
    settings: Settings,
    admin: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    await register(client, alice, {"url": HOOK})
    await register(client, bob, {"url": "https://8.8.4.4/bob"})
    assert await everyones(client, settings) == [("alice", HOOK), ("bob", "https://8.8.4.4/bob")]
    # Without all=true an admin sees their own, like anyone.
    assert await hooks_of(client, admin) == []
    assert await hooks_of(client, admin, all="false") == []
    assert all("secret" not in hook for hook in await hooks_of(client, admin, all="true"))


async def test_removing_a_hook_answers_204_then_404(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    kept = await register(client, alice, {"url": HOOK})
    removed = await register(client, alice, {"url": "https://8.8.4.4/other"})
    gone = await client.delete(f"{PATH}/{removed['id']}", headers=alice)
    assert gone.status_code == 204
    assert gone.content == b""
    assert [hook["id"] for hook in await hooks_of(client, alice)] == [kept["id"]]
    assert_problem(await client.delete(f"{PATH}/{removed['id']}", headers=alice), 404, "not-found")


async def test_an_admin_may_remove_anyones_hook(
    client: httpx.AsyncClient, admin: dict[str, str], alice: dict[str, str]
) -> None:
    hook = await register(client, alice, {"url": HOOK})
    gone = await client.delete(f"{PATH}/{hook['id']}", headers=admin)
    assert gone.status_code == 204
    assert await hooks_of(client, alice) == []


# --- isolation -----------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [None, SCOPE_PUBLISH])
async def test_registering_for_another_user_without_the_admin_scope_is_a_403(
    client: httpx.AsyncClient, settings: Settings, scope: str | None
) -> None:
    caller = auth(settings, "mallory", *([scope] if scope else []))
    response = await client.post(PATH, headers=caller, json={"url": HOOK, "user": "alice"})
    assert_problem(response, 403, "forbidden")
    assert await everyones(client, settings) == []


async def test_a_user_sees_only_their_own_hooks(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    await register(client, alice, {"url": HOOK})
    assert await hooks_of(client, bob) == []


@pytest.mark.parametrize("scope", [None, SCOPE_PUBLISH])
async def test_everyones_hooks_need_the_admin_scope(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], scope: str | None
) -> None:
    await register(client, alice, {"url": HOOK})
    caller = auth(settings, "mallory", *([scope] if scope else []))
    response = await client.get(PATH, headers=caller, params={"all": "true"})
    problem = assert_problem(response, 403, "forbidden")
    assert HOOK not in str(problem)


@pytest.mark.parametrize("scope", [None, SCOPE_PUBLISH])
async def test_removing_another_users_hook_is_a_404_and_it_stays(
    client: httpx.AsyncClient,
    settings: Settings,
    alice: dict[str, str],
    scope: str | None,
) -> None:
    hook = await register(client, alice, {"url": HOOK})
    caller = auth(settings, "bob", *([scope] if scope else []))
    response = await client.delete(f"{PATH}/{hook['id']}", headers=caller)
    assert_problem(response, 404, "not-found")
    assert [item["id"] for item in await hooks_of(client, alice)] == [hook["id"]]


@pytest.mark.parametrize("webhook_id", ["abc", "-1", "1.0", "9" * 19, "999999"])
async def test_an_id_that_names_no_hook_is_a_404(
    client: httpx.AsyncClient, admin: dict[str, str], alice: dict[str, str], webhook_id: str
) -> None:
    await register(client, alice, {"url": HOOK})
    response = await client.delete(f"{PATH}/{webhook_id}", headers=admin)
    assert_problem(response, 404, "not-found")
    assert len(await hooks_of(client, alice)) == 1


@pytest.mark.parametrize(
    ("method", "path"), [("GET", PATH), ("POST", PATH), ("DELETE", f"{PATH}/1")]
)
async def test_webhooks_need_a_token(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], method: str, path: str
) -> None:
    await register(client, alice, {"url": HOOK})
    response = await client.request(method, path, json={"url": HOOK})
    assert_problem(response, 401, "unauthenticated")
    assert await everyones(client, settings) == [("alice", HOOK)]


# --- refusals ------------------------------------------------------------------------------


PRIVATE = [
    "http://127.0.0.1:8000/api/notifications",
    "http://localhost:6379/",
    "https://10.0.0.7/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
]


@pytest.mark.parametrize("url", PRIVATE)
async def test_a_url_into_a_private_network_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], url: str
) -> None:
    response = await client.post(PATH, headers=alice, json={"url": url})
    assert_problem(response, 422, "target-not-allowed")
    assert await everyones(client, settings) == []


async def test_private_urls_are_accepted_when_allowed(
    settings: Settings, alice: dict[str, str]
) -> None:
    allowed = replace(settings, allow_private_targets=True)
    async with (
        run_server(create_app(allowed)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        for url in PRIVATE[:3]:
            assert (await register(client, alice, {"url": url}))["url"] == url
        assert [hook["url"] for hook in await hooks_of(client, alice)] == PRIVATE[:3]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://8.8.8.8/hook",
        "file:///etc/passwd",
        "https://user:password@8.8.8.8/hook",
        "https:///no-host",
        "https://8.8.8.8:99999/hook",
        "https://8.8.8.8/caf\u00e9",
        "hook",
    ],
    ids=["ftp", "file", "credentials", "no-host", "bad-port", "non-ascii", "no-scheme"],
)
async def test_a_url_herald_would_not_call_is_a_422_even_when_private_targets_are_allowed(
    settings: Settings, alice: dict[str, str], url: str
) -> None:
    allowed = replace(settings, allow_private_targets=True)
    async with (
        run_server(create_app(allowed)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        response = await client.post(PATH, headers=alice, json={"url": url})
        assert_problem(response, 422, "target-not-allowed")
        assert await hooks_of(client, alice) == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": ""},
        {"url": "https://8.8.8.8/" + "x" * 2048},
        {"url": "https://8.8.8.8/a\nb"},
        {"url": "https://8.8.8.8/a b"},
        {"url": "https://8.8.8.8/\u0000"},
        {"url": HOOK, "types": []},
        {"url": HOOK, "types": ["build failed"]},
        {"url": HOOK, "types": ["build\n"]},
        {"url": HOOK, "user": ""},
        {"url": HOOK, "user": "bob\n"},
        {"types": ["build"]},
    ],
    ids=[
        "empty-url",
        "long-url",
        "newline-in-url",
        "space-in-url",
        "nul-in-url",
        "no-types",
        "bad-type",
        "type-trailing-newline",
        "empty-user",
        "user-trailing-newline",
        "no-url",
    ],
)
async def test_a_registration_that_does_not_match_the_schema_is_a_422(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], body: dict[str, Any]
) -> None:
    response = await client.post(PATH, headers=admin, json=body)
    assert_problem(response, 422, "validation-failed")
    assert await everyones(client, settings) == []


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_registration_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], kind: str
) -> None:
    case = malformed(kind, {"url": HOOK})
    response = await send_malformed(client, "POST", PATH, alice, case)
    assert_problem(response, case.status, case.slug)
    assert await everyones(client, settings) == []
