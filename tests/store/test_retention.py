"""Retention (app/store/retention.py): old notifications go with everything hanging on them,
in batches, on both backends; on PostgreSQL whole months are dropped as partitions.
Time is passed in: "old" is 40 days before now, the cutoff 30 days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from herald_server.config import Settings
from herald_server.core.preferences import wants_inbox
from herald_server.core.scheduler import DAY_MS, Retention, Scheduler
from herald_server.models import Draft, InboxItem, Recipients, now_ms
from herald_server.store import Backend, Store, open_store
from herald_server.store.migrations import MIGRATIONS_DIR, statements
from herald_server.store.retention import month_partition
from tests.conftest import PG_URL, SECRET
from tests.store.test_deliveries import planner, with_webhook
from tests.store.test_migrations import _create_database, _drop_database, _with_database

pytestmark = pytest.mark.anyio

NOW = now_ms()
OLD = NOW - 40 * DAY_MS
CUTOFF = NOW - 30 * DAY_MS
EVERYTHING = 100_000


def backend(store: Store) -> Backend:
    return cast(Backend, store)


async def publish(store: Store, *users: str, at: int, **fields: Any) -> int:
    values: dict[str, Any] = {
        "type": "invoice",
        "title": "Invoice ready",
        "body": "",
        "data": {},
        "priority": "normal",
        "publisher": "billing",
    }
    claim = fields.pop("claim", None)
    values.update(fields)
    published = await store.publish(Draft(**values), Recipients(users), claim, at, wants_inbox)
    return published.notification_id


async def rows(settings: Settings, sql: str) -> list[Any]:
    scheme, _, rest = settings.database_url.partition("://")
    driver = "sqlite+aiosqlite" if scheme.startswith("sqlite") else "postgresql+asyncpg"
    engine = create_async_engine(f"{driver}://{rest}")
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


async def count(settings: Settings, table: str) -> int:
    ((found,),) = await rows(settings, f"SELECT count(*) FROM {table}")  # noqa: S608
    return int(found)


async def old_and_new(store: Store) -> tuple[list[int], list[int]]:
    """Three old notifications to alice (read, routed to a webhook, one attempt each, one with
    an idempotency key) and two recent ones to alice and bob."""
    await with_webhook(store, "alice", "bob")
    old = [
        await publish(store, "alice", at=OLD, claim=("billing", f"k{n}", "f") if n == 0 else None)
        for n in range(3)
    ]
    await backend(store).change("alice", old[0], "read", OLD + 1)
    new = [await publish(store, "alice", "bob", at=NOW - DAY_MS) for _ in range(2)]
    await backend(store).route(NOW, 100, planner({"webhook"}, NOW))
    for delivery in await backend(store).claim_due(NOW, 100, 60_000):
        await backend(store).start_attempt(delivery, NOW, 10_000)
    return old, new


async def test_retention_deletes_old_notifications_and_their_dependents_only(
    store: Store, settings: Settings
) -> None:
    _, new = await old_and_new(store)

    report = await backend(store).retain(CUTOFF, 100, NOW)

    assert report.notifications == 3
    assert report.inbox == 3
    assert report.deliveries == 3
    assert report.attempts == 3
    assert report.user_events == 1
    assert report.idempotency_keys == 1
    left = {row[0] for row in await rows(settings, "SELECT id FROM notifications")}
    assert left == set(new)
    inbox = await rows(settings, "SELECT DISTINCT notification_id FROM inbox")
    assert {row[0] for row in inbox} == set(new)
    deliveries = await rows(settings, "SELECT DISTINCT notification_id FROM deliveries")
    assert {row[0] for row in deliveries} == set(new)
    assert await count(settings, "delivery_attempts") == 4
    assert await count(settings, "user_events") == 0
    assert await count(settings, "idempotency_keys") == 0
    again = await backend(store).retain(CUTOFF, 100, NOW)
    assert (again.notifications, again.inbox, again.deliveries, again.partitions_dropped) == (
        0,
        0,
        0,
        (),
    )


async def test_retention_works_in_batches_of_the_given_size(
    store: Store, settings: Settings
) -> None:
    old = [await publish(store, "alice", "bob", at=OLD) for _ in range(5)]

    report = await backend(store).retain(CUTOFF, 2, NOW)

    assert report.notifications == 5
    assert report.inbox == 10
    # 5 notifications 2 at a time: 3 rounds, each deleting inbox rows 2 by 2, then the rows.
    assert report.transactions >= 3 + 10 // 2
    assert await count(settings, "notifications") == 0
    assert await count(settings, "inbox") == 0
    assert old


async def test_retention_keeps_scheduled_notifications_until_they_are_released(
    store: Store, settings: Settings
) -> None:
    scheduled = await publish(store, "alice", at=OLD, send_at=NOW + DAY_MS)

    report = await backend(store).retain(CUTOFF, 100, NOW)

    assert report.notifications == 0
    assert [row[0] for row in await rows(settings, "SELECT id FROM notifications")] == [scheduled]


async def test_a_cursor_from_before_the_cutoff_resumes_with_what_is_left_and_seqs_go_on(
    store: Store,
) -> None:
    for _ in range(3):
        await publish(store, "alice", at=OLD)
    kept = [await publish(store, "alice", at=NOW - DAY_MS) for _ in range(2)]

    await backend(store).retain(CUTOFF, 100, NOW)

    assert await store.head("alice") == 5
    later = await publish(store, "alice", at=NOW)
    resumed = await store.events_since("alice", 1, EVERYTHING, NOW)
    assert [event.seq for event in resumed] == [4, 5, 6]
    ids = [event.notification.id for event in resumed if isinstance(event, InboxItem)]
    assert ids == [*kept, later]
    counts = await store.counts("alice", NOW)
    assert (counts.unread, counts.head) == (3, 6)


async def test_a_scheduler_runs_retention_only_when_it_is_configured(
    store: Store, settings: Settings
) -> None:
    await publish(store, "alice", at=OLD)
    scheduler = Scheduler(store, cast(Any, None), 1.0, 60, clock=lambda: NOW)

    report = await scheduler.retain(Retention(backend(store), 30, 100))

    assert report is not None
    assert report.notifications == 1
    assert await count(settings, "notifications") == 0


# --- PostgreSQL: partitions -----------------------------------------------------------------


async def partition_of(settings: Settings, notification_id: int) -> str:
    ((name,),) = await rows(
        settings,
        f"SELECT tableoid::regclass::text FROM notifications WHERE id = {notification_id}",  # noqa: S608
    )
    return str(name)


async def test_notifications_are_partitioned_by_month(production_settings: Settings) -> None:
    store = open_store(production_settings)
    try:
        notification_id = await publish(store, "alice", at=NOW)
    finally:
        await store.aclose()

    ((strategy,),) = await rows(
        production_settings,
        "SELECT partstrat::text FROM pg_partitioned_table"
        " WHERE partrelid = 'notifications'::regclass",
    )
    assert strategy == "r"
    assert await partition_of(production_settings, notification_id) == month_partition(NOW).name


async def test_a_month_wholly_before_the_cutoff_is_dropped_not_emptied(
    production_settings: Settings,
) -> None:
    store = open_store(production_settings)
    long_ago = NOW - 120 * DAY_MS
    month = month_partition(long_ago).name
    try:
        assert month in await backend(store).prepare_partitions(long_ago)
        gone = [await publish(store, "alice", "bob", at=long_ago) for _ in range(3)]
        kept = await publish(store, "alice", at=NOW)
        assert await partition_of(production_settings, gone[0]) == month

        report = await backend(store).retain(CUTOFF, 2, NOW)
    finally:
        await store.aclose()

    assert month in report.partitions_dropped
    assert report.notifications == 3
    assert report.inbox == 6
    assert await rows(production_settings, f"SELECT to_regclass('{month}')") == [(None,)]
    assert [row[0] for row in await rows(production_settings, "SELECT id FROM notifications")] == [
        kept
    ]
    assert await count(production_settings, "inbox") == 1


async def test_rows_outside_every_month_land_in_the_default_partition_and_are_handled(
    production_settings: Settings,
) -> None:
    store = open_store(production_settings)
    far_past, far_future = NOW - 1000 * DAY_MS, NOW + 400 * DAY_MS
    try:
        past = await publish(store, "alice", at=far_past)
        future = await publish(store, "alice", at=far_future)
        assert await partition_of(production_settings, past) == "notifications_default"
        assert await partition_of(production_settings, future) == "notifications_default"

        report = await backend(store).retain(CUTOFF, 100, NOW)
        # When the future month comes (prepared a month ahead), its rows move into it.
        created = await backend(store).prepare_partitions(far_future)
    finally:
        await store.aclose()

    assert report.notifications == 1
    assert [row[0] for row in await rows(production_settings, "SELECT id FROM notifications")] == [
        future
    ]
    assert month_partition(far_future).name in created
    assert await partition_of(production_settings, future) == month_partition(far_future).name
    assert await count(production_settings, "notifications_default") == 0


@pytest.fixture
async def pg_database(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = await _create_database(request)
    try:
        yield _with_database(PG_URL, name)
    finally:
        await _drop_database(name)


async def test_migration_0004_keeps_rows_and_ids_and_the_sequence_goes_on(
    pg_database: str,
) -> None:
    first = [
        (path.name, statements(path.read_text()))
        for path in sorted((MIGRATIONS_DIR / "postgresql").iterdir(), key=lambda entry: entry.name)[
            :3
        ]
    ]
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for version, (name, sqls) in enumerate(first, 1):
            for statement in sqls:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, 'then')", version, name
            )
        ids = [
            await conn.fetchval(
                "INSERT INTO notifications (type, title, body, data, priority, publisher,"
                " created_at) VALUES ('t', $1, '', '{}', 'normal', 'p', $2) RETURNING id",
                f"n{n}",
                at,
            )
            for n, at in enumerate((OLD, NOW, NOW))
        ]
        await conn.execute("INSERT INTO users VALUES ('alice', 1, 0)")
        await conn.execute(
            "INSERT INTO inbox (user_id, seq, notification_id) VALUES ('alice', 1, $1)", ids[1]
        )
        # The last id was used and deleted: it must not come back.
        await conn.execute("DELETE FROM notifications WHERE id = $1", ids[2])
    finally:
        await conn.close()

    store = open_store(Settings(database_url=pg_database, jwt_secret=SECRET))
    try:
        applied = await store.migrate()
        after = await publish(store, "alice", at=NOW)
    finally:
        await store.aclose()

    assert "0004_retention.sql" in applied
    conn = await asyncpg.connect(pg_database)
    try:
        found = await conn.fetch(
            "SELECT id, title, tableoid::regclass::text AS part FROM notifications ORDER BY id"
        )
    finally:
        await conn.close()
    assert [(row["id"], row["title"]) for row in found] == [
        (ids[0], "n0"),
        (ids[1], "n1"),
        (after, "Invoice ready"),
    ]
    assert after == ids[2] + 1
    # Kept rows of this month moved into this month's partition; older ones stay in DEFAULT.
    assert [row["part"] for row in found] == [
        "notifications_default",
        month_partition(NOW).name,
        month_partition(NOW).name,
    ]
