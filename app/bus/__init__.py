"""The bus carries live events between nodes, behind one Protocol, chosen by `REDIS_URL`.

It is at-most-once by contract: the store, not the bus, makes streams lossless. A stream that
sees a gap in its user's sequence (or nothing at all while the bus is down) catches up from the
store, so a lost bus message costs latency, never a notification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from app.config import ConfigError, redact
from app.models import LiveEvent

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


@runtime_checkable
class BusStats(Protocol):
    """Counters a bus may keep for /metrics."""

    events_in: int
    events_out: int
    lag_ms: int


def open_bus(url: str | None, prefix: str = "herald", maxlen: int = 100_000) -> EventBus:
    """Build the bus named by REDIS_URL (unset: in-process); the one place its scheme is read."""
    scheme = "memory" if url is None else urlsplit(url).scheme
    if scheme == "memory":
        from app.bus.memory import MemoryBus

        return MemoryBus()
    if url is not None and scheme in ("redis", "rediss"):
        from app.bus.redis import RedisBus

        return RedisBus(url, f"{prefix}:live", maxlen)
    raise ConfigError(f"REDIS_URL: unsupported scheme {scheme!r} in {redact(url or '')}")
