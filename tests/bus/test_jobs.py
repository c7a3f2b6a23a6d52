"""The JobQueue contract (app/bus/__init__.py): one body for the in-process queue and the Redis
Streams consumer group; Redis specifics after it.

Several handles onto one queue stand for several workers: on Redis each is a queue object of
its own (its own connection, as another process would have); in memory there is one process,
so they share the one object and differ by consumer name. Every wait is the queue's own
`take(wait=...)` under a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel
import pytest
from redis.asyncio import Redis

from herald_server.bus import Job, JobQueue, open_queue
from herald_server.errors import BusUnavailable
from tests.conftest import REDIS_URL
from tests.helpers import free_port

pytestmark = pytest.mark.anyio

# Long enough that nothing is reclaimed by accident while a test runs.
LONG = 60.0
# Short enough to wait out; the Redis queue looks for idle jobs about once a second.
SHORT = 0.5
RECLAIM_EVERY = 1.0

Open = Callable[[float], JobQueue]


@pytest.fixture(params=["memory", "redis"])
async def open_handle(request: pytest.FixtureRequest) -> AsyncIterator[Open]:
    """Open a worker's handle onto this test's queue (all with one visibility timeout)."""
    prefix = f"herald-jobs-test-{uuid.uuid4().hex[:8]}"
    opened: list[JobQueue] = []

    def open_one(visibility: float) -> JobQueue:
        if request.param == "memory" and opened:
            return opened[0]
        queue = open_queue(None if request.param == "memory" else REDIS_URL, prefix, visibility)
        opened.append(queue)
        return queue

    yield open_one
    for queue in opened:
        await queue.aclose()
    client = Redis.from_url(REDIS_URL)
    await client.delete(f"{prefix}:jobs")
    await client.aclose()


def ids(jobs: list[Job]) -> list[int]:
    return [job.delivery_id for job in jobs]


async def take_until(
    queue: JobQueue, consumer: str, count: int, timeout: float = 10
) -> tuple[list[Job], float]:
    """Take until something comes; the jobs and when they came (monotonic)."""
    with anyio.fail_after(timeout):
        while True:
            jobs = await queue.take(consumer, count, 0.1)
            if jobs:
                return jobs, time.monotonic()


async def nothing_for(queue: JobQueue, consumer: str, seconds: float) -> None:
    """Assert that takes for `seconds` get nothing."""
    deadline = time.monotonic() + seconds
    with anyio.fail_after(seconds + 10):
        while time.monotonic() < deadline:
            assert await queue.take(consumer, 10, 0.1) == []


# --- the contract ---------------------------------------------------------------------------


async def test_put_then_take_hands_out_each_job_once_in_order(open_handle: Open) -> None:
    queue = open_handle(LONG)
    await queue.put([11, 12, 13])
    await queue.put([])

    with anyio.fail_after(10):
        first = await queue.take("a", 2, 1)
        second = await queue.take("a", 10, 1)
        third = await queue.take("a", 10, 0.1)

    assert ids(first) == [11, 12]
    assert ids(second) == [13]
    assert third == []
    assert not any(job.reclaimed for job in first + second)
    assert len({job.id for job in first + second}) == 3
    await queue.ack(first + second)
    await queue.ack([])


async def test_take_waits_at_most_wait_and_returns_nothing(open_handle: Open) -> None:
    queue = open_handle(LONG)
    started = time.monotonic()
    with anyio.fail_after(5):
        assert await queue.take("a", 10, 0.3) == []
    waited = time.monotonic() - started
    assert 0.25 <= waited < 2, waited


@pytest.mark.parametrize(
    "kind",
    [
        "memory",
        "redis",
    ],
)
async def test_a_take_with_no_wait_returns_at_once(kind: str) -> None:
    prefix = f"herald-jobs-test-{uuid.uuid4().hex[:8]}"
    queue = open_queue(None if kind == "memory" else REDIS_URL, prefix, LONG)
    try:
        with anyio.fail_after(3):
            assert await queue.take("a", 10, 0) == []
            await queue.put([1])
            assert ids(await queue.take("a", 10, 0)) == [1]
    finally:
        await queue.aclose()
        client = Redis.from_url(REDIS_URL)
        await client.delete(f"{prefix}:jobs")
        await client.aclose()


async def test_a_waiting_take_returns_as_soon_as_a_job_is_put(open_handle: Open) -> None:
    consumer, producer = open_handle(LONG), open_handle(LONG)
    got: list[Job] = []

    async def take() -> None:
        got.extend(await consumer.take("a", 10, 4))

    with anyio.fail_after(3):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            await producer.put([5])
    assert ids(got) == [5]


async def test_an_unacked_job_goes_to_another_consumer_after_the_visibility_timeout(
    open_handle: Open,
) -> None:
    first, second = open_handle(SHORT), open_handle(SHORT)
    await first.put([21])
    taken_at = time.monotonic()
    (job,) = await first.take("dies", 10, 1)

    # Not before: while the first consumer may still be working on it, nobody else gets it.
    with anyio.fail_after(5):
        assert await second.take("other", 10, 0.1) == []

    (again,), came_at = await take_until(second, "other", 10)
    assert came_at - taken_at >= SHORT
    assert (again.id, again.delivery_id, again.reclaimed) == (job.id, 21, True)
    await second.ack([again])
    await nothing_for(second, "other", SHORT + RECLAIM_EVERY + 0.5)


async def test_an_acked_job_never_comes_back(open_handle: Open) -> None:
    first, second = open_handle(SHORT), open_handle(SHORT)
    await first.put([31, 32])
    jobs = await first.take("a", 10, 1)
    assert ids(jobs) == [31, 32]
    await first.ack(jobs)

    await nothing_for(second, "b", SHORT + RECLAIM_EVERY + 0.5)
    await nothing_for(first, "a", 0.2)


async def test_only_the_unacked_job_of_a_batch_comes_back(open_handle: Open) -> None:
    first, second = open_handle(SHORT), open_handle(SHORT)
    await first.put([41, 42, 43])
    jobs = await first.take("a", 10, 1)
    await first.ack([job for job in jobs if job.delivery_id != 42])

    back, _ = await take_until(second, "b", 10)
    assert ids(back) == [42]
    assert back[0].reclaimed
    await second.ack(back)


async def test_concurrent_consumers_never_hold_the_same_job(open_handle: Open) -> None:
    handles = [open_handle(LONG) for _ in range(3)]
    wanted = list(range(1, 121))
    await handles[0].put(wanted)
    held: dict[str, list[Job]] = {}

    async def consume(queue: JobQueue, name: str) -> None:
        mine = held.setdefault(name, [])
        while jobs := await queue.take(name, 7, 0.2):
            mine.extend(jobs)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for number, queue in enumerate(handles):
                for task in range(2):
                    tasks.start_soon(consume, queue, f"worker{number}-{task}")

    everything = [job for jobs in held.values() for job in jobs]
    assert sorted(ids(everything)) == wanted
    assert len({job.id for job in everything}) == len(wanted)
    assert sum(1 for jobs in held.values() if jobs) > 1, "one consumer took everything"
    for queue in handles:
        await queue.ack(everything)


async def test_jobs_put_before_any_consumer_existed_are_read(open_handle: Open) -> None:
    producer = open_handle(LONG)
    await producer.put([51, 52])

    consumer = open_handle(LONG)
    jobs, _ = await take_until(consumer, "late", 10)
    if len(jobs) < 2:
        more, _ = await take_until(consumer, "late", 10)
        jobs += more
    assert ids(jobs) == [51, 52]


# --- Redis specifics ------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"herald-jobs-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    await client.delete(f"{prefix}:jobs")
    await client.aclose()


async def test_the_redis_stream_does_not_grow_with_acked_jobs(redis_prefix: str) -> None:
    queue = open_queue(REDIS_URL, redis_prefix, LONG)
    client = Redis.from_url(REDIS_URL)
    try:
        for round_ in range(3):
            await queue.put(list(range(round_ * 50, round_ * 50 + 50)))
            assert await client.xlen(f"{redis_prefix}:jobs") == 50
            jobs: list[Job] = []
            with anyio.fail_after(10):
                while len(jobs) < 50:
                    jobs += await queue.take("a", 20, 1)
            await queue.ack(jobs)
            assert await client.xlen(f"{redis_prefix}:jobs") == 0
        pending = await client.xpending(f"{redis_prefix}:jobs", "workers")
        assert pending["pending"] == 0
    finally:
        await client.aclose()
        await queue.aclose()


async def test_a_deleted_stream_is_recreated_on_a_later_take(redis_prefix: str) -> None:
    """Redis restarted without persistence: the stream and its group are gone. A take may
    fail once (NOGROUP, as BusUnavailable); the next recreates the group and reads on."""
    queue = open_queue(REDIS_URL, redis_prefix, LONG)
    client = Redis.from_url(REDIS_URL)
    try:
        await queue.put([61])
        assert ids(await queue.take("a", 10, 1)) == [61]
        await client.delete(f"{redis_prefix}:jobs")
        await queue.put([62])

        errors: list[str] = []
        jobs: list[Job] = []
        with anyio.fail_after(10):
            while not jobs:
                try:
                    jobs = await queue.take("a", 10, 0.1)
                except BusUnavailable as exc:
                    errors.append(str(exc))
        assert ids(jobs) == [62]
        assert len(errors) <= 1
        assert all("NOGROUP" in error for error in errors), errors
        await queue.ack(jobs)
    finally:
        await client.aclose()
        await queue.aclose()


async def test_an_unreachable_redis_is_bus_unavailable_for_every_call() -> None:
    queue = open_queue(f"redis://127.0.0.1:{free_port()}/0", "herald-nowhere", LONG)
    try:
        with anyio.fail_after(5):
            with pytest.raises(BusUnavailable):
                await queue.put([1])
            with pytest.raises(BusUnavailable):
                await queue.take("a", 1, 0.1)
            with pytest.raises(BusUnavailable):
                await queue.ack([Job("1-0", 1)])
    finally:
        await queue.aclose()
