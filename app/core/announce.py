"""Announcing committed events on the bus, where failure costs latency and nothing else."""

from __future__ import annotations

import logging

from app.bus import EventBus
from app.errors import BusUnavailable
from app.models import LiveEvent

log = logging.getLogger(__name__)


async def announce(bus: EventBus, event: LiveEvent) -> None:
    try:
        await bus.publish(event)
    except BusUnavailable as exc:
        log.warning("bus unavailable, streams will catch up from the store: %s", exc)
