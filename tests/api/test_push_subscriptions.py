"""POST|GET|DELETE /api/push-subscriptions: a browser's Web Push subscription, stored only when
Herald could encrypt for it and may call it, and only ever the caller's own to list or remove.

Endpoints here are literal public addresses: they pass the SSRF guard without a DNS lookup,
and nothing is ever sent to them (no test here publishes).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from herald_server.config import Settings, with_dev_vapid_key
from herald_server.main import create_app
from tests.api.bodies import MALFORMED, get_json, malformed, send_malformed
from tests.conftest import run_server
from tests.helpers import assert_problem
from tests.servers.push import push_service

pytestmark = pytest.mark.anyio

PATH = "/api/push-subscriptions"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def p256_point(compressed: bool = False) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    form = PublicFormat.CompressedPoint if compressed else PublicFormat.UncompressedPoint
    return key.public_bytes(Encoding.X962, form)


def subscription(endpoint: str | None = None, **keys: str) -> dict[str, Any]:
    """A PushSubscription as a browser serializes it, with a real P-256 key."""
    return {
        "endpoint": endpoint or f"https://8.8.8.8/wpush/v2/{secrets.token_urlsafe(12)}",
        "expirationTime": None,
        "keys": {"p256dh": b64url(p256_point()), "auth": b64url(secrets.token_bytes(16)), **keys},
    }


def push_settings(settings: Settings, tmp_path: Path, allow_private: bool) -> Settings:
    return with_dev_vapid_key(
        replace(
            settings, dev_vapid_file=str(tmp_path / "vapid"), allow_private_targets=allow_private
        )
    )


@pytest.fixture
async def push(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A node with Web Push on (a VAPID key) that refuses private push endpoints."""
    configured = push_settings(settings, tmp_path, allow_private=False)
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield client


async def endpoints_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    page = await get_json(client, PATH, headers)
    return [item["endpoint"] for item in page["items"]]


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], status: int = 201
) -> dict[str, Any]:
    response = await client.post(PATH, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    stored: dict[str, Any] = response.json()
    return stored


# --- the happy path ------------------------------------------------------------------------


async def test_a_subscription_is_stored_201_listed_and_re_registered_200(
    push: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    first = subscription()
    stored = await register(push, alice, first)
    assert set(stored) == {"id", "endpoint", "created_at"}
    assert stored["endpoint"] == first["endpoint"]
    assert stored["created_at"].endswith("Z")
    # The browser resubscribes with fresh keys: the same subscription, updated.
    again = await register(push, alice, subscription(first["endpoint"]), status=200)
    assert again["id"] == stored["id"]
    second = await register(push, alice, subscription())
    assert second["id"] != stored["id"]
    page = await get_json(push, PATH, alice)
    assert [item["id"] for item in page["items"]] == [stored["id"], second["id"]]
    assert [item["endpoint"] for item in page["items"]] == [
        first["endpoint"],
        second["endpoint"],
    ]


async def test_a_subscription_from_a_push_service_on_loopback_is_stored_when_allowed(
    settings: Settings, tmp_path: Path, alice: dict[str, str]
) -> None:
    configured = push_settings(settings, tmp_path, allow_private=True)
    async with (
        push_service() as service,
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        key = (await get_json(client, "/api/channels", alice))["push_public_key"]
        assert isinstance(key, str)
        assert len(base64.urlsafe_b64decode(key + "==")) == 65
        browser = service.subscribe(key)
        await register(client, alice, browser)
        assert await endpoints_of(client, alice) == [browser["endpoint"]]


async def test_channels_offer_push_and_its_key_once_a_vapid_key_is_set(
    push: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    channels = await get_json(push, "/api/channels", alice)
    assert channels["available"] == ["in_app", "push", "webhook"]
    assert isinstance(channels["push_public_key"], str)


async def test_without_a_vapid_key_a_subscription_is_a_409_and_nothing_is_stored(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post(PATH, headers=alice, json=subscription())
    assert_problem(response, 409, "channel-not-configured")
    assert await endpoints_of(client, alice) == []


async def test_removing_a_subscription_answers_204_then_404(
    push: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    kept, removed = subscription(), subscription()
    await register(push, alice, kept)
    await register(push, alice, removed)
    body = {"endpoint": removed["endpoint"]}
    gone = await push.request("DELETE", PATH, headers=alice, json=body)
    assert gone.status_code == 204
    assert gone.content == b""
    assert await endpoints_of(push, alice) == [kept["endpoint"]]
    again = await push.request("DELETE", PATH, headers=alice, json=body)
    assert_problem(again, 404, "not-found")


# --- isolation -----------------------------------------------------------------------------


async def test_a_user_lists_only_their_own_subscriptions(
    push: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    alices = subscription()
    await register(push, alice, alices)
    assert await endpoints_of(push, bob) == []
    assert await endpoints_of(push, alice) == [alices["endpoint"]]


async def test_removing_another_users_endpoint_is_a_404_and_it_stays(
    push: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    alices = subscription()
    await register(push, alice, alices)
    response = await push.request(
        "DELETE", PATH, headers=bob, json={"endpoint": alices["endpoint"]}
    )
    assert_problem(response, 404, "not-found")
    assert await endpoints_of(push, alice) == [alices["endpoint"]]


async def test_an_endpoint_registered_by_another_user_is_a_409_and_stays_theirs(
    push: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    """Moving it would hand alice's pushes to whoever learnt her endpoint; a browser that
    changes hands unsubscribes and subscribes again, which gives it a fresh endpoint."""
    shared = subscription()
    await register(push, alice, shared)
    before = await get_json(push, PATH, alice)
    response = await push.post(PATH, headers=bob, json=subscription(shared["endpoint"]))
    assert_problem(response, 409, "push-endpoint-taken")
    assert await get_json(push, PATH, alice) == before
    assert await endpoints_of(push, bob) == []


# Two tabs of one browser profile may subscribe at once; more make the race certain.
CONCURRENT_REGISTRATIONS = 10


async def test_concurrent_registrations_of_one_endpoint_store_it_once(
    push: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    shared = subscription()
    answers: list[int] = []

    async def one() -> None:
        answers.append((await push.post(PATH, headers=alice, json=shared)).status_code)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            for _ in range(CONCURRENT_REGISTRATIONS):
                tasks.start_soon(one)
    assert sorted(answers) == [200] * (CONCURRENT_REGISTRATIONS - 1) + [201]
    assert await endpoints_of(push, alice) == [shared["endpoint"]]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_push_subscriptions_need_a_token(
    push: httpx.AsyncClient, alice: dict[str, str], method: str
) -> None:
    mine = subscription()
    await register(push, alice, mine)
    body = mine if method == "POST" else {"endpoint": mine["endpoint"]}
    response = await push.request(method, PATH, json=body)
    assert_problem(response, 401, "unauthenticated")
    assert await endpoints_of(push, alice) == [mine["endpoint"]]


# --- refusals ------------------------------------------------------------------------------


def _bad_keys() -> dict[str, dict[str, str]]:
    not_on_curve = b"\x04" + secrets.token_bytes(64)
    return {
        "p256dh-not-on-the-curve": {"p256dh": b64url(not_on_curve)},
        "p256dh-compressed": {"p256dh": b64url(p256_point(compressed=True))},
        "p256dh-not-base64url": {"p256dh": "!!!not base64!!!"},
        "p256dh-point-and-more": {"p256dh": b64url(p256_point() + b"\x00")},
        "p256dh-too-long": {"p256dh": "A" * 201},
        "p256dh-empty": {"p256dh": ""},
        "auth-15-bytes": {"auth": b64url(secrets.token_bytes(15))},
        "auth-17-bytes": {"auth": b64url(secrets.token_bytes(17))},
        "auth-empty": {"auth": ""},
    }


@pytest.mark.parametrize("case", _bad_keys().keys())
async def test_keys_herald_cannot_encrypt_for_are_a_422_and_nothing_is_stored(
    push: httpx.AsyncClient, alice: dict[str, str], case: str
) -> None:
    response = await push.post(PATH, headers=alice, json=subscription(**_bad_keys()[case]))
    assert_problem(response, 422, "validation-failed")
    assert await endpoints_of(push, alice) == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://8.8.8.8/wpush/v2/abc",
        "https://127.0.0.1/push/abc",
        "https://127.0.0.1:6379/",
        "https://localhost/push/abc",
        "https://10.1.2.3/push/abc",
        "https://192.168.0.10/push/abc",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/push/abc",
        "https://[::ffff:127.0.0.1]/push/abc",
        "https://0.0.0.0/push/abc",
        "https://user:secret@8.8.8.8/push/abc",
        "ftp://8.8.8.8/push/abc",
        "push-service",
    ],
    ids=[
        "http",
        "loopback",
        "loopback-redis-port",
        "localhost",
        "private-10",
        "private-192",
        "link-local-metadata",
        "ipv6-loopback",
        "ipv4-mapped-loopback",
        "unspecified",
        "credentials",
        "ftp",
        "no-scheme",
    ],
)
async def test_an_endpoint_herald_may_not_call_is_a_422_and_nothing_is_stored(
    push: httpx.AsyncClient, alice: dict[str, str], endpoint: str
) -> None:
    response = await push.post(PATH, headers=alice, json=subscription(endpoint))
    assert_problem(response, 422, "target-not-allowed")
    assert await endpoints_of(push, alice) == []


@pytest.mark.parametrize(
    "body",
    [
        {"keys": subscription()["keys"]},
        {"endpoint": "https://8.8.8.8/push/x"},
        {"endpoint": "", "keys": subscription()["keys"]},
        {"endpoint": "https://8.8.8.8/" + "x" * 2048, "keys": subscription()["keys"]},
        {**subscription(), "keys": {**subscription()["keys"], "extra": "x"}},
        {**subscription(), "expirationTime": "tomorrow"},
        {**subscription(), "endpoint": "https://8.8.8.8/push/\u0000"},
        {**subscription(), "endpoint": "https://8.8.8.8/push x"},
    ],
    ids=[
        "no-endpoint",
        "no-keys",
        "empty-endpoint",
        "long-endpoint",
        "extra-key",
        "expiry-type",
        "nul-in-endpoint",
        "space-in-endpoint",
    ],
)
async def test_a_subscription_that_does_not_match_the_schema_is_a_422(
    push: httpx.AsyncClient, alice: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(await push.post(PATH, headers=alice, json=body), 422, "validation-failed")
    assert await endpoints_of(push, alice) == []


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_subscription_is_refused_and_nothing_is_stored(
    push: httpx.AsyncClient, alice: dict[str, str], kind: str
) -> None:
    case = malformed(kind, subscription())
    response = await send_malformed(push, "POST", PATH, alice, case)
    assert_problem(response, case.status, case.slug)
    assert await endpoints_of(push, alice) == []


@pytest.mark.parametrize("endpoint", ["\u0000", "https://8.8.8.8/push/\u0000", "a b"])
async def test_removing_an_endpoint_no_url_can_have_is_a_422_and_removes_nothing(
    push: httpx.AsyncClient, alice: dict[str, str], endpoint: str
) -> None:
    mine = subscription()
    await register(push, alice, mine)
    response = await push.request("DELETE", PATH, headers=alice, json={"endpoint": endpoint})
    assert_problem(response, 422, "validation-failed")
    assert await endpoints_of(push, alice) == [mine["endpoint"]]


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_removal_is_refused_and_removes_nothing(
    push: httpx.AsyncClient, alice: dict[str, str], kind: str
) -> None:
    mine = subscription()
    await register(push, alice, mine)
    case = malformed(kind, {"endpoint": mine["endpoint"]})
    response = await send_malformed(push, "DELETE", PATH, alice, case)
    assert_problem(response, case.status, case.slug)
    assert await endpoints_of(push, alice) == [mine["endpoint"]]
