"""The hub (app/core/hub.py) against a real store on both dialects, driven by hand.

Live events are fed through `Hub.deliver` exactly as the bus listener would, built from what
the store returned; each stream is read one frame at a time under a deadline. A live event
carrying marker data (instead of the rendered notification) shows whether a frame came from
the live path or was re-read from the store.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import pytest

from herald_server import codec
from herald_server.core.hub import Hub, StreamLimits
from herald_server.core.render import HEARTBEAT, Frame, published_event, state_event
from herald_server.errors import TooManyStreams
from herald_server.models import Draft, Everyone, LiveEvent, Published, Recipients, iso, now_ms
from herald_server.store import Store

pytestmark = pytest.mark.anyio


class Stream:
    def __init__(self, frames: AsyncGenerator[Frame, None]) -> None:
        self._frames = frames

    async def next(self, timeout: float = 5) -> Frame:
        with anyio.fail_after(timeout):
            return await anext(self._frames)

    async def ended(self, timeout: float = 5) -> bool:
        with anyio.fail_after(timeout):
            try:
                await anext(self._frames)
            except StopAsyncIteration:
                return True
        return False


@asynccontextmanager
async def opened(
    hub: Hub, user: str, cursor: int | None, expires_at: int | None = None
) -> AsyncIterator[Stream]:
    frames = hub.stream(user, cursor, expires_at)
    async with aclosing(frames):
        yield Stream(frames)


async def send(store: Store, *users: str, title: str = "hello") -> Published:
    draft = Draft("default", title, "", {}, "normal", "billing-service")
    return await store.publish(draft, Recipients(users), None, now_ms())


def marker(published: Published) -> LiveEvent:
    """A live event for `published` whose data says it came over the live path."""
    data = codec.dumps_str({"live": published.notification_id})
    return LiveEvent("notification", data, published.targets)


def data(frame: Frame) -> Any:
    return codec.loads(frame.data)


def counts(frame: Frame) -> tuple[int, int]:
    assert frame.event == "unread_count"
    body = data(frame)
    return body["unread_count"], body["unseen_count"]


async def expect_live(hub: Hub, stream: Stream, published: Published) -> None:
    """Deliver `published` live and check it is the very next frame, as delivered: nothing
    stale or duplicated sits before it."""
    hub.deliver(marker(published))
    frame = await stream.next()
    expected = ("notification", str(published.targets[0][1]))
    assert (frame.event, frame.id) == expected, f"expected the live event next, got {frame}"
    assert data(frame) == {"live": published.notification_id}


async def test_a_stream_without_cursor_starts_at_head(store: Store) -> None:
    for _ in range(3):
        await send(store, "alice")
    hub = Hub(store)

    async with opened(hub, "alice", None) as stream:
        assert counts(await stream.next()) == (3, 3)
        await expect_live(hub, stream, await send(store, "alice"))


async def test_a_stream_with_a_cursor_replays_what_was_missed_then_goes_live(
    store: Store,
) -> None:
    published = [await send(store, "alice", title=f"n{n}") for n in range(1, 4)]
    await store.change("alice", published[0].notification_id, "read", now_ms())  # seq 4
    hub = Hub(store)

    async with opened(hub, "alice", 1) as stream:
        replayed = [await stream.next() for _ in range(3)]
        assert [(f.event, f.id) for f in replayed] == [
            ("notification", "2"),
            ("notification", "3"),
            ("read", "4"),
        ]
        assert [data(f)["title"] for f in replayed[:2]] == ["n2", "n3"]
        assert counts(await stream.next()) == (2, 2)
        await expect_live(hub, stream, await send(store, "alice"))


async def test_an_idle_stream_yields_a_heartbeat_and_events_still_follow(store: Store) -> None:
    hub = Hub(store)
    frames = hub.stream("alice", None, heartbeat=0.05)

    async with aclosing(frames):
        stream = Stream(frames)
        await stream.next()
        assert await stream.next(timeout=1) is HEARTBEAT
        assert await stream.next(timeout=1) is HEARTBEAT
        await expect_live(hub, stream, await send(store, "alice"))
    assert hub.frames_out == 2


async def test_without_a_heartbeat_an_idle_stream_yields_nothing(store: Store) -> None:
    hub = Hub(store)

    async with opened(hub, "alice", None) as stream:
        await stream.next()
        with pytest.raises(TimeoutError):
            await stream.next(timeout=0.2)


async def test_live_events_in_order_are_delivered_as_published(store: Store) -> None:
    hub = Hub(store)

    async with opened(hub, "alice", None) as stream:
        await stream.next()
        first = await send(store, "alice", title="first")
        hub.deliver(published_event(first))
        frame = await stream.next()
        assert (frame.event, frame.id) == ("notification", "1")
        assert frame.data == published_event(first).data

        found, read = await store.change("alice", first.notification_id, "read", now_ms())
        assert found
        assert read is not None
        hub.deliver(state_event("alice", read))
        frame = await stream.next()
        assert (frame.event, frame.id) == ("read", "2")
        assert data(frame)["id"] == str(first.notification_id)
        assert data(frame)["unread_count"] == 0

        for _ in range(3):
            await expect_live(hub, stream, await send(store, "alice"))


async def test_an_out_of_order_live_event_fills_the_gap_from_the_store(store: Store) -> None:
    hub = Hub(store)

    async with opened(hub, "alice", None) as stream:
        await stream.next()
        one = await send(store, "alice", title="one")
        two = await send(store, "alice", title="two")
        hub.deliver(marker(two))
        hub.deliver(marker(one))

        frames = [await stream.next(), await stream.next()]

        assert [f.id for f in frames] == ["1", "2"]
        assert [data(f)["title"] for f in frames] == ["one", "two"]
        await expect_live(hub, stream, await send(store, "alice"))


async def test_duplicate_live_events_are_dropped(store: Store) -> None:
    hub = Hub(store)

    async with opened(hub, "alice", None) as stream:
        await stream.next()
        one = await send(store, "alice")
        await expect_live(hub, stream, one)
        hub.deliver(marker(one))
        hub.deliver(marker(one))
        await expect_live(hub, stream, await send(store, "alice"))


async def test_a_live_event_only_reaches_the_streams_of_its_targets(store: Store) -> None:
    hub = Hub(store)

    async with opened(hub, "alice", None) as alice, opened(hub, "bob", None) as bob:
        await alice.next()
        await bob.next()
        await send(store, "bob")
        both = await send(store, "alice", "bob")
        assert dict(both.targets) == {"alice": 1, "bob": 2}

        hub.deliver(published_event(both))

        assert (await alice.next()).id == "1"
        frames = [await bob.next(), await bob.next()]
        assert [f.id for f in frames] == ["1", "2"]
        await expect_live(hub, alice, await send(store, "alice"))


async def test_an_overflowing_buffer_makes_the_stream_catch_up_from_the_store(
    store: Store,
) -> None:
    hub = Hub(store, StreamLimits(buffer=2))

    async with opened(hub, "alice", None) as stream:
        await stream.next()
        published = [await send(store, "alice", title=f"n{n}") for n in range(1, 9)]
        for one in published:
            hub.deliver(marker(one))

        frames = [await stream.next() for _ in published]

        assert [f.id for f in frames] == [str(n) for n in range(1, 9)]
        # Re-read from the store, not the live markers: the buffer was dropped.
        assert [data(f)["title"] for f in frames] == [f"n{n}" for n in range(1, 9)]
        await expect_live(hub, stream, await send(store, "alice"))


async def test_an_overflow_beyond_the_replay_limit_resets_the_live_stream(store: Store) -> None:
    hub = Hub(store, StreamLimits(buffer=2, replay_limit=3))

    async with opened(hub, "alice", None) as stream:
        await stream.next()
        for _ in range(6):
            hub.deliver(marker(await send(store, "alice")))

        reset = await stream.next()

        assert (reset.event, reset.id) == ("reset", "6")
        assert data(reset) == {"cursor": "6"}
        assert counts(await stream.next()) == (6, 6)
        await expect_live(hub, stream, await send(store, "alice"))


async def test_more_missed_than_the_replay_limit_gives_reset_then_unread_count(
    store: Store,
) -> None:
    for _ in range(8):
        await send(store, "alice")
    hub = Hub(store, StreamLimits(replay_limit=5))

    async with opened(hub, "alice", 2) as stream:
        reset = await stream.next()
        assert (reset.event, reset.id) == ("reset", "8")
        assert data(reset) == {"cursor": "8"}
        assert counts(await stream.next()) == (8, 8)
        await expect_live(hub, stream, await send(store, "alice"))


async def test_exactly_the_replay_limit_missed_is_replayed(store: Store) -> None:
    for _ in range(8):
        await send(store, "alice")
    hub = Hub(store, StreamLimits(replay_limit=5))

    async with opened(hub, "alice", 3) as stream:
        frames = [await stream.next() for _ in range(5)]
        assert [(f.event, f.id) for f in frames] == [("notification", str(n)) for n in range(4, 9)]
        assert counts(await stream.next()) == (8, 8)


async def test_a_cursor_beyond_head_resets_the_stream(store: Store) -> None:
    for _ in range(2):
        await send(store, "alice")
    hub = Hub(store)

    async with opened(hub, "alice", 100) as stream:
        reset = await stream.next()
        assert (reset.event, reset.id) == ("reset", "2")
        assert counts(await stream.next()) == (2, 2)
        await expect_live(hub, stream, await send(store, "alice"))


async def test_a_new_user_streaming_is_known_to_the_store_for_broadcasts(store: Store) -> None:
    hub = Hub(store)

    async with opened(hub, "zoe", None) as stream:
        assert counts(await stream.next()) == (0, 0)
        draft = Draft("default", "to all", "", {}, "normal", "ops")
        everyone = await store.publish(draft, Everyone(), None, now_ms())
        assert dict(everyone.targets) == {"zoe": 1}
        hub.deliver(published_event(everyone))
        assert (await stream.next()).id == "1"


async def test_a_stream_warns_before_its_token_expires_then_ends(store: Store) -> None:
    hub = Hub(store, StreamLimits(token_notice=1))
    expires_at = now_ms() + 1500

    async with opened(hub, "alice", None, expires_at) as stream:
        await stream.next()
        expiring = await stream.next(timeout=3)
        assert expiring.event == "token_expiring"
        assert expiring.id is None
        assert data(expiring) == {"expires_at": iso(expires_at)}
        assert await stream.ended(timeout=3)
        assert now_ms() >= expires_at


async def test_once_the_token_has_expired_a_stream_ends_without_sending_more(
    store: Store,
) -> None:
    clock = [now_ms()]
    hub = Hub(store, StreamLimits(token_notice=60), clock=lambda: clock[0])
    expires_at = clock[0] + 30_000

    async with opened(hub, "alice", None, expires_at) as stream:
        await stream.next()
        assert (await stream.next()).event == "token_expiring"
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:
                ended = anyio.Event()

                async def wait_for_end() -> None:
                    assert await stream.ended()
                    ended.set()

                tasks.start_soon(wait_for_end)
                await anyio.wait_all_tasks_blocked()
                clock[0] = expires_at
                hub.deliver(marker(await send(store, "alice")))
        assert ended.is_set()


async def test_closing_the_hub_ends_waiting_streams(store: Store) -> None:
    hub = Hub(store)

    async def consume(user: str, ready: anyio.Event) -> None:
        async with opened(hub, user, None) as stream:
            await stream.next()
            ready.set()
            assert await stream.ended(timeout=10)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            ready = [anyio.Event(), anyio.Event()]
            tasks.start_soon(consume, "alice", ready[0])
            tasks.start_soon(consume, "bob", ready[1])
            for event in ready:
                await event.wait()
            # Both streams are now parked waiting for live events.
            await anyio.wait_all_tasks_blocked()
            assert hub.connections == 2
            hub.close()
    assert hub.connections == 0


async def test_connections_and_streams_of_return_to_zero_when_streams_end(
    store: Store,
) -> None:
    hub = Hub(store)

    async with opened(hub, "alice", None) as first, opened(hub, "alice", None) as second:
        async with opened(hub, "bob", None) as third:
            for stream in (first, second, third):
                await stream.next()
            assert hub.connections == 3
            assert (hub.streams_of("alice"), hub.streams_of("bob")) == (2, 1)
        assert hub.connections == 2
        assert hub.streams_of("bob") == 0

    assert hub.connections == 0
    assert hub.streams_of("alice") == 0


async def test_a_slot_for_a_stream_that_never_started_comes_back(store: Store) -> None:
    """A request admitted and then dropped before its response began (the client left) must
    not hold the user's slot forever."""
    hub = Hub(store, StreamLimits(per_user=1))
    admission = hub.admit("alice")
    with pytest.raises(TooManyStreams, match="at most 1"):
        hub.admit("alice")
    del admission
    gc.collect()
    hub.admit("alice").release()
    admitted = hub.admit("alice")
    admitted.release()
    admitted.release()  # once only: a second release frees no second slot
    held = hub.admit("alice")
    with pytest.raises(TooManyStreams):
        hub.admit("alice")
    held.release()
