"""MemoryBus: the embedded default, for one process. Delivery is a direct call, so nothing
is queued here: the per-connection buffers in the hub are the only bound that matters."""

from __future__ import annotations

import asyncio

from app.bus import Deliver, EventBus, Resync
from app.models import LiveEvent


class MemoryBus:
    def __init__(self) -> None:
        self._listeners: list[Deliver] = []
        self.events_in = 0
        self.events_out = 0
        self.lag_ms = 0

    async def publish(self, event: LiveEvent) -> None:
        self.events_out += 1
        for deliver in self._listeners:
            self.events_in += 1
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


_: type[EventBus] = MemoryBus
