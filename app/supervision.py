"""The node's background loops (bus listener, scheduler), restarted when they crash, with a
record of their crashes that /readyz and /metrics read.

One crash is a hiccup: the loop is back after RESTART_DELAY. A loop that keeps crashing is a
node that no longer does its job (a bus listener that cannot read leaves its streams to the
store's once-a-second catch-up), so the node stops saying it is ready until the loop has run
a while without crashing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import anyio

log = logging.getLogger("herald")

# A background loop that crashes is logged and restarted after this pause, never lost silently.
RESTART_DELAY = 1.0
# This many crashes within CRASH_WINDOW seconds make a loop "crashing": more than a hiccup.
CRASHES_UNREADY = 3
# Crashes older than this are forgiven: a minute without one and the node is ready again.
CRASH_WINDOW = 60.0


class Supervisor:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Per loop, the times of its latest crashes (enough of them to tell "crashing").
        self._recent: dict[str, deque[float]] = {}
        # Per loop, every crash since the node started, for /metrics.
        self.crashes: Counter[str] = Counter()

    async def run(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run `loop` until cancelled, restarting it RESTART_DELAY after it returns or crashes."""
        self._recent.setdefault(name, deque(maxlen=CRASHES_UNREADY))
        self.crashes[name] += 0
        while True:
            try:
                await loop()
            except Exception:
                log.exception("%s crashed; restarting in %.0f s", name, RESTART_DELAY)
                self._recent[name].append(self._clock())
                self.crashes[name] += 1
            await anyio.sleep(RESTART_DELAY)

    def crashing(self) -> list[str]:
        """The loops that crashed CRASHES_UNREADY times within the last CRASH_WINDOW seconds."""
        since = self._clock() - CRASH_WINDOW
        return sorted(
            name
            for name, times in self._recent.items()
            if len(times) == CRASHES_UNREADY and times[0] > since
        )

    def loops(self) -> list[str]:
        return sorted(self._recent)
