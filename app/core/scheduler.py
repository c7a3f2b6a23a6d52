"""Releases `send_at` notifications when due, forgets expired idempotency keys, and (with
HERALD_RETENTION_DAYS) deletes old notifications hourly.

Every node runs one; the store hands each due row to exactly one caller (SKIP LOCKED on
PostgreSQL, the single writer on SQLite), so running it everywhere delivers once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from herald_server.core.preferences import wants_inbox
from herald_server.core.publishing import Publisher
from herald_server.errors import StoreUnavailable
from herald_server.models import now_ms
from herald_server.store import RetentionReport, RetentionStore, Store

log = logging.getLogger(__name__)

# Rows released per transaction: short transactions keep row locks brief.
BATCH = 100
# Purging idempotency keys is housekeeping; once a minute is plenty.
PURGE_EVERY_MS = 60_000
# Longest a tick may hold up shutdown.
TICK_LIMIT = 10.0
# Retention runs this often on every node (each batch is its own short transaction).
RETENTION_EVERY_SECONDS = 3600.0
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Retention:
    """HERALD_RETENTION_DAYS and HERALD_RETENTION_BATCH, with the store that applies them."""

    store: RetentionStore
    days: int
    batch: int

    async def run(self, now: int) -> RetentionReport:
        """Delete what is older than `days` before `now`; also prepares the coming month's
        partitions on PostgreSQL."""
        return await self.store.retain(now - self.days * DAY_MS, self.batch, now)


class Scheduler:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        interval: float,
        idempotency_ttl_seconds: int,
        clock: Callable[[], int] = now_ms,
        retention: Retention | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._interval = interval
        self._idempotency_ttl_ms = idempotency_ttl_seconds * 1000
        self._clock = clock
        self._next_purge = 0
        self._retention = retention

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            if self._retention is not None:
                tasks.start_soon(self._retain_hourly, self._retention)
            await self._release_forever()

    async def _retain_hourly(self, retention: Retention) -> None:
        while True:
            await self.retain(retention)
            await anyio.sleep(RETENTION_EVERY_SECONDS)

    async def retain(self, retention: Retention) -> RetentionReport | None:
        """One retention run; None if the store was unavailable (the next run catches up)."""
        try:
            report = await retention.run(self._clock())
        except StoreUnavailable as exc:
            log.warning("retention: store unavailable (%s); next run in an hour", exc)
            return None
        log.info("retention: %s", report)
        return report

    async def _release_forever(self) -> None:
        while True:
            released = 0
            try:
                # A tick is one short transaction; cancelling it mid-query (at shutdown) would
                # leave the driver's connection half-closed, so it finishes first.
                with anyio.CancelScope(shield=True, deadline=anyio.current_time() + TICK_LIMIT):
                    released = await self.tick()
            except StoreUnavailable as exc:
                log.warning("scheduler: store unavailable (%s); retrying", exc)
            if released < BATCH:
                await anyio.sleep(self._interval)

    async def tick(self) -> int:
        """Release what is due now; return how many notifications went out."""
        now = self._clock()
        released = await self._store.release_due(now, BATCH, wants_inbox)
        for published in released:
            await self._publisher.announce(published)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_MS
            await self._store.purge_idempotency(now - self._idempotency_ttl_ms)
        return len(released)
