"""Retention: forgetting notifications older than a cutoff, a batch per short transaction.

A notification goes with everything that hangs on it: its inbox rows, its deliveries and their
attempts (nothing references notifications by foreign key on PostgreSQL, where the table is
partitioned, so the dependents go first and explicitly). State events and idempotency keys
older than the cutoff go too. `users` rows never do: they hold each user's sequence, and a
sequence that started again from 1 would let a resuming client skip new rows.

On PostgreSQL `notifications` is partitioned by month of `created_at` (migration 0004). A
month wholly before the cutoff loses its dependents in batches, then is dropped whole, which
costs a brief lock on the parent table instead of a long DELETE; rows of the month the cutoff
falls in, and of the DEFAULT partition, are deleted in batches like on SQLite.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    column,
    delete,
    select,
    table,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_server.store import RetentionReport, RetentionStore
from herald_server.store.base import CHUNK, SqlBase
from herald_server.store.tables import (
    deliveries,
    delivery_attempts,
    idempotency_keys,
    inbox,
    notifications,
    user_events,
)

log = logging.getLogger(__name__)

PARENT = "notifications"
# How long dropping a partition may wait for the parent table's lock before giving up until
# the next run: queued behind a long query, it would block every publish meanwhile.
DROP_LOCK_TIMEOUT = "2s"
_LOCK_NOT_AVAILABLE = "55P03"
_UNDEFINED_TABLE = "42P01"
_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass
class _Tally:
    """What a run did so far; becomes the RetentionReport."""

    counts: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    created: tuple[str, ...] = ()
    transactions: int = 0

    def add(self, what: str, rows: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + rows

    def report(self) -> RetentionReport:
        return RetentionReport(
            notifications=self.counts.get("notifications", 0),
            inbox=self.counts.get("inbox", 0),
            deliveries=self.counts.get("deliveries", 0),
            attempts=self.counts.get("attempts", 0),
            user_events=self.counts.get("user_events", 0),
            idempotency_keys=self.counts.get("idempotency_keys", 0),
            partitions_dropped=tuple(self.dropped),
            partitions_created=self.created,
            transactions=self.transactions,
        )


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: int
    end: int


def month_start(year: int, month: int) -> int:
    """The first millisecond of a calendar month, UTC."""
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def month_partition(at: int) -> Partition:
    """The monthly partition that holds `created_at == at`."""
    moment = datetime.fromtimestamp(at / 1000, tz=UTC)
    year, month = moment.year, moment.month
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return Partition(
        f"notifications_{year:04d}_{month:02d}", month_start(year, month), month_start(*following)
    )


def _old(cutoff: int) -> ColumnElement[bool]:
    """Notifications retention may delete: created before the cutoff, and not a scheduled one
    still waiting for its time (its release moves created_at to then)."""
    return (notifications.c.created_at < cutoff) & notifications.c.pending_audience.is_(None)


class RetentionQueries(SqlBase):
    async def retain(self, cutoff: int, batch: int, now: int) -> RetentionReport:
        tally = _Tally()
        tally.created = await self.prepare_partitions(now)
        if self._dialect.name == "postgresql":
            for partition in await self._partitions_before(cutoff):
                try:
                    await self._drop_partition(partition, batch, tally)
                except sqlalchemy.exc.DBAPIError as exc:
                    # Another node's retention dropped it meanwhile.
                    if getattr(exc.orig, "sqlstate", None) != _UNDEFINED_TABLE:
                        raise
        await self._delete_notifications(cutoff, batch, tally)
        digests = (deliveries.c.notification_id.is_(None)) & (deliveries.c.created_at < cutoff)
        await self._delete_deliveries(digests, batch, tally)
        await self._delete_batches(
            user_events,
            (user_events.c.user_id, user_events.c.seq),
            user_events.c.at < cutoff,
            batch,
            tally,
            "user_events",
        )
        await self._delete_batches(
            idempotency_keys,
            (idempotency_keys.c.publisher, idempotency_keys.c.key),
            idempotency_keys.c.created_at < cutoff,
            batch,
            tally,
            "idempotency_keys",
        )
        return tally.report()

    # --- rows -------------------------------------------------------------------------------

    async def _delete_notifications(self, cutoff: int, batch: int, tally: _Tally) -> None:
        """Old notifications a batch at a time: their dependents first, then the rows. Every
        round deletes the ids it read, so the loop ends."""
        while True:
            async with self._read() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(notifications.c.id)
                            .where(_old(cutoff))
                            .order_by(notifications.c.created_at)
                            .limit(min(batch, CHUNK))
                        )
                    ).scalars()
                )
            if not ids:
                return
            await self._delete_dependents(ids, batch, tally)
            async with self._write() as conn:
                tally.transactions += 1
                gone = await conn.execute(
                    delete(notifications).where(notifications.c.id.in_(ids), _old(cutoff))
                )
                tally.add("notifications", gone.rowcount)
                # A router may have planned one of them since its deliveries were deleted.
                await self._sweep(conn, ids, tally)

    async def _delete_dependents(self, ids: Sequence[int], batch: int, tally: _Tally) -> None:
        await self._delete_batches(
            inbox,
            (inbox.c.user_id, inbox.c.seq),
            inbox.c.notification_id.in_(ids),
            batch,
            tally,
            "inbox",
        )
        await self._delete_deliveries(deliveries.c.notification_id.in_(ids), batch, tally)

    async def _sweep(self, conn: AsyncConnection, ids: Sequence[int], tally: _Tally) -> None:
        stragglers = select(deliveries.c.id).where(deliveries.c.notification_id.in_(ids))
        attempts = await conn.execute(
            delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(stragglers))
        )
        tally.add("attempts", attempts.rowcount)
        gone = await conn.execute(delete(deliveries).where(deliveries.c.notification_id.in_(ids)))
        tally.add("deliveries", gone.rowcount)

    async def _delete_deliveries(
        self, where: ColumnElement[bool], batch: int, tally: _Tally
    ) -> None:
        """Deliveries and their attempts, `batch` deliveries per transaction."""
        while True:
            async with self._write() as conn:
                tally.transactions += 1
                picked = select(deliveries.c.id).where(where).order_by(deliveries.c.id).limit(batch)
                attempts = await conn.execute(
                    delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(picked))
                )
                tally.add("attempts", attempts.rowcount)
                gone = await conn.execute(delete(deliveries).where(deliveries.c.id.in_(picked)))
                tally.add("deliveries", gone.rowcount)
            if gone.rowcount < batch:
                return

    async def _delete_batches(
        self,
        target: Table,
        key: tuple[ColumnElement[object], ...],
        where: ColumnElement[bool],
        batch: int,
        tally: _Tally,
        what: str,
    ) -> None:
        """Delete the rows matching `where`, `batch` per transaction, picked by primary key."""
        while True:
            async with self._write() as conn:
                tally.transactions += 1
                picked = select(*key).where(where).limit(batch)
                gone = await conn.execute(delete(target).where(tuple_(*key).in_(picked)))
                tally.add(what, gone.rowcount)
            if gone.rowcount < batch:
                return

    # --- partitions (PostgreSQL) ------------------------------------------------------------

    async def prepare_partitions(self, now: int) -> tuple[str, ...]:
        if self._dialect.name != "postgresql":
            return ()
        async with self._write() as conn:
            return await self._prepare_partitions(conn, now)

    async def _prepare_partitions(self, conn: AsyncConnection, now: int) -> tuple[str, ...]:
        """This month's and next month's partitions. Rows the DEFAULT partition holds for
        such a month (written before it existed) move into it in the same transaction."""
        if self._dialect.name != "postgresql":
            return ()
        this = month_partition(now)
        wanted = (this, month_partition(this.end))
        existing = {partition.name for partition in await _partitions(conn)}
        created = []
        for partition in wanted:
            if partition.name not in existing:
                await _create_partition(conn, partition)
                created.append(partition.name)
        return tuple(created)

    async def _partitions_before(self, cutoff: int) -> list[Partition]:
        async with self._read() as conn:
            found = await _partitions(conn)
        return sorted((p for p in found if p.end <= cutoff), key=lambda p: p.start)

    async def _drop_partition(self, partition: Partition, batch: int, tally: _Tally) -> None:
        """Delete the dependents of a month wholly before the cutoff, then drop it whole. A
        month still holding a scheduled notification waits (its rows go one by one)."""
        rows = table(partition.name, column("id", BigInteger), column("pending_audience"))
        async with self._write() as conn:
            tally.transactions += 1
            pending = await conn.execute(
                select(rows.c.id).where(rows.c.pending_audience.is_not(None)).limit(1)
            )
            if pending.first() is not None:
                return
            # No router plans these any more: their deliveries can be deleted for good.
            await conn.execute(
                update(notifications)
                .where(
                    notifications.c.route_pending == 1,
                    notifications.c.created_at >= partition.start,
                    notifications.c.created_at < partition.end,
                )
                .values(route_pending=0)
            )
        count, last = 0, None
        while True:
            query = select(rows.c.id).order_by(rows.c.id).limit(min(batch, CHUNK))
            if last is not None:
                query = query.where(rows.c.id > last)
            async with self._read() as conn:
                ids = list((await conn.execute(query)).scalars())
            if not ids:
                break
            await self._delete_dependents(ids, batch, tally)
            count, last = count + len(ids), ids[-1]
        if await self._detach_and_drop(partition, tally):
            tally.add("notifications", count)
            tally.dropped.append(partition.name)

    async def _detach_and_drop(self, partition: Partition, tally: _Tally) -> bool:
        try:
            async with self._write() as conn:
                tally.transactions += 1
                # One node drops it; the others find it gone.
                if not await self._dialect.try_lock(conn, f"retention {partition.name}"):
                    return False
                exists = await conn.execute(
                    text("SELECT to_regclass(:name)"), {"name": f'"{partition.name}"'}
                )
                if exists.scalar() is None:
                    return False
                await conn.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
                await conn.execute(
                    text(f'ALTER TABLE {PARENT} DETACH PARTITION "{partition.name}"')
                )
                await conn.execute(text(f'DROP TABLE "{partition.name}"'))
        except sqlalchemy.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            log.warning("retention: %s is busy; it is dropped on the next run", partition.name)
            return False
        return True


async def _partitions(conn: AsyncConnection) -> list[Partition]:
    """The monthly partitions of `notifications` (the DEFAULT one left out)."""
    rows = await conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": PARENT},
    )
    found = []
    for name, bound in rows:
        match = _BOUNDS.search(bound)
        if match is not None:
            found.append(Partition(name, int(match.group(1)), int(match.group(2))))
    return found


async def _create_partition(conn: AsyncConnection, partition: Partition) -> None:
    """Create a month's partition; if the DEFAULT partition holds rows of that month, they
    move first, or PostgreSQL would refuse the new partition."""
    name, start, end = partition.name, partition.start, partition.end
    stray = await conn.execute(
        text(
            "SELECT 1 FROM notifications_default"
            " WHERE created_at >= :start AND created_at < :end LIMIT 1"
        ),
        {"start": start, "end": end},
    )
    if stray.first() is None:
        await conn.execute(
            text(
                f'CREATE TABLE "{name}" PARTITION OF {PARENT} FOR VALUES FROM ({start}) TO ({end})'
            )
        )
        return
    await conn.execute(text(f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS)'))
    move = (
        "WITH moved AS (DELETE FROM notifications_default"
        " WHERE created_at >= :start AND created_at < :end RETURNING *)"
        ' INSERT INTO "{name}" SELECT * FROM moved'
    )
    await conn.execute(text(move.format(name=name)), {"start": start, "end": end})
    await conn.execute(
        text(f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" FOR VALUES FROM ({start}) TO ({end})')
    )


_: type[RetentionStore] = RetentionQueries
