"""Releases `send_at` notifications when due, and forgets expired idempotency keys.

Every node runs one; the store hands each due row to exactly one caller (SKIP LOCKED on
PostgreSQL, the single writer on SQLite), so running it everywhere delivers once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from app.core.publishing import Publisher
from app.errors import StoreUnavailable
from app.models import now_ms
from app.store import Store

log = logging.getLogger(__name__)

# Rows released per transaction: short transactions keep row locks brief.
BATCH = 100
# Purging idempotency keys is housekeeping; once a minute is plenty.
PURGE_EVERY_MS = 60_000
# Longest a tick may hold up shutdown.
TICK_LIMIT = 10.0


class Scheduler:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        interval: float,
        idempotency_ttl_seconds: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._interval = interval
        self._idempotency_ttl_ms = idempotency_ttl_seconds * 1000
        self._clock = clock
        self._next_purge = 0

    async def run(self) -> None:
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
        released = await self._store.release_due(now, BATCH)
        for published in released:
            await self._publisher.announce(published)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_MS
            await self._store.purge_idempotency(now - self._idempotency_ttl_ms)
        return len(released)
