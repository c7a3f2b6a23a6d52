"""The Web Push channel against a local push service that verifies VAPID and decrypts each
push as the browser would, so a push arrives only if encryption and signature are right."""

from __future__ import annotations

import base64
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwk, jwt

from herald_server.channels import Message, Outcome, PushContent, PushTarget
from herald_server.channels.webpush import WebPushChannel, vapid_public_key
from herald_server.config import ConfigError, Settings, with_dev_vapid_key
from tests.servers.push import MAX_BODY_BYTES, PushService, push_service

pytestmark = pytest.mark.anyio

SUBJECT = "mailto:ops@herald.example"
TIMEOUT = 5.0


@pytest.fixture
def vapid_key(tmp_path: Path) -> str:
    """A key made as `herald serve` makes its development key."""
    settings = with_dev_vapid_key(Settings(dev_vapid_file=str(tmp_path / "vapid")))
    assert settings.vapid_private_key is not None
    return settings.vapid_private_key


@pytest.fixture
async def push() -> AsyncIterator[PushService]:
    async with push_service() as service:
        yield service


@pytest.fixture
async def channel(vapid_key: str) -> AsyncIterator[WebPushChannel]:
    pushes = WebPushChannel(vapid_key, SUBJECT, TIMEOUT, allow_private=True)
    yield pushes
    await pushes.aclose()


@pytest.fixture
async def guarded_channel(vapid_key: str) -> AsyncIterator[WebPushChannel]:
    """As production runs it: https only, private and loopback addresses refused."""
    pushes = WebPushChannel(vapid_key, SUBJECT, TIMEOUT, allow_private=False)
    yield pushes
    await pushes.aclose()


def target(subscription: dict[str, Any], endpoint: str | None = None) -> PushTarget:
    keys = subscription["keys"]
    return PushTarget(1, endpoint or subscription["endpoint"], keys["p256dh"], keys["auth"])


def message(push_target: PushTarget, key: str = "delivery-1", **content: Any) -> Message:
    content.setdefault("title", "Invoice paid")
    content.setdefault("body", "€42 received")
    return Message(key, "alice", push_target, PushContent(**content))


async def send(channel: WebPushChannel, message: Message) -> Outcome:
    with anyio.fail_after(10):
        return await channel.send(message)


async def test_a_push_arrives_decrypted_and_signed_with_the_vapid_key(
    channel: WebPushChannel, push: PushService, vapid_key: str
) -> None:
    subscription = push.subscribe(application_server_key=vapid_public_key(vapid_key))
    sent = message(target(subscription), data={"url": "/invoices/7"}, urgency="high", ttl=60)

    outcome = await send(channel, sent)

    assert outcome.status == "sent", outcome.detail
    assert outcome.provider_id == f"{push.base}/message/1"
    [received] = push.received
    assert received.payload == {
        "title": "Invoice paid",
        "body": "€42 received",
        "data": {"url": "/invoices/7"},
    }
    assert received.public_key == vapid_public_key(vapid_key)
    assert received.claims["aud"] == push.base
    assert received.claims["sub"] == SUBJECT
    assert time.time() < received.claims["exp"] <= time.time() + 24 * 3600
    assert received.headers["urgency"] == "high"
    assert received.headers["ttl"] == "60"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", received.headers["topic"])


async def test_a_delivery_keeps_its_topic_across_retries(
    channel: WebPushChannel, push: PushService
) -> None:
    push_target = target(push.subscribe())

    for key in ("delivery-1", "delivery-1", "delivery-2"):
        assert (await send(channel, message(push_target, key=key))).status == "sent"

    first, retry, other = (received.headers["topic"] for received in push.received)
    assert first == retry
    assert other != first


async def test_each_push_service_gets_a_vapid_token_for_its_own_origin(
    channel: WebPushChannel, push: PushService
) -> None:
    async with push_service() as other:
        for service in (push, push, other):
            outcome = await send(channel, message(target(service.subscribe())))
            assert outcome.status == "sent", outcome.detail

    first, again = push.received
    assert first.headers["authorization"] == again.headers["authorization"]
    assert other.received[0].claims["aud"] == other.base != push.base


@pytest.mark.parametrize("character", ["x", "é", "🔔", '"', "\x01"])
async def test_a_long_body_is_shortened_to_fit_a_push(
    channel: WebPushChannel, push: PushService, character: str
) -> None:
    body = character * 6000

    outcome = await send(channel, message(target(push.subscribe()), body=body, data={"id": 7}))

    assert outcome.status == "sent", outcome.detail
    [received] = push.received
    assert received.payload["title"] == "Invoice paid"
    assert received.payload["data"] == {"id": 7}
    shortened = received.payload["body"]
    assert shortened == character * (len(shortened) - 1) + "…"
    # Cut to fit, not further: within one escaped character of the limit.
    assert MAX_BODY_BYTES - 6 < received.size <= MAX_BODY_BYTES


async def test_a_push_whose_title_alone_is_too_long_fails_without_a_request(
    channel: WebPushChannel, push: PushService
) -> None:
    outcome = await send(channel, message(target(push.subscribe()), title="t" * 5000))

    assert outcome.status == "failed"
    assert push.attempts == 0


async def test_an_expired_subscription_is_gone(channel: WebPushChannel, push: PushService) -> None:
    subscription = push.subscribe()
    push.gone(subscription["endpoint"])

    outcome = await send(channel, message(target(subscription)))

    assert outcome.status == "gone"
    assert outcome.detail.startswith("HTTP 410")


async def test_an_endpoint_the_push_service_does_not_know_is_gone(
    channel: WebPushChannel, push: PushService
) -> None:
    unknown = target(push.subscribe(), endpoint=f"{push.base}/push/{secrets.token_urlsafe(16)}")

    outcome = await send(channel, message(unknown))

    assert outcome.status == "gone"
    assert outcome.detail.startswith("HTTP 404")


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, 120), (429, 30)])
async def test_push_service_trouble_asks_for_a_retry(
    channel: WebPushChannel, push: PushService, status: int, retry_after: int | None
) -> None:
    push_target = target(push.subscribe())
    push.fail_next(1, status, retry_after)

    refused = await send(channel, message(push_target))
    retried = await send(channel, message(push_target))

    assert refused.status == "retry"
    assert refused.retry_after == retry_after
    assert retried.status == "sent"


@pytest.mark.parametrize("status", [400, 403, 413])
async def test_a_refused_push_fails(
    channel: WebPushChannel, push: PushService, status: int
) -> None:
    push.fail_next(1, status)

    outcome = await send(channel, message(target(push.subscribe())))

    assert outcome.status == "failed"
    assert outcome.detail.startswith(f"HTTP {status}: simulated {status}")


async def test_a_subscription_made_for_another_vapid_key_refuses_the_push(
    channel: WebPushChannel, push: PushService
) -> None:
    other_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    subscription = push.subscribe(application_server_key=vapid_public_key(other_key))

    outcome = await send(channel, message(target(subscription)))

    assert outcome.status == "failed"
    assert outcome.detail.startswith("HTTP 403")
    assert push.received == []


async def test_the_push_service_refuses_a_token_not_signed_by_k(
    push: PushService, vapid_key: str
) -> None:
    """The VAPID checks the other tests rely on are real: a forged signature is refused."""
    forger = jwk.ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    claims = {"aud": push.base, "exp": int(time.time()) + 3600, "sub": SUBJECT}
    token = jwt.encode({"typ": "JWT", "alg": "ES256"}, claims, forger, algorithms=["ES256"])
    headers = {
        "authorization": f"vapid t={token}, k={vapid_public_key(vapid_key)}",
        "content-encoding": "aes128gcm",
        "ttl": "60",
    }

    with anyio.fail_after(10):
        async with httpx.AsyncClient() as client:
            response = await client.post(
                push.subscribe()["endpoint"], content=b"\0" * 100, headers=headers
            )

    assert response.status_code == 401
    assert push.received == []


async def test_a_private_endpoint_is_refused_before_any_request(
    guarded_channel: WebPushChannel, push: PushService
) -> None:
    subscription = push.subscribe()
    https_endpoint = subscription["endpoint"].replace("http://", "https://", 1)

    outcome = await send(guarded_channel, message(target(subscription, https_endpoint)))

    assert outcome.status == "failed"
    assert "not a public address" in outcome.detail
    assert push.attempts == 0


async def test_a_plain_http_endpoint_is_refused_unless_private_targets_are_allowed(
    guarded_channel: WebPushChannel, push: PushService
) -> None:
    outcome = await send(guarded_channel, message(target(push.subscribe())))

    assert outcome.status == "failed"
    assert "https" in outcome.detail
    assert push.attempts == 0


async def test_an_unreachable_push_service_asks_for_a_retry(
    channel: WebPushChannel, push: PushService
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = target(push.subscribe(), endpoint=f"http://127.0.0.1:{port}/push/gone")

    outcome = await send(channel, message(closed))

    assert outcome.status == "retry"
    assert outcome.detail.startswith("ConnectError")


async def test_subscription_keys_that_are_not_keys_fail_without_a_request(
    channel: WebPushChannel, push: PushService
) -> None:
    subscription = push.subscribe()
    broken = PushTarget(1, subscription["endpoint"], "bm90IGEga2V5", subscription["keys"]["auth"])

    outcome = await send(channel, message(broken))

    assert outcome.status == "failed"
    assert push.attempts == 0


def test_the_application_server_key_is_an_uncompressed_p256_point(vapid_key: str) -> None:
    public_key = vapid_public_key(vapid_key)

    point = base64.urlsafe_b64decode(public_key + "=")
    assert "=" not in public_key
    assert len(point) == 65
    assert point[0] == 4


@pytest.mark.parametrize(
    "key", ["", "not-a-key", "-----BEGIN PRIVATE KEY-----", base64.b64encode(b"x" * 40).decode()]
)
def test_a_malformed_vapid_key_names_its_setting(key: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_VAPID_PRIVATE_KEY"):
        WebPushChannel(key, SUBJECT, TIMEOUT, allow_private=False)


def test_a_subject_that_is_not_a_contact_uri_names_its_setting(vapid_key: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_VAPID_SUBJECT"):
        WebPushChannel(vapid_key, "ops@herald.example", TIMEOUT, allow_private=False)
