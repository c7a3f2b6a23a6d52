"""The webhook channel against a real receiver that verifies with the Standard Webhooks
library, so a signature passes only if it is right by the spec's own code."""

from __future__ import annotations

import base64
import secrets
import socket
import time
from collections.abc import AsyncIterator
from datetime import datetime

import anyio
import pytest

from herald_server.channels import Message, Outcome, WebhookContent, WebhookTarget
from herald_server.channels.webhook import EXCERPT_CHARS, WebhookChannel
from tests.servers.webhook import REDIRECT_TARGET, WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.anyio

TIMEOUT = 2.0


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    webhooks = WebhookChannel(TIMEOUT, allow_private=True)
    yield webhooks
    await webhooks.aclose()


@pytest.fixture
async def guarded_channel() -> AsyncIterator[WebhookChannel]:
    """As production runs it: private and loopback addresses are refused."""
    webhooks = WebhookChannel(TIMEOUT, allow_private=False)
    yield webhooks
    await webhooks.aclose()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def registered(receiver: WebhookReceiver, name: str) -> WebhookTarget:
    """Register a hook as a user would: Herald makes the secret, the receiver is told it."""
    secret = new_secret()
    receiver.set_secret(name, secret)
    return WebhookTarget(1, receiver.url(name), secret)


def message(target: WebhookTarget, key: str = "delivery-1") -> Message:
    content = WebhookContent("invoice.paid", {"invoice": 7, "amount": "€42"})
    return Message(key, "alice", target, content)


async def send(channel: WebhookChannel, message: Message) -> Outcome:
    with anyio.fail_after(10):
        return await channel.send(message)


async def test_a_webhook_is_delivered_signed_as_the_standard_library_verifies(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    outcome = await send(channel, message(registered(receiver, "billing")))

    assert outcome.status == "delivered", outcome.detail
    arrival = receiver.unique["delivery-1"]
    assert arrival.name == "billing"
    assert arrival.payload["type"] == "invoice.paid"
    assert arrival.payload["data"] == {"invoice": 7, "amount": "€42"}
    sent_at = datetime.fromisoformat(arrival.payload["timestamp"])
    assert sent_at.utcoffset() is not None
    assert abs(sent_at.timestamp() - time.time()) < 60
    assert int(arrival.headers["webhook-timestamp"]) == int(sent_at.timestamp())
    assert arrival.headers["content-type"] == "application/json"
    assert arrival.headers["user-agent"].startswith("Herald/")


async def test_a_resend_keeps_its_webhook_id_and_the_receiver_acts_once(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    target = registered(receiver, "billing")

    first = await send(channel, message(target, key="delivery-7"))
    second = await send(channel, message(target, key="delivery-7"))

    assert (first.status, second.status) == ("delivered", "delivered")
    assert [arrival.webhook_id for arrival in receiver.arrivals] == ["delivery-7", "delivery-7"]
    assert list(receiver.unique) == ["delivery-7"]


async def test_a_signature_made_with_another_secret_is_rejected(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    target = registered(receiver, "billing")
    receiver.set_secret("billing", new_secret())

    outcome = await send(channel, message(target))

    assert outcome.status == "failed"
    assert outcome.detail.startswith("HTTP 401")
    assert [rejection.name for rejection in receiver.rejected] == ["billing"]
    assert receiver.arrivals == []


@pytest.mark.parametrize(
    ("status", "retry_after"), [(503, None), (500, None), (429, 7), (408, None), (425, 2)]
)
async def test_a_transient_failure_asks_for_a_retry_when_the_receiver_says(
    channel: WebhookChannel, receiver: WebhookReceiver, status: int, retry_after: int | None
) -> None:
    target = registered(receiver, "billing")
    receiver.fail_next("billing", 1, status, retry_after)

    refused = await send(channel, message(target))
    retried = await send(channel, message(target))

    assert refused.status == "retry"
    assert refused.retry_after == retry_after
    assert refused.detail.startswith(f"HTTP {status}: simulated {status}")
    assert retried.status == "delivered"
    assert list(receiver.unique) == ["delivery-1"]


async def test_a_deleted_hook_is_gone(channel: WebhookChannel, receiver: WebhookReceiver) -> None:
    target = registered(receiver, "billing")
    receiver.gone("billing")

    outcome = await send(channel, message(target))

    assert outcome.status == "gone"


async def test_a_refusal_fails_keeping_only_the_start_of_the_answer(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    target = registered(receiver, "billing")
    receiver.fail_always("billing", 400)

    outcome = await send(channel, message(target))

    assert outcome.status == "failed"
    assert outcome.detail.startswith("HTTP 400: simulated 400 -....")
    assert len(outcome.detail) == len("HTTP 400: ") + EXCERPT_CHARS


async def test_an_endless_answer_is_cut_after_its_start(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    target = registered(receiver, "billing")
    receiver.flood("billing")

    outcome = await send(channel, message(target))

    assert outcome.status == "failed"
    assert outcome.detail.startswith("HTTP 400: flood flood")


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_fails_and_its_target_is_never_called(
    channel: WebhookChannel, receiver: WebhookReceiver, status: int
) -> None:
    target = registered(receiver, "billing")
    receiver.set_secret(REDIRECT_TARGET, target.secret)
    receiver.fail_always("billing", status)

    outcome = await send(channel, message(target))

    assert outcome.status == "failed"
    assert "redirects are not followed" in outcome.detail
    assert receiver.hits == {"billing": 1}


async def test_a_receiver_slower_than_the_timeout_asks_for_a_retry(
    receiver: WebhookReceiver,
) -> None:
    target = registered(receiver, "billing")
    receiver.hold("billing", 30)
    impatient = WebhookChannel(0.5, allow_private=True)
    try:
        with anyio.fail_after(5):
            timed_out = await impatient.send(message(target))
        receiver.recover("billing")
        resent = await send(impatient, message(target))
    finally:
        await impatient.aclose()

    assert timed_out.status == "retry"
    assert timed_out.detail == "no answer within 0.5 s"
    assert resent.status == "delivered"
    # The receiver had acted before it answered; the resend's id makes it a no-op there.
    assert len(receiver.arrivals) == 2
    assert list(receiver.unique) == ["delivery-1"]


async def test_an_unreachable_receiver_asks_for_a_retry(channel: WebhookChannel) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = WebhookTarget(1, f"http://127.0.0.1:{port}/hooks/billing", new_secret())

    outcome = await send(channel, message(target))

    assert outcome.status == "retry"
    assert outcome.detail.startswith("ConnectError")


async def test_loopback_is_refused_unless_private_targets_are_allowed(
    guarded_channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    outcome = await send(guarded_channel, message(registered(receiver, "billing")))

    assert outcome.status == "failed"
    assert "not a public address" in outcome.detail
    assert receiver.hits == {}


async def test_a_malformed_secret_fails_without_a_request(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    target = WebhookTarget(1, receiver.url("billing"), "whsec_not base64!")

    outcome = await send(channel, message(target))

    assert outcome.status == "failed"
    assert "whsec_" in outcome.detail
    assert receiver.hits == {}
