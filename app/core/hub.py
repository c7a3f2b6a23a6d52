"""The per-node hub: which local connection wants which user's events, and lossless resume.

A stream registers first, then reads the store, then goes live; it delivers each seq once, in
order. Live events arrive at most once and possibly out of order (two publishers commit seq 5
and 6, and 6 reaches the bus first). Since per-user sequence order is commit order (see
`herald_server.store`), a live event with seq N proves every seq below N is committed: on a gap the
stream reads the store up to N instead of waiting, so it never skips and never stalls.

Everything per connection is bounded: a connection whose buffer fills is not disconnected but
marked stale, drops its buffer and catches up from the store on its next turn (issue 7's
slow-consumer policy), so a slow reader costs the publisher nothing.

The per-delivery path (`offer`, the wait in `_live`) uses asyncio's Event and timeout rather
than anyio's: anyio looks up the running backend on every Event and cancel scope it makes,
which at 10,000 streams was a fifth of the node's CPU per delivered event.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from herald_server import codec
from herald_server.core.render import HEARTBEAT, Frame, counts_frame, stored_frame
from herald_server.core.revocation import STREAMS_REVOKED
from herald_server.errors import TooManyStreams
from herald_server.models import LiveEvent, iso, now_ms
from herald_server.store import Store

# Users known to exist in the store, remembered to save a write per connection.
KNOWN_USERS_CAP = 100_000


class Subscription:
    """One open stream's mailbox: filled by `Hub.deliver`, drained by `Hub.stream`."""

    __slots__ = ("buffer", "capacity", "revoked", "stale", "user", "wake")

    def __init__(self, user: str, capacity: int) -> None:
        self.user = user
        self.capacity = capacity
        self.buffer: deque[tuple[int, str, str]] = deque()
        self.stale = False
        # Set when the user's stream tokens were revoked: the stream ends.
        self.revoked = False
        self.wake = asyncio.Event()

    def offer(self, seq: int, kind: str, data: str) -> None:
        if self.stale:
            return
        if len(self.buffer) >= self.capacity:
            self.stale = True
            self.buffer.clear()
        else:
            self.buffer.append((seq, kind, data))
        self.wake.set()


@dataclass(frozen=True, slots=True)
class StreamLimits:
    replay_limit: int = 1000
    buffer: int = 256
    # Seconds before a token's expiry at which the stream sends `token_expiring`.
    token_notice: int = 30
    # Streams one user may hold on this node; more are refused.
    per_user: int = 20


# How long a refused stream is told to wait before trying again.
STREAMS_RETRY_AFTER = 5


class Admission:
    """One of a user's stream slots on this node: taken when the request is checked, before
    the response starts, so a burst of opens cannot all pass the check; given back when the
    stream ends, or when it never starts at all (the object is dropped unused)."""

    __slots__ = ("__weakref__", "_finalizer", "user")

    def __init__(self, user: str, give_back: Callable[[], None]) -> None:
        self.user = user
        self._finalizer = weakref.finalize(self, give_back)

    def release(self) -> None:
        """Give the slot back; once only, however often it is called."""
        self._finalizer()


class Hub:
    def __init__(
        self,
        store: Store,
        limits: StreamLimits = StreamLimits(),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._limits = limits
        self._clock = clock
        self._by_user: dict[str, set[Subscription]] = {}
        self._slots: dict[str, int] = {}
        self._known: set[str] = set()
        # Set once the node begins to shut down (see `close`).
        self.shutting_down = anyio.Event()
        # Plain counters, read by /metrics: the core stays free of any metrics library.
        self.connections = 0
        self.frames_out = 0
        self.replays = 0
        self.resets = 0

    def deliver(self, event: LiveEvent) -> None:
        """Queue a live event for the matching local streams: O(targets), never blocks."""
        by_user = self._by_user
        revoked = event.kind == STREAMS_REVOKED
        for user, seq in event.targets:
            subscriptions = by_user.get(user)
            if subscriptions:
                for subscription in subscriptions:
                    if revoked:
                        subscription.revoked = True
                        subscription.wake.set()
                    else:
                        subscription.offer(seq, event.kind, event.data)

    def resync(self) -> None:
        """Every local stream catches up from the store: the bus may have dropped events."""
        for subscriptions in self._by_user.values():
            for subscription in subscriptions:
                subscription.stale = True
                subscription.buffer.clear()
                subscription.wake.set()

    @property
    def users_connected(self) -> int:
        return len(self._by_user)

    def streams_of(self, user: str) -> int:
        return len(self._by_user.get(user, ()))

    @property
    def closed(self) -> bool:
        return self.shutting_down.is_set()

    def close(self) -> None:
        """End every stream on this node; clients reconnect and resume elsewhere."""
        self.shutting_down.set()
        for subscriptions in self._by_user.values():
            for subscription in subscriptions:
                subscription.wake.set()

    def admit(self, user: str) -> Admission:
        """A stream slot for `user`, or TooManyStreams when they hold every one allowed."""
        held = self._slots.get(user, 0)
        if held >= self._limits.per_user:
            raise TooManyStreams(
                f"{held} streams open for this user on this node; at most {self._limits.per_user}",
                retry_after=STREAMS_RETRY_AFTER,
            )
        self._slots[user] = held + 1
        return Admission(user, functools.partial(self._give_back, user))

    def _give_back(self, user: str) -> None:
        left = self._slots.get(user, 1) - 1
        if left > 0:
            self._slots[user] = left
        else:
            self._slots.pop(user, None)

    async def stream(
        self,
        user: str,
        cursor: int | None,
        expires_at: int | None = None,
        admission: Admission | None = None,
        heartbeat: float | None = None,
    ) -> AsyncGenerator[Frame, None]:
        """The user's events after `cursor` (or from now), then live ones, until the token
        expires or the hub closes. `admission` is the slot taken for it (taken here if none
        was). With `heartbeat`, `HEARTBEAT` comes after that many idle seconds, so a transport
        can keep proxies from closing a quiet connection without a timer of its own."""
        admission = admission or self.admit(user)
        subscription = self._register(user)
        try:
            await self._ensure_user(user)
            frames, last = await self._start(user, cursor)
            for frame in frames:
                self.frames_out += 1
                yield frame
            async for frame in self._live(subscription, last, expires_at, heartbeat):
                if frame is not HEARTBEAT:
                    self.frames_out += 1
                yield frame
        finally:
            self._unregister(subscription)
            admission.release()

    def _register(self, user: str) -> Subscription:
        subscription = Subscription(user, self._limits.buffer)
        self._by_user.setdefault(user, set()).add(subscription)
        self.connections += 1
        return subscription

    def _unregister(self, subscription: Subscription) -> None:
        self.connections -= 1
        subscriptions = self._by_user.get(subscription.user)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._by_user[subscription.user]

    async def _ensure_user(self, user: str) -> None:
        if user in self._known:
            return
        await self._store.ensure_user(user, self._clock())
        if len(self._known) >= KNOWN_USERS_CAP:
            self._known.clear()
        self._known.add(user)

    async def _start(self, user: str, cursor: int | None) -> tuple[list[Frame], int]:
        if cursor is None:
            # From now: the counts' own head is "now", read in the same snapshot as them.
            counts = await self._store.counts(user, self._clock())
            return [counts_frame(counts)], counts.head
        if cursor > await self._store.head(user):
            # A cursor this store never issued (another database, a forged id): start over.
            return await self._reset(user)
        frames, last = await self._catch_up(user, cursor, committed=0)
        if frames and frames[0].event == "reset":
            return frames, last
        frames.append(counts_frame(await self._store.counts(user, self._clock())))
        return frames, last

    async def _catch_up(self, user: str, last: int, committed: int) -> tuple[list[Frame], int]:
        """Frames for every stored event after `last`; every seq up to `committed` is known to
        be committed already, so after this read nothing at or below it can still arrive."""
        limit = self._limits.replay_limit
        self.replays += 1
        events = await self._store.events_since(user, last, limit + 1, self._clock())
        if len(events) > limit:
            return await self._reset(user)
        frames = [stored_frame(event) for event in events]
        return frames, max(last, committed, *(event.seq for event in events))

    async def _reset(self, user: str) -> tuple[list[Frame], int]:
        """Too much was missed to replay: tell the client to refetch, from the head on."""
        self.resets += 1
        counts = await self._store.counts(user, self._clock())
        head = str(counts.head)
        reset = Frame("reset", codec.dumps_str({"cursor": head}), head)
        return [reset, counts_frame(counts)], counts.head

    async def _live(
        self,
        subscription: Subscription,
        last: int,
        expires_at: int | None,
        heartbeat: float | None,
    ) -> AsyncIterator[Frame]:
        notice_at = None if expires_at is None else expires_at - self._limits.token_notice * 1000
        while not self.closed:
            now = self._clock()
            if expires_at is not None and now >= expires_at:
                return
            if subscription.revoked:
                yield Frame(STREAMS_REVOKED, "{}")
                return
            if notice_at is not None and now >= notice_at:
                notice_at = None
                yield _token_expiring(expires_at)
            if subscription.stale:
                subscription.stale = False
                frames, last = await self._catch_up(subscription.user, last, committed=0)
                for frame in frames:
                    yield frame
            elif subscription.buffer:
                seq, kind, data = subscription.buffer.popleft()
                if seq == last + 1:
                    last = seq
                    yield Frame(kind, data, str(seq))
                elif seq > last:
                    frames, last = await self._catch_up(subscription.user, last, committed=seq)
                    for frame in frames:
                        yield frame
            else:
                subscription.wake.clear()
                deadline = notice_at if notice_at is not None else expires_at
                waits = [] if deadline is None else [(deadline - now) / 1000]
                if heartbeat is not None:
                    waits.append(heartbeat)
                try:
                    async with asyncio.timeout(min(waits) if waits else None):
                        await subscription.wake.wait()
                except TimeoutError:
                    if heartbeat is not None:
                        yield HEARTBEAT


def _token_expiring(expires_at: int | None) -> Frame:
    return Frame("token_expiring", codec.dumps_str({"expires_at": iso(expires_at)}))
