"""RedisBus: live events between nodes over one capped Redis Stream; RedisJobQueue: delivery
jobs for the workers on another stream, through a consumer group.

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
import time
from collections.abc import Sequence
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from herald_server import codec
from herald_server.bus import Deliver, EventBus, Job, JobQueue, LagHistogram, RateLimiter, Resync
from herald_server.config import redact
from herald_server.errors import BusUnavailable
from herald_server.models import LiveEvent, now_ms

log = logging.getLogger(__name__)

# XREAD blocks this long per call; the reader's socket timeout must exceed it.
BLOCK_MS = 5000
# Entries taken per XREAD: big enough to drain a broadcast burst in a few round trips.
READ_COUNT = 1000
# While Redis is down, streams catch up from the store this often.
RESYNC_SECONDS = 1.0
# A publish waits at most this long for Redis before the publisher moves on without it.
WRITE_TIMEOUT = 1.0
# The consumer group every delivery worker joins.
GROUP = "workers"
# A take blocks at most this long; the client's socket timeout must exceed it.
MAX_TAKE_WAIT = 5.0
# How often a worker looks for jobs that another worker took and never acked.
RECLAIM_EVERY = 1.0


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
        self.lag = LagHistogram()

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
        self.lag.observe(self.lag_ms / 1000)
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


class RedisJobQueue:
    """Delivery jobs on a Redis Stream read by one consumer group, `workers`.

    XREADGROUP hands each job to one worker; XACK and XDEL forget it once the attempt is
    recorded; XAUTOCLAIM hands a job that a worker took and never acked (it was killed) to the
    next worker that asks, once it has been idle for the visibility timeout. The stream is not
    capped (trimming could drop a job nobody has read); acked jobs are deleted instead.
    """

    def __init__(self, url: str, key: str, visibility: float) -> None:
        self._url = redact(url)
        self._key = key
        self._visibility_ms = int(visibility * 1000)
        self._client = Redis.from_url(
            url,
            protocol=3,
            socket_timeout=MAX_TAKE_WAIT + 5,
            socket_connect_timeout=WRITE_TIMEOUT,
        )
        self._group_ready = False
        self._reclaim_from = "0-0"
        self._next_reclaim = 0.0

    async def put(self, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for delivery_id in delivery_ids:
                    pipe.xadd(self._key, {"d": str(delivery_id)})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"{self._url}: {type(exc).__name__}") from exc

    async def take(self, consumer: str, count: int, wait: float) -> list[Job]:
        try:
            await self._ensure_group()
            jobs = await self._reclaim(consumer, count)
            if len(jobs) < count:
                reply = await self._client.xreadgroup(
                    GROUP,
                    consumer,
                    {self._key: ">"},
                    count=count - len(jobs),
                    # BLOCK 0 would wait forever: a wait under a millisecond does not block.
                    block=_block_ms(wait) if not jobs else None,
                )
                jobs += [_job(entry_id, fields) for entry_id, fields in _entries(reply)]
            return jobs
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                # The stream went away (a Redis restart without persistence): recreate it; the
                # store's deliveries are queued again by the dispatcher.
                self._group_ready = False
            raise BusUnavailable(f"{self._url}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"{self._url}: {type(exc).__name__}") from exc

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the start of the stream: jobs put before any worker existed are read too.
            await self._client.xgroup_create(self._key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _reclaim(self, consumer: str, count: int) -> list[Job]:
        """Jobs idle past the visibility timeout, looked for about once a second: XAUTOCLAIM
        walks the pending list, so it is not worth a round trip per take."""
        now = time.monotonic()
        if now < self._next_reclaim:
            return []
        reply = await self._client.xautoclaim(
            self._key,
            GROUP,
            consumer,
            min_idle_time=self._visibility_ms,
            start_id=self._reclaim_from,
            count=count,
        )
        self._reclaim_from = _text(reply[0])
        if self._reclaim_from == "0-0":
            self._next_reclaim = now + RECLAIM_EVERY
        return [_job(entry_id, fields, reclaimed=True) for entry_id, fields in reply[1] if fields]

    async def ack(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        ids = [job.id for job in jobs]
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xack(self._key, GROUP, *ids)
                pipe.xdel(self._key, *ids)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"{self._url}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _block_ms(wait: float) -> int | None:
    block = int(min(wait, MAX_TAKE_WAIT) * 1000)
    return block if block > 0 else None


def _job(entry_id: bytes | str, fields: dict[bytes, bytes], reclaimed: bool = False) -> Job:
    return Job(_text(entry_id), int(fields[b"d"]), reclaimed)


# One atomic step: refill each bucket from Redis's own clock (the same for every node), and
# take a token from every bucket that has one. Answers each key's wait in ms ('0' where a
# token was taken) as strings (a Lua number would come back truncated to an integer).
TAKE_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local waits = {}
for i, key in ipairs(KEYS) do
  local bucket = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - at) * rate)
  if level < 1 then
    waits[i] = tostring((1 - level) / rate)
  else
    redis.call('HSET', key, 'tokens', tostring(level - 1), 'at', now)
    redis.call('PEXPIRE', key, ARGV[3])
    waits[i] = '0'
  end
end
return waits
"""


class RedisRateLimiter:
    """Token buckets in Redis, one hash per key, so every node applies the same limits."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = redact(url)
        self._prefix = prefix
        self._client = Redis.from_url(
            url, protocol=3, socket_timeout=WRITE_TIMEOUT, socket_connect_timeout=WRITE_TIMEOUT
        )
        self._take = self._client.register_script(TAKE_TOKENS)

    async def take(self, keys: Sequence[str], rate: float, burst: float) -> list[float]:
        # A bucket left alone this long is full again: it may go.
        idle_ms = int(burst / rate * 1000) + 1000
        try:
            waits = await self._take(
                keys=[f"{self._prefix}:{key}" for key in keys], args=[rate, burst, idle_ms]
            )
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"{self._url}: {type(exc).__name__}") from exc
        return [float(_text(wait)) / 1000 for wait in waits]

    async def aclose(self) -> None:
        await self._client.aclose()


# Each class satisfies its Protocol (checked by mypy).
_PROTOCOLS: tuple[type[EventBus], type[JobQueue], type[RateLimiter]] = (
    RedisBus,
    RedisJobQueue,
    RedisRateLimiter,
)
