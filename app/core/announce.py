"""Announcing committed events on the bus, where failure costs latency and nothing else."""

from __future__ import annotations

import logging
import time

from herald_server.bus import EventBus
from herald_server.errors import BusUnavailable
from herald_server.models import LiveEvent

log = logging.getLogger(__name__)

# While the bus is down every publish fails the same way: say so once per interval, not per event.
WARN_EVERY_SECONDS = 10.0
_next_warning = 0.0


async def announce(bus: EventBus, event: LiveEvent) -> None:
    global _next_warning
    try:
        await bus.publish(event)
    except BusUnavailable as exc:
        now = time.monotonic()
        if now >= _next_warning:
            _next_warning = now + WARN_EVERY_SECONDS
            log.warning("bus unavailable, streams catch up from the store: %s", exc)
