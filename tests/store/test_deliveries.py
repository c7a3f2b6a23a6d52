"""The DeliveryStore contract (app/store/__init__.py): one body, run against SQLite and
PostgreSQL, plus PostgreSQL with two store objects side by side, as two workers would be.

Notifications are published through the store as the publisher does, and planned by the real
router; time is passed in, never waited for.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from herald_server.config import Settings
from herald_server.core.preferences import wants_inbox
from herald_server.core.routing import Router, release
from herald_server.models import (
    EVERY_TYPE,
    Contact,
    Delivery,
    DeliveryQuery,
    DeliveryTask,
    Draft,
    EscalationStep,
    HeldDelivery,
    PlannedDelivery,
    Preferences,
    QuietHours,
    Recipients,
    Release,
    RoutingRequest,
    TypeDefaults,
)
from herald_server.store import Backend, Planner, Store, open_store

pytestmark = pytest.mark.anyio

# Monday 2 June 2025, 10:20 UTC; an hourly digest goes out at 11:00.
T0 = 1_748_859_600_000
ELEVEN = T0 + 40 * 60_000
LEASE = 10_000
EVERYTHING = DeliveryQuery(limit=1000)


def backend(store: Store) -> Backend:
    """The `store` fixture is the whole SQL backend; its delivery half is what is tested."""
    return cast(Backend, store)


async def publish(store: Store, *users: str, now: int = T0, **fields: Any) -> int:
    values: dict[str, Any] = {
        "type": "invoice",
        "title": "Invoice ready",
        "body": "€42",
        "data": {},
        "priority": "normal",
        "publisher": "billing",
    }
    values.update(fields)
    published = await store.publish(Draft(**values), Recipients(users), None, now, wants_inbox)
    return published.notification_id


def planner(channels: set[str], now: int = T0, calls: Counter[int] | None = None) -> Planner:
    router = Router(frozenset(channels))

    def plan(request: RoutingRequest) -> list[PlannedDelivery]:
        if calls is not None:
            calls[request.notification_id] += 1
        return router.plan(request, now)

    return plan


async def with_webhook(store: Store, *users: str) -> None:
    for user in users:
        await backend(store).add_webhook(
            user, f"https://hooks.example.com/{user}", "s", None, user, T0
        )


async def route_all(store: Store, channels: set[str], now: int = T0) -> None:
    while await backend(store).route(now, 100, planner(channels, now)):
        pass


async def deliveries(store: Store, **query: Any) -> list[Delivery]:
    return await backend(store).deliveries(DeliveryQuery(limit=1000, **query))


async def started(store: Store, delivery_id: int, now: int) -> DeliveryTask:
    task = await backend(store).start_attempt(delivery_id, now, LEASE)
    assert isinstance(task, DeliveryTask), task
    return task


async def one_webhook_delivery(store: Store) -> tuple[int, int]:
    """(notification id, delivery id) of a fresh, due webhook delivery to alice."""
    await with_webhook(store, "alice")
    notification_id = await publish(store, "alice")
    await route_all(store, {"webhook"})
    (delivery,) = await deliveries(store, notification_id=notification_id)
    return notification_id, delivery.id


# --- route ----------------------------------------------------------------------------------


async def test_route_plans_deliveries_for_each_recipient_and_target(store: Store) -> None:
    await with_webhook(store, "alice", "bob")
    await backend(store).add_webhook("alice", "https://hooks.example.com/a2", "s", None, "a", T0)
    notification_id = await publish(store, "alice", "bob", "carol")

    assert await backend(store).route(T0, 100, planner({"webhook"})) == 1
    assert await backend(store).route(T0, 100, planner({"webhook"})) == 0

    found = await deliveries(store, notification_id=notification_id)
    assert sorted((d.user, d.channel, d.status, d.due_at, d.attempts) for d in found) == [
        ("alice", "webhook", "pending", T0, 0),
        ("alice", "webhook", "pending", T0, 0),
        ("bob", "webhook", "pending", T0, 0),
    ]


async def test_route_reaches_a_recipient_who_turned_the_inbox_off(store: Store) -> None:
    await with_webhook(store, "alice")
    await backend(store).set_switch("alice", EVERY_TYPE, "in_app", False)
    notification_id = await publish(store, "alice")

    await route_all(store, {"webhook"})

    assert [d.user for d in await deliveries(store, notification_id=notification_id)] == ["alice"]


async def test_a_notification_for_the_inbox_only_is_never_routed(store: Store) -> None:
    await with_webhook(store, "alice")
    await publish(store, "alice", channels=("in_app",))
    calls: Counter[int] = Counter()

    assert await backend(store).route(T0, 100, planner({"webhook"}, calls=calls)) == 0
    assert calls == Counter()


async def _route_concurrently(
    stores: Sequence[Store], count: int, tasks_per_store: int
) -> Counter[int]:
    await with_webhook(stores[0], "alice", "bob")
    for n in range(count):
        await publish(stores[0], "alice", "bob", title=f"n{n}")
    calls: Counter[int] = Counter()
    routed: list[int] = []

    async def router(store: Store) -> None:
        while moved := await backend(store).route(T0, 2, planner({"webhook"}, calls=calls)):
            routed.append(moved)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for store in stores:
                for _ in range(tasks_per_store):
                    tasks.start_soon(router, store)
    assert sum(routed) == count
    return calls


async def _assert_routed_once(store: Store, calls: Counter[int], count: int) -> None:
    assert len(calls) == count
    assert set(calls.values()) == {1}, calls
    found = await deliveries(store)
    per_notification = Counter(d.notification_id for d in found)
    assert set(per_notification) == set(calls)
    assert set(per_notification.values()) == {2}


async def test_route_from_concurrent_tasks_plans_each_notification_once(store: Store) -> None:
    calls = await _route_concurrently([store], count=30, tasks_per_store=6)
    await _assert_routed_once(store, calls, 30)


async def test_route_from_two_workers_plans_each_notification_once(
    production_settings: Settings,
) -> None:
    workers = [open_store(production_settings), open_store(production_settings)]
    try:
        calls = await _route_concurrently(workers, count=30, tasks_per_store=3)
        await _assert_routed_once(workers[0], calls, 30)
    finally:
        for worker in workers:
            await worker.aclose()


# --- claim_due ------------------------------------------------------------------------------


async def test_claim_due_takes_due_pending_deliveries_once(store: Store) -> None:
    _, delivery_id = await one_webhook_delivery(store)

    assert await backend(store).claim_due(T0 - 1, 100, 60_000) == []
    assert await backend(store).claim_due(T0, 100, 60_000) == [delivery_id]
    assert await backend(store).claim_due(T0 + 1, 100, 60_000) == []


async def test_claim_due_requeues_a_delivery_queued_longer_ago_than_requeue_after(
    store: Store,
) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    assert await backend(store).claim_due(T0, 100, 60_000) == [delivery_id]

    assert await backend(store).claim_due(T0 + 60_000, 100, 60_000) == []
    assert await backend(store).claim_due(T0 + 60_001, 100, 60_000) == [delivery_id]
    assert await backend(store).claim_due(T0 + 60_002, 100, 60_000) == []


async def test_claim_due_requeues_a_sending_delivery_whose_worker_died(store: Store) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    assert await backend(store).claim_due(T0, 100, 60_000) == [delivery_id]
    await started(store, delivery_id, T0)

    # The lease runs to T0 + LEASE; the job is reclaimed through the queue first.
    assert await backend(store).claim_due(T0 + LEASE + 60_000, 100, 60_000) == []
    assert await backend(store).claim_due(T0 + LEASE + 60_001, 100, 60_000) == [delivery_id]


async def test_claim_due_leaves_held_and_finished_deliveries_alone(store: Store) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    task = await started(store, delivery_id, T0)
    assert await backend(store).finish_attempt(task, "delivered", "delivered", "200", T0)
    await backend(store).set_preferences(
        "bob", Preferences(digest="hourly", switches={EVERY_TYPE: {"email": True}}), T0
    )
    await backend(store).set_contact("bob", Contact(email="bob@example.com"), T0)
    await publish(store, "bob")
    await route_all(store, {"email"})

    assert await backend(store).claim_due(T0 + 3_600_000, 100, 0) == []


async def test_claim_due_keeps_each_user_within_their_share_in_flight(store: Store) -> None:
    """Mallory's backlog is older than bob's delivery: she gets her share queued, bob's is
    claimed past the rest, and hers come out one by one as earlier ones finish."""
    await with_webhook(store, "mallory", "bob")
    for n in range(5):
        await publish(store, "mallory", title=f"m{n}")
    await publish(store, "bob", now=T0 + 1)
    await route_all(store, {"webhook"})
    users = {delivery.id: delivery.user for delivery in await deliveries(store)}

    first = await backend(store).claim_due(T0 + 1, 100, 60_000, per_user=2)
    assert sorted(users[one] for one in first) == ["bob", "mallory", "mallory"]
    assert await backend(store).claim_due(T0 + 1, 100, 60_000, per_user=2) == []
    hers = next(one for one in first if users[one] == "mallory")
    finished = await started(store, hers, T0 + 1)
    assert await backend(store).finish_attempt(finished, "delivered", "delivered", "200", T0 + 2)
    (next_one,) = await backend(store).claim_due(T0 + 2, 100, 60_000, per_user=2)
    assert users[next_one] == "mallory"


async def _claim_concurrently(stores: Sequence[Store], count: int) -> list[int]:
    await with_webhook(stores[0], "alice", "bob", "carol")
    for n in range(count):
        await publish(stores[0], "alice", "bob", "carol", title=f"n{n}")
    await route_all(stores[0], {"webhook"})
    claimed: list[int] = []

    async def claimer(store: Store) -> None:
        while ids := await backend(store).claim_due(T0, 4, 60_000):
            claimed.extend(ids)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for store in stores:
                for _ in range(4):
                    tasks.start_soon(claimer, store)
    return claimed


async def test_claim_due_from_concurrent_tasks_hands_each_delivery_to_one(store: Store) -> None:
    claimed = await _claim_concurrently([store], count=15)
    assert len(claimed) == len(set(claimed)) == 45
    assert sorted(claimed) == sorted(d.id for d in await deliveries(store))


async def test_claim_due_from_two_workers_hands_each_delivery_to_one(
    production_settings: Settings,
) -> None:
    workers = [open_store(production_settings), open_store(production_settings)]
    try:
        claimed = await _claim_concurrently(workers, count=15)
        assert len(claimed) == len(set(claimed)) == 45
        assert sorted(claimed) == sorted(d.id for d in await deliveries(workers[0]))
    finally:
        for worker in workers:
            await worker.aclose()


# --- start_attempt and finish_attempt ----------------------------------------------------------


async def test_start_attempt_hands_out_a_task_with_what_the_attempt_needs(store: Store) -> None:
    notification_id, delivery_id = await one_webhook_delivery(store)
    await backend(store).set_preferences("alice", Preferences(locale="fr-CA"), T0)

    task = await started(store, delivery_id, T0 + 5)

    assert (task.delivery.id, task.delivery.status, task.delivery.attempts) == (
        delivery_id,
        "sending",
        1,
    )
    assert task.tries == 1
    assert task.notification is not None
    assert (task.notification.id, task.notification.title) == (notification_id, "Invoice ready")
    assert task.locale == "fr-CA"
    assert task.webhook is not None
    assert task.webhook.url == "https://hooks.example.com/alice"
    assert task.push is None
    _, history = await _state(store, delivery_id)
    assert [(a.attempt, a.started_at, a.finished_at, a.outcome) for a in history] == [
        (1, T0 + 5, None, "sending")
    ]


async def test_start_attempt_is_busy_while_a_lease_runs_and_takes_over_after(
    store: Store,
) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    await started(store, delivery_id, T0)

    assert await backend(store).start_attempt(delivery_id, T0 + 1, LEASE) == "busy"
    assert await backend(store).start_attempt(delivery_id, T0 + LEASE, LEASE) == "busy"
    task = await started(store, delivery_id, T0 + LEASE + 1)

    assert (task.delivery.attempts, task.tries) == (2, 2)
    delivery, history = await _state(store, delivery_id)
    assert delivery.status == "sending"
    assert [(a.attempt, a.outcome, a.finished_at) for a in history] == [
        (1, "interrupted", T0 + LEASE + 1),
        (2, "sending", None),
    ]


async def test_start_attempt_has_nothing_for_missing_finished_or_not_yet_due(
    store: Store,
) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    assert await backend(store).start_attempt(delivery_id + 1000, T0, LEASE) is None
    assert await backend(store).start_attempt(delivery_id, T0 - 1, LEASE) is None

    task = await started(store, delivery_id, T0)
    assert await backend(store).finish_attempt(
        task, "retry", "pending", "503", T0 + 1, due_at=T0 + 5000
    )
    assert await backend(store).start_attempt(delivery_id, T0 + 4999, LEASE) is None
    again = await started(store, delivery_id, T0 + 5000)
    assert again.tries == 2
    assert await backend(store).finish_attempt(again, "delivered", "delivered", "200", T0 + 5001)
    assert await backend(store).start_attempt(delivery_id, T0 + 99_999, LEASE) is None


async def test_finish_attempt_records_the_outcome_and_clears_the_lease(store: Store) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    task = await started(store, delivery_id, T0)

    assert await backend(store).finish_attempt(
        task, "retry", "pending", "503 Service Unavailable", T0 + 7, due_at=T0 + 1000
    )

    delivery, history = await _state(store, delivery_id)
    assert (delivery.status, delivery.due_at, delivery.last_error) == (
        "pending",
        T0 + 1000,
        "503 Service Unavailable",
    )
    assert [(a.outcome, a.finished_at, a.detail) for a in history] == [
        ("retry", T0 + 7, "503 Service Unavailable")
    ]
    # Queued again by the dispatcher once due: the first claim no longer counts.
    assert await backend(store).claim_due(T0 + 1000, 100, 60_000) == [delivery_id]


async def test_finish_attempt_refuses_once_its_lease_was_taken_over(store: Store) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    late = await started(store, delivery_id, T0)
    current = await started(store, delivery_id, T0 + LEASE + 1)

    assert not await backend(store).finish_attempt(
        late, "delivered", "delivered", "200", T0 + LEASE + 2
    )

    delivery, history = await _state(store, delivery_id)
    assert (delivery.status, delivery.attempts) == ("sending", 2)
    # The late answer is kept with its own attempt, for the operator.
    assert [(a.attempt, a.outcome) for a in history] == [(1, "delivered"), (2, "sending")]
    assert await backend(store).finish_attempt(
        current, "delivered", "delivered", "200", T0 + LEASE + 3, provider_id="p-1"
    )
    delivery, _ = await _state(store, delivery_id)
    assert (delivery.status, delivery.provider_id, delivery.last_error) == (
        "delivered",
        "p-1",
        None,
    )


async def test_finish_attempt_can_remove_a_gone_push_subscription(store: Store) -> None:
    await backend(store).add_push_subscription("alice", "https://push.example/1", "k", "a", T0)
    await backend(store).add_push_subscription("alice", "https://push.example/2", "k", "a", T0)
    await publish(store, "alice")
    await route_all(store, {"push"})
    first, second = sorted(d.id for d in await deliveries(store))
    task = await started(store, first, T0)
    assert task.push is not None
    assert task.push.endpoint == "https://push.example/1"

    assert await backend(store).finish_attempt(
        task, "gone", "cancelled", "410 Gone", T0 + 1, remove_target=True
    )

    remaining = await backend(store).push_subscriptions("alice")
    assert [one.endpoint for one in remaining] == ["https://push.example/2"]
    assert (await started(store, second, T0 + 2)).push is not None


async def _state(store: Store, delivery_id: int) -> tuple[Delivery, list[Any]]:
    found = await backend(store).delivery(delivery_id)
    assert found is not None
    delivery, history = found
    return delivery, list(history)


# --- release_held -----------------------------------------------------------------------------


async def digest_reader(store: Store, user: str) -> None:
    await backend(store).set_preferences(
        user,
        Preferences(timezone="UTC", digest="hourly", switches={EVERY_TYPE: {"email": True}}),
        T0,
    )
    await backend(store).set_contact(user, Contact(email=f"{user}@example.com"), T0)


async def release_all(store: Store, now: int, limit: int) -> list[int]:
    """Release until nothing is left; each call's count."""
    counts = []
    with anyio.fail_after(30):
        while decided := await backend(store).release_held(now, limit, lambda h: release(h, now)):
            counts.append(decided)
    return counts


async def test_release_held_gathers_one_digest_per_user_beyond_the_batch_limit(
    store: Store,
) -> None:
    await digest_reader(store, "alice")
    await digest_reader(store, "bob")
    published = [await publish(store, "alice", "bob", title=f"n{n}") for n in range(5)]
    await route_all(store, {"email"})
    assert {(d.status, d.reason, d.due_at) for d in await deliveries(store)} == {
        ("held", "digest", ELEVEN)
    }
    read, _ = await backend(store).change("alice", published[1], "read", T0 + 1)
    assert read

    assert await release_all(store, ELEVEN - 1, 1) == []
    counts = await release_all(store, ELEVEN, 1)

    # A batch of one still takes the whole of that user's digest.
    assert counts == [5, 5]
    digests = [d for d in await deliveries(store) if d.notification_id is None]
    assert sorted((d.user, d.target, d.status, d.reason) for d in digests) == [
        ("alice", "alice@example.com", "pending", "digest of 4"),
        ("bob", "bob@example.com", "pending", "digest of 5"),
    ]
    members = {d.id: d for d in await deliveries(store) if d.notification_id is not None}
    digest_of = {d.user: d.id for d in digests}
    for member in members.values():
        if member.user == "alice" and member.notification_id == published[1]:
            assert (member.status, member.digest_id) == ("cancelled", None)
        else:
            assert member.digest_id == digest_of[member.user]
    task = await started(store, digest_of["alice"], ELEVEN)
    assert task.notification is None
    assert [n.id for n in task.digest] == [published[0], *published[2:]]


async def test_release_held_sends_after_quiet_hours_and_cancels_a_seen_escalation(
    store: Store,
) -> None:
    noon = T0 + 100 * 60_000
    quiet = Preferences(timezone="UTC", quiet_hours=QuietHours(10 * 3600, 12 * 3600))
    await backend(store).set_preferences("alice", quiet, T0)
    steps = (EscalationStep(5 * 60_000, "seen", "push"),)
    await backend(store).set_type_defaults(TypeDefaults("alert", escalation=steps), T0)
    for user in ("alice", "bob"):
        await backend(store).add_push_subscription(
            user, f"https://push.example/{user}", "k", "a", T0
        )
    invoice = await publish(store, "alice")
    alert = await publish(store, "bob", type="alert")
    await route_all(store, {"push"})
    (to_alice,) = await deliveries(store, notification_id=invoice)
    (to_bob,) = await deliveries(store, notification_id=alert)
    assert (to_alice.status, to_alice.reason, to_alice.due_at) == ("held", "quiet-hours", noon)
    assert (to_bob.status, to_bob.reason, to_bob.due_at) == ("held", "unless-seen", T0 + 300_000)
    assert (await backend(store).change("bob", alert, "seen", T0 + 1))[0]

    assert await release_all(store, T0 + 300_000, 100) == [1]
    assert await release_all(store, noon - 1, 100) == []
    assert await release_all(store, noon, 100) == [1]

    (to_alice,) = await deliveries(store, notification_id=invoice)
    (to_bob,) = await deliveries(store, notification_id=alert)
    assert (to_alice.status, to_alice.due_at) == ("pending", noon)
    assert (to_bob.status, to_bob.reason) == ("cancelled", "seen before escalation")
    assert await backend(store).claim_due(noon, 100, 60_000) == [to_alice.id]


async def test_a_digest_is_gathered_per_address(store: Store) -> None:
    """Alice changed her address between notifications: each address gets its own digest."""
    await digest_reader(store, "alice")
    for n in range(2):
        await publish(store, "alice", title=f"old{n}")
    await route_all(store, {"email"})
    await backend(store).set_contact("alice", Contact(email="alice@new.example.com"), T0)
    for n in range(3):
        await publish(store, "alice", title=f"new{n}")
    await route_all(store, {"email"})

    assert await release_all(store, ELEVEN, 100) == [5]

    digests = [d for d in await deliveries(store) if d.notification_id is None]
    assert sorted((d.target, d.reason) for d in digests) == [
        ("alice@example.com", "digest of 2"),
        ("alice@new.example.com", "digest of 3"),
    ]


async def test_release_held_from_two_workers_still_sends_one_digest_per_user(
    production_settings: Settings,
) -> None:
    """Worker A has taken one of alice's digest rows; worker B (another process: its own
    thread, event loop and connections) releases while A's transaction is open."""
    first = open_store(production_settings)
    released_by_other: list[int] = []

    def other_worker() -> None:
        async def run() -> None:
            other = open_store(production_settings)
            try:
                decided = await backend(other).release_held(
                    ELEVEN, 1, lambda held: release(held, ELEVEN)
                )
                released_by_other.append(decided)
            finally:
                await other.aclose()

        anyio.run(run)

    def decide(held: HeldDelivery) -> Release:
        if not released_by_other:
            thread = threading.Thread(target=other_worker)
            thread.start()
            thread.join(timeout=30)
            assert released_by_other, "the other worker did not finish"
        return release(held, ELEVEN)

    try:
        await digest_reader(first, "alice")
        for n in range(6):
            await publish(first, "alice", title=f"n{n}")
        await route_all(first, {"email"})

        with anyio.fail_after(60):
            await backend(first).release_held(ELEVEN, 1, decide)

        digests = [d for d in await deliveries(first) if d.notification_id is None]
        assert [d.reason for d in digests] == ["digest of 6"]
    finally:
        await first.aclose()


async def test_held_deliveries_are_decided_once_and_only_when_due(store: Store) -> None:
    await digest_reader(store, "alice")
    first = await publish(store, "alice")
    second = await publish(store, "alice", expires_at=ELEVEN)
    await route_all(store, {"email"})
    decided: list[int] = []

    def decide_and_note(held: Any) -> Any:
        decided.append(held.id)
        return release(held, ELEVEN)

    assert await backend(store).release_held(ELEVEN - 1, 100, decide_and_note) == 0
    assert await backend(store).release_held(ELEVEN, 100, decide_and_note) == 2
    assert await backend(store).release_held(ELEVEN, 100, decide_and_note) == 0
    assert len(decided) == 2
    statuses = {d.notification_id: d.status for d in await deliveries(store, user="alice")}
    assert statuses[second] == "cancelled"  # it expired at eleven
    assert statuses[first] == "digested"


# --- replay, listing, backlog ------------------------------------------------------------------


async def failed_delivery(store: Store) -> tuple[int, int]:
    notification_id, delivery_id = await one_webhook_delivery(store)
    task = await started(store, delivery_id, T0)
    assert await backend(store).finish_attempt(task, "failed", "failed", "400 Bad Request", T0 + 1)
    return notification_id, delivery_id


async def test_replay_sends_a_failed_delivery_again_with_fresh_tries(store: Store) -> None:
    _, delivery_id = await failed_delivery(store)

    replayed = await backend(store).replay(delivery_id, T0 + 100)

    assert replayed is not None
    assert (replayed.id, replayed.status, replayed.due_at) == (delivery_id, "pending", T0 + 100)
    assert replayed.reason == "replayed from the dead-letter queue"
    assert await backend(store).claim_due(T0 + 100, 100, 60_000) == [delivery_id]
    task = await started(store, delivery_id, T0 + 101)
    assert (task.tries, task.delivery.attempts) == (1, 2)


async def test_replay_changes_nothing_but_a_failed_delivery(store: Store) -> None:
    _, delivery_id = await one_webhook_delivery(store)
    before = await backend(store).replay(delivery_id, T0 + 100)
    assert before is not None
    assert (before.status, before.due_at, before.reason) == ("pending", T0, None)

    task = await started(store, delivery_id, T0)
    assert await backend(store).finish_attempt(task, "delivered", "delivered", "200", T0 + 1)
    after = await backend(store).replay(delivery_id, T0 + 100)
    assert after is not None
    assert (after.status, after.updated_at) == ("delivered", T0 + 1)
    assert await backend(store).replay(delivery_id + 1000, T0) is None


async def test_deliveries_filter_by_status_channel_notification_user_and_page(
    store: Store,
) -> None:
    await with_webhook(store, "alice", "bob")
    await backend(store).add_push_subscription("alice", "https://push.example/1", "k", "a", T0)
    first = await publish(store, "alice", "bob")
    second = await publish(store, "alice")
    await route_all(store, {"webhook", "push"})
    everything = await deliveries(store)
    assert len(everything) == 5
    assert [d.id for d in everything] == sorted((d.id for d in everything), reverse=True)

    assert {d.channel for d in await deliveries(store, channel="push")} == {"push"}
    assert len(await deliveries(store, channel="push")) == 2
    assert {d.notification_id for d in await deliveries(store, notification_id=second)} == {second}
    assert {d.user for d in await deliveries(store, user="bob")} == {"bob"}
    assert [d.notification_id for d in await deliveries(store, user="bob")] == [first]
    page = await backend(store).deliveries(DeliveryQuery(limit=2))
    assert page == everything[:2]
    rest = await backend(store).deliveries(DeliveryQuery(limit=100, before=page[-1].id))
    assert rest == everything[2:]
    assert await deliveries(store, status="failed") == []
    assert len(await deliveries(store, status="pending")) == 5


async def test_a_sent_delivery_whose_item_was_read_reports_and_filters_as_read(
    store: Store,
) -> None:
    notification_id, delivery_id = await one_webhook_delivery(store)
    task = await started(store, delivery_id, T0)
    assert await backend(store).finish_attempt(task, "delivered", "delivered", "200", T0 + 1)
    assert [d.id for d in await deliveries(store, status="delivered")] == [delivery_id]
    assert await deliveries(store, status="read") == []

    await backend(store).change("alice", notification_id, "read", T0 + 2)

    (listed,) = await deliveries(store, status="read")
    assert (listed.id, listed.status, listed.read) == (delivery_id, "read", True)
    assert await deliveries(store, status="delivered") == []
    delivery, _ = await _state(store, delivery_id)
    assert (delivery.status, delivery.read) == ("read", True)


async def test_a_delivery_not_yet_sent_is_not_read_even_when_its_item_is(store: Store) -> None:
    notification_id, delivery_id = await one_webhook_delivery(store)
    await backend(store).change("alice", notification_id, "read", T0 + 2)

    assert await deliveries(store, status="read") == []
    (listed,) = await deliveries(store, status="pending")
    assert (listed.id, listed.status, listed.read) == (delivery_id, "pending", True)


async def test_the_backlog_counts_unfinished_and_failed_deliveries_by_channel(
    store: Store,
) -> None:
    await failed_delivery(store)
    await digest_reader(store, "bob")
    await backend(store).add_push_subscription("bob", "https://push.example/b", "k", "a", T0)
    await publish(store, "bob")
    await route_all(store, {"email", "push"})
    (push,) = await deliveries(store, channel="push")
    await started(store, push.id, T0)

    assert await backend(store).delivery_backlog() == {
        ("webhook", "failed"): 1,
        ("email", "held"): 1,
        ("push", "sending"): 1,
    }
