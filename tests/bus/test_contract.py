"""One body for every bus: fan-out to every node's listener; Redis specifics after it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from redis.asyncio import Redis

from herald_server.bus import BusStats, EventBus, open_bus
from herald_server.errors import BusUnavailable
from herald_server.models import LiveEvent
from tests.cluster.harness import OwnRedis
from tests.conftest import REDIS_URL
from tests.helpers import free_port

pytestmark = pytest.mark.anyio

EVENT = LiveEvent("notification", '{"id":"1","title":"é"}', (("alice", 1), ("bob", 7)))


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], EventBus]]:
    """A factory of bus instances that share one channel, as the nodes of one cluster do."""
    prefix = f"herald-bus-test-{uuid.uuid4().hex[:8]}"
    opened: list[EventBus] = []
    memory = open_bus(None)

    def make() -> EventBus:
        if request.param == "memory":
            return memory
        bus = open_bus(REDIS_URL, prefix, 1000)
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        await bus.aclose()
    client = Redis.from_url(REDIS_URL)
    await client.delete(f"{prefix}:live")
    await client.aclose()


async def _listen(bus: EventBus, into: list[LiveEvent], resyncs: list[int]) -> None:
    await bus.run(into.append, lambda: resyncs.append(1))


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling a plain list filled by a callback
            await anyio.sleep(0.01)


async def test_every_node_receives_what_any_node_publishes(
    make_bus: Callable[[], EventBus],
) -> None:
    publisher, node_a, node_b = make_bus(), make_bus(), make_bus()
    got_a: list[LiveEvent] = []
    got_b: list[LiveEvent] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_listen, node_a, got_a, [])
        tasks.start_soon(_listen, node_b, got_b, [])
        await anyio.sleep(0.2)  # both listeners joined before the publish
        await publisher.publish(EVENT)
        await _until(lambda: len(got_a) == 1 and len(got_b) == 1)
        tasks.cancel_scope.cancel()
    assert got_a == got_b == [EVENT]
    await publisher.ping()
    assert isinstance(publisher, BusStats)
    assert publisher.events_out >= 1


async def test_an_unreachable_redis_is_bus_unavailable_fast() -> None:
    bus = open_bus(f"redis://127.0.0.1:{free_port()}/0")
    with anyio.fail_after(3):
        with pytest.raises(BusUnavailable):
            await bus.publish(EVENT)
        with pytest.raises(BusUnavailable):
            await bus.ping()
    await bus.aclose()


async def test_the_live_stream_stays_capped() -> None:
    prefix = f"herald-cap-test-{uuid.uuid4().hex[:8]}"
    bus = open_bus(REDIS_URL, prefix, 100)
    for _ in range(1000):
        await bus.publish(EVENT)
    client = Redis.from_url(REDIS_URL)
    length = await client.xlen(f"{prefix}:live")
    await client.delete(f"{prefix}:live")
    await client.aclose()
    await bus.aclose()
    assert length < 300  # MAXLEN ~ trims in whole macro nodes, never unboundedly


async def test_while_redis_is_down_listeners_resync_and_resume_when_it_returns() -> None:
    redis = OwnRedis()
    await redis.start()
    publisher, node = open_bus(redis.url), open_bus(redis.url)
    got: list[LiveEvent] = []
    resyncs: list[int] = []
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_listen, node, got, resyncs)
            await anyio.sleep(0.2)
            redis.stop()
            await _until(lambda: len(resyncs) >= 2)  # once at the drop, then every second
            with pytest.raises(BusUnavailable):
                await publisher.publish(EVENT)
            await redis.start()
            count = len(resyncs)
            await _until(lambda: len(resyncs) > count)  # once more when it is back
            await publisher.publish(EVENT)
            await _until(lambda: len(got) == 1)
            tasks.cancel_scope.cancel()
    finally:
        redis.stop()
        await publisher.aclose()
        await node.aclose()
    assert got == [EVENT]
