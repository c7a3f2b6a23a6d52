"""The embedded default, for one process: MemoryBus and MemoryJobQueue.

MemoryBus delivers by a direct call, so nothing is queued there: the per-connection buffers in
the hub are the only bound that matters."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace

import anyio

from herald_server.bus import Deliver, EventBus, Job, JobQueue, LagHistogram, RateLimiter, Resync
from herald_server.models import LiveEvent


class MemoryBus:
    def __init__(self) -> None:
        self._listeners: list[Deliver] = []
        self.events_in = 0
        self.events_out = 0
        self.lag_ms = 0
        # A direct call: every event arrives with no lag, counted so the histogram's count
        # matches events_in as on Redis.
        self.lag = LagHistogram()

    async def publish(self, event: LiveEvent) -> None:
        self.events_out += 1
        for deliver in self._listeners:
            self.events_in += 1
            self.lag.observe(0.0)
            deliver(event)

    async def run(self, deliver: Deliver, resync: Resync) -> None:
        """In one process nothing is ever missed, so `resync` is never needed."""
        self._listeners.append(deliver)
        try:
            await asyncio.Event().wait()
        finally:
            self._listeners.remove(deliver)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._listeners.clear()


class MemoryJobQueue:
    """The embedded default's job queue: the JobQueue contract inside one process, visibility
    timeout included, so a consumer task that dies mid-job loses nothing here either. Jobs
    live in memory; after a restart the store's deliveries are queued again by the dispatcher.
    """

    def __init__(self, visibility: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._visibility = visibility
        self._clock = clock
        self._ready: deque[Job] = deque()
        self._taken: dict[str, tuple[float, Job]] = {}
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()

    async def put(self, delivery_ids: Sequence[int]) -> None:
        for delivery_id in delivery_ids:
            self._ready.append(Job(str(next(self._ids)), delivery_id))
        if delivery_ids:
            self._arrived.set()

    async def take(self, consumer: str, count: int, wait: float) -> list[Job]:
        deadline = self._clock() + wait
        while True:
            now = self._clock()
            jobs = self._reclaim(now, count)
            while self._ready and len(jobs) < count:
                jobs.append(self._ready.popleft())
            for job in jobs:
                self._taken[job.id] = (now, job)
            if jobs or now >= deadline:
                return jobs
            self._arrived.clear()
            with anyio.move_on_after(self._until_next_change(now, deadline)):
                await self._arrived.wait()

    def _reclaim(self, now: float, count: int) -> list[Job]:
        expired = [
            job for taken_at, job in self._taken.values() if taken_at + self._visibility <= now
        ]
        return [replace(job, reclaimed=True) for job in expired[:count]]

    def _until_next_change(self, now: float, deadline: float) -> float:
        """Until a put wakes us, a held job's visibility runs out, or the wait is over."""
        expiries = [taken_at + self._visibility for taken_at, _ in self._taken.values()]
        return max(0.0, min([deadline, *expiries]) - now)

    async def ack(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self._taken.pop(job.id, None)

    async def aclose(self) -> None:
        self._ready.clear()
        self._taken.clear()


# Buckets kept at most: the least recently used go first (a full bucket is a forgotten one).
MAX_BUCKETS = 100_000


class MemoryRateLimiter:
    """Token buckets in this process, for the embedded default (one node)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, keys: Sequence[str], rate: float, burst: float) -> list[float]:
        now = self._clock()
        waits = []
        for key in keys:
            level = self._level(key, now, rate, burst)
            if level < 1:
                waits.append((1 - level) / rate)
            else:
                self._spend(key, level, now)
                waits.append(0.0)
        return waits

    def _spend(self, key: str, level: float, now: float) -> None:
        self._buckets[key] = (level - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)

    def _level(self, key: str, now: float, rate: float, burst: float) -> float:
        tokens, at = self._buckets.get(key, (burst, now))
        return min(burst, tokens + (now - at) * rate)

    async def aclose(self) -> None:
        self._buckets.clear()


# Each class satisfies its Protocol (checked by mypy).
_PROTOCOLS: tuple[type[EventBus], type[JobQueue], type[RateLimiter]] = (
    MemoryBus,
    MemoryJobQueue,
    MemoryRateLimiter,
)
