"""Making attempts (app/core/delivery.py) against a real store on both dialects.

The channel is a stand-in for a provider, written here: it implements
`herald_server.channels.Channel` and answers what each test tells it to. Herald's own store and
job queue are the real ones; time is a clock the test moves by hand, except where a real timeout
is the point.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import anyio
import pytest

from herald_server.bus.memory import MemoryJobQueue
from herald_server.bus.redis import RedisJobQueue
from herald_server.channels import (
    Channel,
    Message,
    Outcome,
    PushTarget,
    WebhookContent,
    WebhookTarget,
)
from herald_server.core.delivery import (
    Deliverer,
    Dispatcher,
    RetryPolicy,
    delivery_key,
    parse_delivery_key,
)
from herald_server.core.preferences import wants_inbox
from herald_server.core.routing import Router
from herald_server.models import Delivery, DeliveryAttempt, DeliveryQuery, Draft, Recipients
from herald_server.store import Backend, Store
from tests.helpers import free_port

pytestmark = pytest.mark.anyio

T0 = 1_750_000_000_000
LEASE = 10_000
BACKOFF = (1.0, 5.0, 30.0)


# --- RetryPolicy ----------------------------------------------------------------------------


def test_a_delivery_key_names_its_delivery_and_nothing_else_parses() -> None:
    assert parse_delivery_key("herald-42-1764000000000") == (42, 1764000000000)
    for key in (
        "",
        "herald-42",
        "herald--1",
        "herald-x-1",
        "other-42-1",
        "herald-4\u0662-1",
        "herald-" + "9" * 19 + "-1",
    ):
        assert parse_delivery_key(key) is None, key


def test_each_retry_waits_the_backoff_for_its_try() -> None:
    policy = RetryPolicy(BACKOFF)
    assert policy.max_tries == 4
    assert [policy.retry_at(tries, None, T0) for tries in (1, 2, 3)] == [
        T0 + 1000,
        T0 + 5000,
        T0 + 30_000,
    ]


def test_no_retry_after_the_last_try() -> None:
    policy = RetryPolicy(BACKOFF)
    assert policy.retry_at(4, None, T0) is None
    assert policy.retry_at(5, 1.0, T0) is None
    assert RetryPolicy(()).retry_at(1, None, T0) is None


def test_a_retry_after_longer_than_the_backoff_wins_and_a_shorter_one_does_not() -> None:
    policy = RetryPolicy(BACKOFF)
    assert policy.retry_at(1, 120.0, T0) == T0 + 120_000
    assert policy.retry_at(2, 1.5, T0) == T0 + 5000
    assert policy.retry_at(1, 2.25, T0) == T0 + 2250


def test_a_retry_after_is_capped_at_a_day() -> None:
    policy = RetryPolicy(BACKOFF)
    assert policy.retry_at(1, 30 * 86_400.0, T0) == T0 + 86_400_000


def test_the_default_policy_has_five_tries() -> None:
    policy = RetryPolicy()
    assert policy.max_tries == 5
    assert policy.retry_at(4, None, T0) == T0 + 300_000
    assert policy.retry_at(5, None, T0) is None


# --- a provider's stand-in --------------------------------------------------------------------


Answer = Callable[[Message], Awaitable[Outcome]]


async def accepted(message: Message) -> Outcome:
    return Outcome("delivered", "200 OK", provider_id=f"p-{message.key}")


@dataclass
class FakeChannel:
    """A provider that answers with `answer`, recording every message it was given."""

    answer: Answer = accepted
    messages: list[Message] = field(default_factory=list)

    async def send(self, message: Message) -> Outcome:
        self.messages.append(message)
        return await self.answer(message)

    async def aclose(self) -> None:
        return None


_: type[Channel] = FakeChannel


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


def backend(store: Store) -> Backend:
    """The `store` fixture is the whole SQL backend; its delivery half is what is tested."""
    return cast(Backend, store)


def deliverer(store: Store, channel: FakeChannel, clock: Clock, lease: int = LEASE) -> Deliverer:
    return Deliverer(
        backend(store),
        {"webhook": channel, "push": channel, "email": channel},
        RetryPolicy(BACKOFF),
        lambda user, kind: f"https://herald.example.com/u/{user}/{kind}",
        lease=lease,
        clock=clock,
    )


async def publish(store: Store, *, expires_at: int | None = None, now: int = T0) -> int:
    draft = Draft("invoice", "Invoice ready", "€42", {}, "normal", "billing", expires_at=expires_at)
    published = await store.publish(draft, Recipients(("alice",)), None, now, wants_inbox)
    return published.notification_id


async def route(store: Store, channels: set[str], now: int = T0) -> list[int]:
    """Plan what was published and claim what is due; return the claimed delivery ids."""
    router = Router(frozenset(channels))
    await backend(store).route(now, 100, lambda request: router.plan(request, now))
    return await backend(store).claim_due(now, 100, LEASE)


async def webhook_delivery(store: Store, expires_at: int | None = None) -> int:
    await backend(store).add_webhook(
        "alice", "https://hooks.example.com/a", "s3cret", None, "alice", T0
    )
    await publish(store, expires_at=expires_at)
    (delivery_id,) = await route(store, {"webhook"})
    return delivery_id


async def state(store: Store, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]]:
    found = await backend(store).delivery(delivery_id)
    assert found is not None
    return found


# --- Deliverer ------------------------------------------------------------------------------


async def test_an_accepted_attempt_is_recorded_with_the_providers_answer(store: Store) -> None:
    delivery_id = await webhook_delivery(store)
    channel, clock = FakeChannel(), Clock(T0 + 5)

    assert await deliverer(store, channel, clock).attempt(delivery_id)

    (message,) = channel.messages
    delivery, history = await state(store, delivery_id)
    assert message.key == delivery_key(delivery) == f"herald-{delivery_id}-{T0}"
    assert message.user == "alice"
    assert isinstance(message.target, WebhookTarget)
    assert (message.target.url, message.target.secret) == ("https://hooks.example.com/a", "s3cret")
    assert isinstance(message.content, WebhookContent)
    assert message.content.data["title"] == "Invoice ready"
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert delivery.provider_id == f"p-{message.key}"
    assert delivery.last_error is None
    assert history == [DeliveryAttempt(1, T0 + 5, T0 + 5, "delivered", "200 OK")]


async def test_an_attempt_with_no_answer_within_the_lease_is_retried(store: Store) -> None:
    delivery_id = await webhook_delivery(store)

    async def silent(message: Message) -> Outcome:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    worker = deliverer(store, FakeChannel(silent), Clock(T0), lease=200)
    with anyio.fail_after(5):
        assert await worker.attempt(delivery_id)

    delivery, history = await state(store, delivery_id)
    assert (delivery.status, delivery.due_at) == ("pending", T0 + 1000)
    assert delivery.last_error == "no answer within the lease"
    assert [(a.outcome, a.detail) for a in history] == [("retry", "no answer within the lease")]


async def test_a_channel_that_raises_is_retried_as_an_internal_error(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    delivery_id = await webhook_delivery(store)

    async def broken(message: Message) -> Outcome:
        raise RuntimeError("bug in a channel")

    with caplog.at_level(logging.ERROR, logger="herald_server.core.delivery"):
        assert await deliverer(store, FakeChannel(broken), Clock(T0)).attempt(delivery_id)

    delivery, history = await state(store, delivery_id)
    assert (delivery.status, delivery.due_at) == ("pending", T0 + 1000)
    assert [(a.outcome, a.detail) for a in history] == [("retry", "internal error: RuntimeError")]
    assert "bug in a channel" in caplog.text


async def test_a_provider_retry_after_sets_the_next_try_and_the_last_try_fails(
    store: Store,
) -> None:
    delivery_id = await webhook_delivery(store)

    async def busy(message: Message) -> Outcome:
        return Outcome("retry", "429 Too Many Requests", retry_after=60.0)

    channel, clock = FakeChannel(busy), Clock(T0)
    worker = deliverer(store, channel, clock)
    assert await worker.attempt(delivery_id)
    assert (await state(store, delivery_id))[0].due_at == T0 + 60_000
    for _ in range(3):
        clock.now = (await state(store, delivery_id))[0].due_at
        assert await worker.attempt(delivery_id)

    delivery, history = await state(store, delivery_id)
    assert len(channel.messages) == 4
    assert delivery.status == "failed"
    assert delivery.last_error == "gave up after 4 tries: 429 Too Many Requests"
    assert [a.outcome for a in history] == ["retry"] * 4
    assert worker.attempts == {("webhook", "retry"): 4}


async def test_an_attempt_before_a_retry_is_due_does_nothing(store: Store) -> None:
    delivery_id = await webhook_delivery(store)

    async def down(message: Message) -> Outcome:
        return Outcome("retry", "503")

    channel = FakeChannel(down)
    clock = Clock(T0)
    assert await deliverer(store, channel, clock).attempt(delivery_id)
    clock.now = T0 + 999
    # A duplicate job: acked (True), nothing sent, nothing recorded.
    assert await deliverer(store, channel, clock).attempt(delivery_id)
    assert len(channel.messages) == 1
    assert len((await state(store, delivery_id))[1]) == 1


async def test_a_removed_push_subscription_is_cancelled_without_calling_the_channel(
    store: Store,
) -> None:
    await backend(store).add_push_subscription("alice", "https://push.example/1", "k", "a", T0)
    await publish(store)
    (delivery_id,) = await route(store, {"push"})
    assert await backend(store).remove_push_subscription("alice", "https://push.example/1")
    channel = FakeChannel()

    assert await deliverer(store, channel, Clock(T0)).attempt(delivery_id)

    assert channel.messages == []
    delivery, history = await state(store, delivery_id)
    assert delivery.status == "cancelled"
    assert [(a.outcome, a.detail) for a in history] == [("skipped", "the push target was removed")]


async def test_a_gone_push_subscription_is_deleted_and_the_delivery_cancelled(
    store: Store,
) -> None:
    await backend(store).add_push_subscription("alice", "https://push.example/1", "k", "a", T0)
    await publish(store)
    (delivery_id,) = await route(store, {"push"})

    async def gone(message: Message) -> Outcome:
        assert isinstance(message.target, PushTarget)
        return Outcome("gone", "410 Gone")

    assert await deliverer(store, FakeChannel(gone), Clock(T0)).attempt(delivery_id)

    assert (await state(store, delivery_id))[0].status == "cancelled"
    assert await backend(store).push_subscriptions("alice") == []


async def test_an_expired_notification_is_cancelled_without_calling_the_channel(
    store: Store,
) -> None:
    delivery_id = await webhook_delivery(store, expires_at=T0 + 1000)
    channel = FakeChannel()

    assert await deliverer(store, channel, Clock(T0 + 1000)).attempt(delivery_id)

    assert channel.messages == []
    delivery, history = await state(store, delivery_id)
    assert delivery.status == "cancelled"
    assert [a.outcome for a in history] == ["skipped"]
    assert "expired" in (delivery.last_error or "")


async def test_a_job_for_a_delivery_another_attempt_holds_stays_unacked(store: Store) -> None:
    delivery_id = await webhook_delivery(store)
    sending, answer = anyio.Event(), anyio.Event()

    async def slow(message: Message) -> Outcome:
        sending.set()
        await answer.wait()
        return Outcome("delivered", "200 OK")

    first, second = FakeChannel(slow), FakeChannel()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(deliverer(store, first, Clock(T0)).attempt, delivery_id)
            await sending.wait()
            # The same job handed out twice (a reclaim), while the first attempt's lease runs.
            done = await deliverer(store, second, Clock(T0 + LEASE)).attempt(delivery_id)
            answer.set()

    assert done is False
    assert second.messages == []
    delivery, history = await state(store, delivery_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert [a.outcome for a in history] == ["delivered"]


async def test_an_attempt_after_an_interrupted_one_takes_over_and_sends(store: Store) -> None:
    delivery_id = await webhook_delivery(store)
    assert await backend(store).start_attempt(delivery_id, T0, LEASE) not in (None, "busy")
    channel = FakeChannel()

    assert await deliverer(store, channel, Clock(T0 + LEASE + 1)).attempt(delivery_id)

    assert len(channel.messages) == 1
    delivery, history = await state(store, delivery_id)
    assert delivery.status == "delivered"
    assert [a.outcome for a in history] == ["interrupted", "delivered"]


async def test_tries_beyond_the_maximum_after_interrupted_attempts_fail_without_sending(
    store: Store,
) -> None:
    delivery_id = await webhook_delivery(store)
    max_tries = RetryPolicy(BACKOFF).max_tries
    now = T0
    for _ in range(max_tries):
        assert await backend(store).start_attempt(delivery_id, now, LEASE) not in (None, "busy")
        now += LEASE + 1
    channel = FakeChannel()

    assert await deliverer(store, channel, Clock(now)).attempt(delivery_id)

    assert channel.messages == []
    delivery, history = await state(store, delivery_id)
    assert delivery.status == "failed"
    assert delivery.last_error == f"gave up after {max_tries} interrupted tries"
    assert [a.outcome for a in history] == ["interrupted"] * max_tries + ["failed"]


async def test_the_last_allowed_try_after_interrupted_ones_is_still_sent(store: Store) -> None:
    delivery_id = await webhook_delivery(store)
    max_tries = RetryPolicy(BACKOFF).max_tries
    now = T0
    for _ in range(max_tries - 1):
        await backend(store).start_attempt(delivery_id, now, LEASE)
        now += LEASE + 1
    channel = FakeChannel()

    assert await deliverer(store, channel, Clock(now)).attempt(delivery_id)

    assert len(channel.messages) == 1
    assert (await state(store, delivery_id))[0].status == "delivered"


async def test_a_delivery_on_a_channel_no_longer_configured_fails(store: Store) -> None:
    delivery_id = await webhook_delivery(store)
    worker = Deliverer(
        backend(store), {}, RetryPolicy(BACKOFF), lambda user, kind: "", LEASE, Clock(T0)
    )

    assert await worker.attempt(delivery_id)

    delivery, _ = await state(store, delivery_id)
    assert delivery.status == "failed"
    assert delivery.last_error == "the webhook channel is not configured"


# --- Dispatcher -----------------------------------------------------------------------------


async def test_a_dispatcher_tick_plans_queues_and_a_deliverer_sends(store: Store) -> None:
    await backend(store).add_webhook("alice", "https://hooks.example.com/a", "s", None, "alice", T0)
    notification_id = await publish(store)
    queue = MemoryJobQueue(visibility=10)
    dispatcher = Dispatcher(backend(store), queue, Router(frozenset({"webhook"})), 60_000)

    assert await dispatcher.tick(T0) == 1

    (job,) = await queue.take("worker", 10, 0)
    (delivery,) = await backend(store).deliveries(DeliveryQuery(notification_id=notification_id))
    assert job.delivery_id == delivery.id
    assert not job.reclaimed
    channel = FakeChannel()
    assert await deliverer(store, channel, Clock(T0)).attempt(job.delivery_id)
    await queue.ack([job])
    assert len(channel.messages) == 1
    assert await dispatcher.tick(T0 + 1) == 0
    assert await queue.take("worker", 10, 0) == []


async def test_a_delivery_queued_by_a_dispatcher_is_queued_again_only_after_requeue_after(
    store: Store,
) -> None:
    delivery_id = await webhook_delivery(store)  # claimed (queued) at T0 by `route`
    queue = MemoryJobQueue(visibility=10)
    dispatcher = Dispatcher(backend(store), queue, Router(frozenset({"webhook"})), 60_000)

    # The first tick queues everything due: a queue that died with its process lost its jobs.
    assert await dispatcher.tick(T0 + 1) == 1
    assert [job.delivery_id for job in await queue.take("w", 10, 0)] == [delivery_id]
    assert await dispatcher.tick(T0 + 1 + 60_000) == 0
    assert await dispatcher.tick(T0 + 2 + 60_000) == 1
    assert [job.delivery_id for job in await queue.take("w", 10, 0)] == [delivery_id]


async def test_while_the_queue_is_down_a_tick_warns_and_deliveries_wait_in_the_store(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await backend(store).add_webhook("alice", "https://hooks.example.com/a", "s", None, "alice", T0)
    await publish(store)
    down = RedisJobQueue(f"redis://127.0.0.1:{free_port()}/0", "herald-test:jobs", 10)
    router = Router(frozenset({"webhook"}))
    try:
        with (
            caplog.at_level(logging.WARNING, logger="herald_server.core.delivery"),
            anyio.fail_after(5),
        ):
            assert await Dispatcher(backend(store), down, router, 60_000).tick(T0) == 1
    finally:
        await down.aclose()
    assert "job queue unavailable" in caplog.text

    # Another worker's dispatcher, whose queue works, queues them on its first tick.
    queue = MemoryJobQueue(visibility=10)
    assert await Dispatcher(backend(store), queue, router, 60_000).tick(T0 + 1) == 1
    assert len(await queue.take("w", 10, 0)) == 1
