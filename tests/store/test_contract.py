"""The Store contract (app/store/__init__.py): one body, run against SQLite and PostgreSQL.

Per-user sequences are the cursors every client resumes from (docs/streams.md), so most
of these tests look at them: contiguous from 1, shared by notifications and state events, with
no gap and no duplicate under concurrent writers.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from herald_server.config import Settings
from herald_server.errors import IdempotencyConflict
from herald_server.models import (
    Audience,
    Counts,
    Draft,
    Everyone,
    InboxItem,
    InboxQuery,
    Published,
    Recipients,
    StateAction,
    StateEvent,
    TopicAudience,
    now_ms,
)
from herald_server.store import IdempotencyClaim, Store, open_store

pytestmark = pytest.mark.anyio

EVERYTHING = 100_000


def draft(title: str = "hello", **fields: Any) -> Draft:
    values: dict[str, Any] = {
        "type": "default",
        "title": title,
        "body": "",
        "data": {},
        "priority": "normal",
        "publisher": "billing-service",
    }
    values.update(fields)
    return Draft(**values)


async def send(
    store: Store,
    *users: str,
    title: str = "hello",
    now: int | None = None,
    claim: IdempotencyClaim | None = None,
    **fields: Any,
) -> Published:
    when = now_ms() if now is None else now
    return await store.publish(draft(title, **fields), Recipients(users), claim, when)


async def send_to(store: Store, audience: Audience, title: str = "hello") -> Published:
    return await store.publish(draft(title), audience, None, now_ms())


async def everything(
    store: Store, user: str, now: int | None = None
) -> list[InboxItem | StateEvent]:
    when = now_ms() if now is None else now
    return list(await store.events_since(user, 0, EVERYTHING, when))


def seqs(events: list[InboxItem | StateEvent]) -> list[int]:
    return [event.seq for event in events]


def notification_ids(events: list[InboxItem | StateEvent]) -> list[int]:
    return [event.notification.id for event in events if isinstance(event, InboxItem)]


# --- sequences ----------------------------------------------------------------------------


async def test_seqs_start_at_one_and_are_shared_by_notifications_and_state_events(
    store: Store,
) -> None:
    first = await send(store, "alice", title="one")
    found, read = await store.change("alice", first.notification_id, "read", now_ms())
    second = await send(store, "alice", title="two")

    assert first.targets == (("alice", 1),)
    assert found
    assert read is not None
    assert read.seq == 2
    assert second.targets == (("alice", 3),)
    assert await store.head("alice") == 3
    events = await everything(store, "alice")
    assert seqs(events) == [1, 2, 3]
    assert [type(event) for event in events] == [InboxItem, StateEvent, InboxItem]


async def test_each_user_has_an_independent_sequence(store: Store) -> None:
    await send(store, "alice")
    await send(store, "alice")
    both = await send(store, "alice", "bob")

    assert dict(both.targets) == {"alice": 3, "bob": 1}
    assert both.recipients == 2
    assert await store.head("alice") == 3
    assert await store.head("bob") == 1


async def test_concurrent_publishes_leave_every_user_contiguous_seqs_without_duplicates(
    store: Store,
) -> None:
    users = [f"user{n}" for n in range(6)]
    expected: dict[str, list[int]] = defaultdict(list)
    taken: dict[str, list[int]] = defaultdict(list)
    state_events: dict[str, int] = defaultdict(int)

    async def publisher(rng: random.Random, name: str) -> None:
        for n in range(25):
            recipients = rng.sample(users, rng.randint(1, 4))
            published = await send(store, *recipients, title=f"{name}-{n}")
            for user, seq in published.targets:
                expected[user].append(published.notification_id)
                taken[user].append(seq)

    async def reader(rng: random.Random) -> None:
        # State changes take seqs from the same per-user counter, concurrently.
        for _ in range(25):
            user = rng.choice(users)
            if expected[user]:
                found, event = await store.change(
                    user, rng.choice(expected[user]), "read", now_ms()
                )
                assert found
                if event is not None:
                    taken[user].append(event.seq)
                    state_events[user] += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for n in range(8):
                tasks.start_soon(publisher, random.Random(n), f"p{n}")
            for n in range(2):
                tasks.start_soon(reader, random.Random(100 + n))

    for user in users:
        head = await store.head(user)
        assert sorted(taken[user]) == list(range(1, head + 1)), user
        events = await everything(store, user)
        assert seqs(events) == list(range(1, head + 1)), user
        assert sorted(notification_ids(events)) == sorted(expected[user]), user
        assert len(events) - len(expected[user]) == state_events[user], user
        page = await store.inbox(user, InboxQuery(limit=1000), now_ms())
        assert sorted(item.notification.id for item in page.items) == sorted(expected[user])


# --- events_since ---------------------------------------------------------------------------


async def test_events_since_merges_items_and_state_events_skipping_deleted_and_expired(
    store: Store,
) -> None:
    t0 = now_ms()
    one = await send(store, "alice", title="one", now=t0)  # seq 1
    two = await send(store, "alice", title="two", now=t0)  # seq 2, deleted below
    await send(store, "alice", title="brief", now=t0, expires_at=t0 + 1000)  # seq 3
    _, read = await store.change("alice", one.notification_id, "read", t0)  # seq 4
    _, deleted = await store.change("alice", two.notification_id, "delete", t0)  # seq 5
    four = await send(store, "alice", title="four", now=t0)  # seq 6

    later = await everything(store, "alice", now=t0 + 2000)
    assert seqs(later) == [1, 4, 5, 6]
    assert notification_ids(later) == [one.notification_id, four.notification_id]
    assert [e.action for e in later if isinstance(e, StateEvent)] == ["read", "delete"]
    assert read is not None
    assert deleted is not None
    assert later[1] == read
    assert later[2] == deleted

    assert seqs(await everything(store, "alice", now=t0)) == [1, 3, 4, 5, 6]


async def test_events_since_honours_after_and_limit(store: Store) -> None:
    t0 = now_ms()
    one = await send(store, "alice", now=t0)  # seq 1
    await send(store, "alice", now=t0)  # seq 2
    await store.change("alice", one.notification_id, "read", t0)  # seq 3
    await send(store, "alice", now=t0)  # seq 4

    assert seqs(list(await store.events_since("alice", 0, 2, t0))) == [1, 2]
    assert seqs(list(await store.events_since("alice", 1, 2, t0))) == [2, 3]
    assert seqs(list(await store.events_since("alice", 2, 100, t0))) == [3, 4]
    assert list(await store.events_since("alice", 4, 100, t0)) == []
    assert list(await store.events_since("bob", 0, 100, t0)) == []


# --- idempotency --------------------------------------------------------------------------


async def test_a_repeated_idempotency_claim_replays_the_first_result_and_writes_nothing(
    store: Store,
) -> None:
    claim = ("billing-service", "key-1", "fingerprint-a")
    first = await send(store, "alice", "bob", claim=claim)
    again = await send(store, "alice", "bob", claim=claim)

    assert not first.replayed
    assert again.replayed
    assert again.notification_id == first.notification_id
    assert again.recipients == 2
    assert again.targets == ()
    assert await store.head("alice") == 1
    assert await store.head("bob") == 1
    assert len(await everything(store, "alice")) == 1


async def test_an_idempotency_key_reused_with_another_body_conflicts(store: Store) -> None:
    await send(store, "alice", claim=("billing-service", "key-1", "fingerprint-a"))

    with pytest.raises(IdempotencyConflict):
        await send(store, "alice", "bob", claim=("billing-service", "key-1", "fingerprint-b"))

    assert await store.head("alice") == 1
    assert await store.head("bob") == 0


async def test_idempotency_keys_belong_to_their_publisher(store: Store) -> None:
    first = await send(store, "alice", claim=("billing-service", "key-1", "fingerprint-a"))
    other = await send(store, "alice", claim=("shipping-service", "key-1", "fingerprint-a"))

    assert not other.replayed
    assert other.notification_id != first.notification_id
    assert await store.head("alice") == 2


async def test_concurrent_identical_claims_publish_exactly_once(store: Store) -> None:
    claim = ("billing-service", "key-1", "fingerprint-a")
    results: list[Published] = []

    async def attempt() -> None:
        results.append(await send(store, "alice", "bob", claim=claim))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for _ in range(10):
                tasks.start_soon(attempt)

    assert sorted(result.replayed for result in results) == [False] + [True] * 9
    assert {result.notification_id for result in results} == {results[0].notification_id}
    assert {result.recipients for result in results} == {2}
    assert await store.head("alice") == 1
    assert await store.head("bob") == 1


async def test_purge_idempotency_removes_only_keys_older_than_the_cutoff(store: Store) -> None:
    t0 = now_ms()
    old = ("billing-service", "old", "fingerprint-a")
    recent = ("billing-service", "recent", "fingerprint-a")
    await send(store, "alice", claim=old, now=t0)
    await send(store, "alice", claim=recent, now=t0 + 10_000)

    assert await store.purge_idempotency(t0 + 5_000) == 1

    assert not (await send(store, "alice", claim=old, now=t0 + 20_000)).replayed
    assert (await send(store, "alice", claim=recent, now=t0 + 20_000)).replayed


# --- scheduling ---------------------------------------------------------------------------


async def test_a_scheduled_notification_waits_until_released_then_arrives_once(
    store: Store,
) -> None:
    t0 = now_ms()
    scheduled = await send(store, "alice", "bob", now=t0, send_at=t0 + 1000)

    assert scheduled.scheduled
    assert scheduled.recipients == 2
    assert scheduled.targets == ()
    assert await store.head("alice") == 0
    assert await store.release_due(t0 + 999, 10) == []

    released = await store.release_due(t0 + 1000, 10)

    assert [p.notification_id for p in released] == [scheduled.notification_id]
    assert dict(released[0].targets) == {"alice": 1, "bob": 1}
    assert released[0].notification is not None
    assert await store.release_due(t0 + 5000, 10) == []
    assert notification_ids(await everything(store, "alice")) == [scheduled.notification_id]


async def _release_concurrently(
    stores: Sequence[Store], users: list[str], count: int, tasks_per_store: int
) -> list[Published]:
    """Schedule `count` notifications to overlapping users, then release them from several
    tasks on each store at once."""
    t0 = now_ms()
    rng = random.Random(7)
    for n in range(count):
        recipients = rng.sample(users, rng.randint(1, len(users)))
        await send(stores[0], *recipients, title=f"s{n}", now=t0, send_at=t0 + 1)
    released: list[Published] = []

    async def releaser(store: Store) -> None:
        while batch := await store.release_due(t0 + 1000, 3):
            released.extend(batch)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for store in stores:
                for _ in range(tasks_per_store):
                    tasks.start_soon(releaser, store)
    return released


async def _assert_released_exactly_once(
    store: Store, users: list[str], released: list[Published], count: int
) -> None:
    ids = [published.notification_id for published in released]
    assert len(ids) == count
    assert len(set(ids)) == count
    for user in users:
        events = await everything(store, user)
        mine = [p.notification_id for p in released if user in dict(p.targets)]
        assert sorted(notification_ids(events)) == sorted(mine)
        assert seqs(events) == list(range(1, await store.head(user) + 1))


async def test_release_due_from_concurrent_tasks_delivers_each_notification_once(
    store: Store,
) -> None:
    users = ["alice", "bob", "carol", "dave"]
    released = await _release_concurrently([store], users, count=30, tasks_per_store=6)
    await _assert_released_exactly_once(store, users, released, count=30)


async def test_release_due_from_two_nodes_delivers_each_notification_once(
    production_settings: Settings,
) -> None:
    nodes = [open_store(production_settings), open_store(production_settings)]
    try:
        users = ["alice", "bob", "carol", "dave"]
        released = await _release_concurrently(nodes, users, count=30, tasks_per_store=3)
        await _assert_released_exactly_once(nodes[0], users, released, count=30)
    finally:
        for node in nodes:
            await node.aclose()


# --- audiences ----------------------------------------------------------------------------


async def test_a_topic_reaches_its_current_subscribers_only(store: Store) -> None:
    now = now_ms()
    assert await store.subscribe("bob", "deploys", now)
    assert await store.subscribe("carol", "deploys", now)
    assert not await store.subscribe("bob", "deploys", now)
    await store.subscribe("alice", "billing", now)

    first = await send_to(store, TopicAudience("deploys"))
    assert first.recipients == 2
    assert dict(first.targets) == {"bob": 1, "carol": 1}

    assert await store.unsubscribe("bob", "deploys")
    assert not await store.unsubscribe("bob", "deploys")
    second = await send_to(store, TopicAudience("deploys"))
    assert dict(second.targets) == {"carol": 2}
    assert await store.head("alice") == 0

    topics = {topic.name: topic for topic in await store.topics("carol", None, 100)}
    assert topics["deploys"].subscribed
    assert topics["deploys"].subscribers == 1
    assert not topics["billing"].subscribed


async def test_a_topic_nobody_follows_reaches_nobody(store: Store) -> None:
    published = await send_to(store, TopicAudience("empty"))
    assert published.recipients == 0
    assert published.targets == ()


async def test_a_broadcast_reaches_every_known_user(store: Store) -> None:
    now = now_ms()
    await store.ensure_user("alice", now)
    await store.ensure_user("bob", now)
    await store.subscribe("carol", "deploys", now)
    await send(store, "dave")  # dave's seq 1

    published = await send_to(store, Everyone())

    assert published.recipients == 4
    assert dict(published.targets) == {"alice": 1, "bob": 1, "carol": 1, "dave": 2}
    for user in ("alice", "bob", "carol", "dave"):
        assert notification_ids(await everything(store, user))[-1] == published.notification_id


async def test_a_collapse_key_replaces_the_earlier_item_for_those_recipients_only(
    store: Store,
) -> None:
    now = now_ms()
    first = await send(store, "alice", "bob", title="build running", collapse_key="build-42")
    second = await send(store, "alice", title="build passed", collapse_key="build-42")

    assert await store.item("alice", first.notification_id, now_ms()) is None
    assert await store.item("alice", second.notification_id, now_ms()) is not None
    assert await store.item("bob", first.notification_id, now_ms()) is not None
    alice = await store.inbox("alice", InboxQuery(), now_ms())
    assert [item.notification.title for item in alice.items] == ["build passed"]
    assert (await store.counts("alice", now)).unread == 1
    assert (await store.counts("bob", now)).unread == 1


async def test_collapsing_publishes_and_concurrent_reads_of_the_collapsed_item_both_succeed(
    store: Store,
) -> None:
    """A collapsing publish and a read of the item it replaces touch the same inbox row and
    the same user row; neither may fail (say, as a deadlock victim)."""
    ids: list[int] = []
    publishing = anyio.Event()

    async def publisher() -> None:
        for n in range(60):
            published = await send(store, "alice", "bob", title=f"n{n}", collapse_key="build")
            ids.append(published.notification_id)

    async def reader(rng: random.Random) -> None:
        while not publishing.is_set():
            if ids:
                action: StateAction = rng.choice(["read", "unread"])
                await store.change("alice", ids[-1], action, now_ms())
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as readers:
            for n in range(6):
                readers.start_soon(reader, random.Random(n))
            async with anyio.create_task_group() as publishers:
                for _ in range(3):
                    publishers.start_soon(publisher)
            publishing.set()

    page = await store.inbox("alice", InboxQuery(), now_ms())
    assert len(page.items) == 1
    assert seqs(await everything(store, "alice"))[-1] == await store.head("alice")


# --- state changes ------------------------------------------------------------------------


async def test_change_cannot_reach_another_users_or_an_unknown_notification(
    store: Store,
) -> None:
    mine = await send(store, "alice")

    assert await store.change("bob", mine.notification_id, "read", now_ms()) == (False, None)
    assert await store.change("alice", 999_999, "read", now_ms()) == (False, None)
    assert await store.item("bob", mine.notification_id, now_ms()) is None
    assert await store.head("bob") == 0
    assert await store.head("alice") == 1


async def test_changing_an_item_to_the_state_it_has_records_no_event(store: Store) -> None:
    published = await send(store, "alice")
    found, first = await store.change("alice", published.notification_id, "read", now_ms())
    assert found
    assert first is not None
    assert first.counts.unread == 0

    assert await store.change("alice", published.notification_id, "read", now_ms()) == (
        True,
        None,
    )
    assert await store.head("alice") == 2


async def test_read_then_unread_round_trips_the_counts(store: Store) -> None:
    published = await send(store, "alice")
    _, read = await store.change("alice", published.notification_id, "read", now_ms())
    _, unread = await store.change("alice", published.notification_id, "unread", now_ms())

    assert read is not None
    assert unread is not None
    assert (read.counts.unread, read.counts.unseen) == (0, 0)
    assert (unread.counts.unread, unread.counts.unseen) == (1, 0)
    item = await store.item("alice", published.notification_id, now_ms())
    assert item is not None
    assert item.read_at is None
    assert item.seen_at is not None


async def test_a_deleted_item_is_gone_and_cannot_be_changed_again(store: Store) -> None:
    published = await send(store, "alice")
    found, deleted = await store.change("alice", published.notification_id, "delete", now_ms())

    assert found
    assert deleted is not None
    assert await store.item("alice", published.notification_id, now_ms()) is None
    assert await store.change("alice", published.notification_id, "read", now_ms()) == (
        False,
        None,
    )


async def test_change_all_up_to_a_cursor_leaves_later_items_alone(store: Store) -> None:
    items = [await send(store, "alice", title=f"n{n}") for n in range(3)]  # seqs 1..3

    event = await store.change_all("alice", "read", 2, now_ms())

    assert event is not None
    assert (event.seq, event.action, event.up_to) == (4, "read", 2)
    assert event.counts.unread == 1
    states = [await store.item("alice", p.notification_id, now_ms()) for p in items]
    assert [state is not None and state.read_at is not None for state in states] == [
        True,
        True,
        False,
    ]
    assert await store.change_all("alice", "read", 2, now_ms()) is None
    assert await store.head("alice") == 4


async def test_change_all_without_a_cursor_covers_everything(store: Store) -> None:
    for _ in range(3):
        await send(store, "alice")

    event = await store.change_all("alice", "read", None, now_ms())

    assert event is not None
    assert event.counts.unread == 0
    assert await store.change_all("alice", "read", None, now_ms()) is None
    assert await store.change_all("nobody", "read", None, now_ms()) is None


# --- counts, head, users ------------------------------------------------------------------


async def test_counts_exclude_archived_deleted_and_expired_items(store: Store) -> None:
    t0 = now_ms()
    await send(store, "alice", title="kept", now=t0)
    archived = await send(store, "alice", title="archived", now=t0)
    deleted = await send(store, "alice", title="deleted", now=t0)
    await send(store, "alice", title="expiring", now=t0, expires_at=t0 + 1000)
    await store.change("alice", archived.notification_id, "archive", t0)
    await store.change("alice", deleted.notification_id, "delete", t0)

    now = await store.counts("alice", t0)
    later = await store.counts("alice", t0 + 2000)

    assert (now.unread, now.unseen) == (2, 2)
    assert (later.unread, later.unseen) == (1, 1)
    assert await store.counts("nobody", t0) == Counts(0, 0, 0)


async def test_head_is_zero_for_a_user_never_seen(store: Store) -> None:
    assert await store.head("nobody") == 0


async def test_ensure_user_is_idempotent_and_never_resets_a_sequence(store: Store) -> None:
    await store.ensure_user("alice", now_ms())
    await store.ensure_user("alice", now_ms())
    assert await store.head("alice") == 0

    await send(store, "alice")
    await store.ensure_user("alice", now_ms())

    assert await store.head("alice") == 1
    assert (await send(store, "alice")).targets == (("alice", 2),)
