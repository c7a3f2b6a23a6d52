"""The bus carries live events between nodes, behind one Protocol, chosen by `REDIS_URL`.

It is at-most-once by contract: the store, not the bus, makes streams lossless. A stream that
sees a gap in its user's sequence (or nothing at all while the bus is down) catches up from the
store, so a lost bus message costs latency, never a notification.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from herald_server.config import ConfigError, redact
from herald_server.models import LiveEvent

Deliver = Callable[[LiveEvent], None]
Resync = Callable[[], None]


class EventBus(Protocol):
    async def publish(self, event: LiveEvent) -> None:
        """Hand the event to every node's `run` callback, at most once, in no promised order.

        Raises BusUnavailable when the event could not be handed over; the caller has already
        committed it to the store, so it logs and carries on.
        """
        ...

    async def run(self, deliver: Deliver, resync: Resync) -> None:
        """Call `deliver` for each event published by any node, until cancelled.

        Whenever events may have been missed (the bus was unreachable, or came back), call
        `resync`, and keep calling it about once a second while the bus stays down, so streams
        catch up from the store. Neither callback may block.
        """
        ...

    async def ping(self) -> None:
        """Raise BusUnavailable unless the bus answers now."""
        ...

    async def aclose(self) -> None: ...


# Upper bounds of the bus lag histogram's buckets, in seconds: a healthy bus hands an event over
# in milliseconds, and past a few seconds streams are catching up from the store anyway.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LagHistogram:
    """Publish-to-receipt delays, counted per bucket with plain integers: observing one is a
    list index on the receive path, and /metrics turns the counts into a histogram."""

    def __init__(self) -> None:
        # One count per bucket of LAG_BUCKETS, then one for everything slower (+Inf).
        self.counts = [0] * (len(LAG_BUCKETS) + 1)
        self.total_seconds = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LAG_BUCKETS, seconds)] += 1
        self.total_seconds += seconds


@runtime_checkable
class BusStats(Protocol):
    """Counters a bus may keep for /metrics."""

    events_in: int
    events_out: int
    # The latest event's delay (the admin page's figure), and all of them (/metrics).
    lag_ms: int
    lag: LagHistogram


@dataclass(frozen=True, slots=True)
class Job:
    """ "Attempt delivery N now". `reclaimed` is set when the job comes from a consumer that
    held it past the visibility timeout without acking (it died, most likely)."""

    id: str
    delivery_id: int
    reclaimed: bool = False


class JobQueue(Protocol):
    """Delivery jobs between processes: at-least-once, with a visibility timeout.

    A job taken and not acked within the visibility timeout is handed to the next consumer
    that asks, so a worker that dies loses nothing. Jobs carry only a delivery id: the store
    holds the delivery's state, which makes a job handed out twice harmless.
    """

    async def put(self, delivery_ids: Sequence[int]) -> None:
        """Queue one job per id. Raises BusUnavailable; the store still has the deliveries,
        and the dispatcher queues them again later."""
        ...

    async def take(self, consumer: str, count: int, wait: float) -> list[Job]:
        """Up to `count` jobs for `consumer`: first any held too long by another consumer,
        then new ones, waiting at most `wait` seconds for one. Raises BusUnavailable."""
        ...

    async def ack(self, jobs: Sequence[Job]) -> None:
        """Forget finished jobs. Raises BusUnavailable (the jobs come back later; harmless)."""
        ...

    async def aclose(self) -> None: ...


class RateLimiter(Protocol):
    """Token buckets shared by every node that uses the same backend: one per key, holding at
    most `burst` tokens and refilled at `rate` per second."""

    async def take(self, keys: Sequence[str], rate: float, burst: float) -> list[float]:
        """Take one token from each key's bucket that holds one, independently of the others:
        for each key, 0.0 when taken, else the seconds until its bucket holds one again (and
        nothing was taken from it). One empty bucket never stops the others from being drawn
        on. Raises BusUnavailable when the backend cannot answer."""
        ...

    async def aclose(self) -> None: ...


def open_limiter(url: str | None, prefix: str) -> RateLimiter:
    """The rate limiter named by REDIS_URL: in-process without it, shared through Redis with
    it, so the same limits hold whichever node a request reaches."""
    scheme = "memory" if url is None else urlsplit(url).scheme
    if scheme == "memory":
        from herald_server.bus.memory import MemoryRateLimiter

        return MemoryRateLimiter()
    if url is not None and scheme in ("redis", "rediss"):
        from herald_server.bus.redis import RedisRateLimiter

        return RedisRateLimiter(url, f"{prefix}:rate")
    raise ConfigError(f"REDIS_URL: unsupported scheme {scheme!r} in {redact(url or '')}")


def open_queue(url: str | None, prefix: str, visibility: float) -> JobQueue:
    """The job queue named by REDIS_URL (unset: in-process), beside the bus of the same URL."""
    scheme = "memory" if url is None else urlsplit(url).scheme
    if scheme == "memory":
        from herald_server.bus.memory import MemoryJobQueue

        return MemoryJobQueue(visibility)
    if url is not None and scheme in ("redis", "rediss"):
        from herald_server.bus.redis import RedisJobQueue

        return RedisJobQueue(url, f"{prefix}:jobs", visibility)
    raise ConfigError(f"REDIS_URL: unsupported scheme {scheme!r} in {redact(url or '')}")


def open_bus(url: str | None, prefix: str = "herald", maxlen: int = 100_000) -> EventBus:
    """Build the bus named by REDIS_URL (unset: in-process); the one place its scheme is read."""
    scheme = "memory" if url is None else urlsplit(url).scheme
    if scheme == "memory":
        from herald_server.bus.memory import MemoryBus

        return MemoryBus()
    if url is not None and scheme in ("redis", "rediss"):
        from herald_server.bus.redis import RedisBus

        return RedisBus(url, f"{prefix}:live", maxlen)
    raise ConfigError(f"REDIS_URL: unsupported scheme {scheme!r} in {redact(url or '')}")
