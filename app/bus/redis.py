"""RedisBus: live events between nodes over one capped Redis Stream.

Every node reads the whole stream with XREAD from where it joined, rather than through a
consumer group: each node needs every event (it alone knows its connections), so a group per
node would only add XACK round trips and a pending list that a dead node leaves behind. The
stream is capped with `MAXLEN ~`, so nothing is kept forever and there is nothing to trim.

Redis is never the source of truth: events carry the store's cursors, a lost or late entry is
recovered from the store by the hub, and while Redis is unreachable `run` asks the hub to
resync from the store every second.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import codec
from app.bus import Deliver, EventBus, Resync
from app.config import redact
from app.errors import BusUnavailable
from app.models import LiveEvent, now_ms

log = logging.getLogger(__name__)

# XREAD blocks this long per call; the reader's socket timeout must exceed it.
BLOCK_MS = 5000
# Entries taken per XREAD: big enough to drain a broadcast burst in a few round trips.
READ_COUNT = 1000
# While Redis is down, streams catch up from the store this often.
RESYNC_SECONDS = 1.0
# A publish waits at most this long for Redis before the publisher moves on without it.
WRITE_TIMEOUT = 1.0


class RedisBus:
    def __init__(self, url: str, key: str, maxlen: int) -> None:
        self._url = redact(url)
        self._key = key
        self._maxlen = maxlen
        self._writer = Redis.from_url(
            url, protocol=3, socket_timeout=WRITE_TIMEOUT, socket_connect_timeout=WRITE_TIMEOUT
        )
        self._reader = Redis.from_url(
            url,
            protocol=3,
            socket_timeout=BLOCK_MS / 1000 + 5,
            socket_connect_timeout=WRITE_TIMEOUT,
        )
        self.events_in = 0
        self.events_out = 0
        self.lag_ms = 0

    async def publish(self, event: LiveEvent) -> None:
        fields: dict[str, str | bytes] = {
            "k": event.kind,
            "d": event.data,
            "t": codec.dumps(event.targets),
            "at": str(now_ms()),
        }
        try:
            await self._writer.xadd(self._key, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"{self._url}: {type(exc).__name__}") from exc
        self.events_out += 1

    async def run(self, deliver: Deliver, resync: Resync) -> None:
        last: str | None = None
        down = False
        while True:
            try:
                if last is None:
                    last = await self._tail()
                reply = await self._reader.xread(
                    {self._key: last}, count=READ_COUNT, block=BLOCK_MS
                )
            except (RedisError, OSError) as exc:
                if not down:
                    log.warning("bus %s unreachable (%s); streams read the store", self._url, exc)
                    down = True
                resync()
                await anyio.sleep(RESYNC_SECONDS)
                continue
            if down:
                log.warning("bus %s is back", self._url)
                down = False
                resync()
            for entry_id, fields in _entries(reply):
                last = entry_id
                deliver(self._event(fields))

    async def _tail(self) -> str:
        """The id of the newest entry, so this node reads only what comes after it."""
        newest = await self._reader.xrevrange(self._key, count=1)
        return _text(newest[0][0] or b"0-0") if newest else "0-0"

    def _event(self, fields: dict[bytes, bytes]) -> LiveEvent:
        self.events_in += 1
        self.lag_ms = max(0, now_ms() - int(fields[b"at"]))
        targets = tuple((user, seq) for user, seq in codec.loads(fields[b"t"]))
        return LiveEvent(_text(fields[b"k"]), _text(fields[b"d"]), targets)

    async def ping(self) -> None:
        try:
            await self._writer.ping()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"{self._url}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._writer.aclose()
        await self._reader.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """Flatten XREAD's RESP3 reply, `{key: [[(id, fields), ...]]}`, to (id, fields) pairs."""
    found = []
    for value in (reply or {}).values():
        batches = value if value and isinstance(value[0], list) else [value]
        for batch in batches:
            for entry_id, fields in batch:
                found.append((_text(entry_id), fields))
    return found


_: type[EventBus] = RedisBus
