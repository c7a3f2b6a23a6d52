"""Issue 7's slow consumer: a client that stops reading must not grow server memory without
bound nor slow the others.

A `slow` client opens its SSE stream on a raw socket with a small receive buffer and never
reads it; a `fast` client reads its stream as it comes. Large notifications go to both. Once
the kernel's and uvicorn's write buffers for the slow connection are full, its sends block:
from then on its hub subscription may hold at most `stream_buffer` events, after which it is
marked stale and drops them. Meanwhile the fast reader gets every notification, in order, as
it is published. The slow connection is cut after `send_timeout_seconds` and its subscription
leaves the hub; the slow client then reads what did reach it, resumes from the last event id
in it, and gets every notification it missed: dropped, resumed, nothing lost.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from dataclasses import dataclass, field, replace

import anyio
import httpx
import pytest

from herald_server import codec
from herald_server.config import Settings
from herald_server.core.hub import Hub
from herald_server.main import create_app
from herald_server.services import Services
from tests.conftest import run_server, token_for
from tests.helpers import SseReader, eventually, open_stream, publish

pytestmark = pytest.mark.anyio

SLOW, FAST = "slow", "fast"
# Events one connection may buffer: small, so the bound is passed within a few publishes.
BUFFER = 8
SEND_TIMEOUT = 1.5
# Large notifications fill the slow connection's socket buffers (about 3 MB on loopback, where
# the kernel grows the send buffer up to tcp_wmem's maximum) in a few dozen publishes. The
# schema bounds `body` to 10,000 characters, `data` only max_notification_bytes does.
NOTIFICATION_BYTES = 128 * 1024
PADDING = "x" * 64 * 1024
# Publishes after the slow connection was first seen stale: it stays bounded while behind.
AFTER_STALE = 4 * BUFFER
# Publishes at most, in case the slow connection never falls behind.
MAX_PUBLISHES = 600
# Publishes in flight at once.
CONCURRENCY = 4
# No notification reaches the fast reader later than this after its publish returned.
FAST_LAG = 3.0
TEST_DEADLINE = 60

# One complete notification frame as herald_server.streams.sse encodes it (data is one line of
# JSON).
NOTIFICATION_FRAME = re.compile(rb"id: (\d+)\nevent: notification\ndata: ([^\n]*)\n\n")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits off: a hundred publishes a second to the same two users is the load this
    test is for (tests/api/test_limits.py covers the limits). A small buffer and a short send
    timeout, so the bound is passed and the cut comes within the test's few seconds."""
    return replace(
        settings,
        publish_rate=0,
        recipient_rate=0,
        stream_buffer=BUFFER,
        send_timeout_seconds=SEND_TIMEOUT,
        max_notification_bytes=NOTIFICATION_BYTES,
    )


@dataclass
class Watch:
    """What was seen of the slow connection's subscription in the hub, after every publish."""

    hub: Hub
    looks: int = 0
    longest: int = 0
    # Publishes done when the subscription was first seen stale.
    stale_after: int | None = None
    # Buffer lengths seen while stale: a stale subscription keeps nothing.
    while_stale: set[int] = field(default_factory=set)
    # Publishes done when the subscription was first seen gone: the connection was cut.
    gone_after: int | None = None

    def look(self, published: int) -> None:
        subscriptions = self.hub._by_user.get(SLOW, set())
        if not subscriptions and self.gone_after is None:
            self.gone_after = published
        for subscription in subscriptions:
            assert subscription.capacity == BUFFER
            self.looks += 1
            self.longest = max(self.longest, len(subscription.buffer))
            if subscription.stale:
                if self.stale_after is None:
                    self.stale_after = published
                self.while_stale.add(len(subscription.buffer))

    def enough(self, published: int) -> bool:
        """Publish until the slow connection was seen behind for a while, or was cut."""
        if self.gone_after is not None or published >= MAX_PUBLISHES:
            return True
        return self.stale_after is not None and published >= self.stale_after + AFTER_STALE


@dataclass
class Run:
    watch: Watch
    # Notification ids as their publishes returned, and when.
    sent: list[str] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    # (cursor, notification id) of each notification the fast reader got, and when.
    fast: list[tuple[int, str]] = field(default_factory=list)
    fast_at: dict[str, float] = field(default_factory=dict)


async def open_silent_stream(url: str, token: str) -> socket.socket:
    """GET /api/stream on a raw socket with a small receive window, for a caller that does not
    read it."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (host, int(port)))
        request = (
            f"GET /api/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
    except BaseException:
        sock.close()
        raise
    return sock


async def read_to_end(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server wrote to `sock`, up to its close."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    with anyio.fail_after(timeout):
        while chunk := await loop.sock_recv(sock, 1 << 16):
            received += chunk
    return bytes(received)


async def read_fast(stream: SseReader, run: Run) -> None:
    """Every notification on the fast stream, until cancelled."""
    while True:
        event = await stream.next_of("notification", timeout=TEST_DEADLINE)
        assert event.id is not None
        run.fast.append((int(event.id), event.data["id"]))
        run.fast_at[event.data["id"]] = time.monotonic()


async def publish_until_enough(
    client: httpx.AsyncClient, headers: dict[str, str], run: Run
) -> None:
    """Large notifications to both users, CONCURRENCY at a time, looking at the slow
    connection's subscription after each."""

    async def one(n: int) -> None:
        published = await publish(
            client, headers, recipients=[SLOW, FAST], title=f"n{n}", data={"padding": PADDING}
        )
        run.sent_at[published["id"]] = time.monotonic()
        run.sent.append(published["id"])
        run.watch.look(len(run.sent))

    while not run.watch.enough(len(run.sent)):
        first = len(run.sent)
        async with anyio.create_task_group() as batch:
            for n in range(first, first + CONCURRENCY):
                batch.start_soon(one, n)


async def test_a_client_that_stops_reading_is_bounded_then_cut_and_resumes_without_loss(
    settings: Settings,
) -> None:
    publisher = {"Authorization": f"Bearer {token_for(settings, 'svc', 'notifications:publish')}"}
    fast_token, slow_token = token_for(settings, FAST), token_for(settings, SLOW)
    app = create_app(settings)
    started = time.monotonic()
    with anyio.fail_after(TEST_DEADLINE):
        async with (
            run_server(app) as live,
            httpx.AsyncClient(base_url=live.url, timeout=10) as client,
        ):
            services: Services = app.state.services
            hub = services.hub
            run = Run(Watch(hub))
            silent = await open_silent_stream(live.url, slow_token)
            try:
                await eventually(lambda: _holds(hub.streams_of(SLOW) == 1), timeout=5)
                fast_headers = {"Authorization": f"Bearer {fast_token}"}
                async with open_stream(client, fast_headers) as fast:
                    assert (await fast.next()).event == "unread_count"
                    async with anyio.create_task_group() as reader:
                        reader.start_soon(read_fast, fast, run)
                        await publish_until_enough(client, publisher, run)
                        with anyio.fail_after(FAST_LAG):
                            while len(run.fast) < len(run.sent):  # noqa: ASYNC110 - a list fills
                                await anyio.sleep(0.01)
                        reader.cancel_scope.cancel()
                # Every event has reached the hub by now (the fast one has it): a last look.
                run.watch.look(len(run.sent))
                total = len(run.sent)

                # (1) The fast reader got every notification, in order, as it was published.
                assert [cursor for cursor, _ in run.fast] == list(range(1, total + 1))
                assert sorted(id_ for _, id_ in run.fast) == sorted(run.sent)
                fast_lag = max(run.fast_at[id_] - run.sent_at[id_] for id_ in run.sent)
                assert fast_lag < FAST_LAG

                # (2) The slow connection's buffer never held more than its capacity: once
                # full, it was marked stale and dropped what it held.
                watch = run.watch
                assert watch.longest <= BUFFER, (
                    f"the slow connection's buffer held {watch.longest} events, past its"
                    f" capacity of {BUFFER}: a client that stops reading grows server memory"
                )
                assert watch.stale_after is not None, "the slow connection never fell behind"
                assert watch.while_stale == {0}

                # (3) The send timeout cuts the slow connection; its subscription leaves the hub.
                await eventually(
                    lambda: _holds(hub.streams_of(SLOW) == 0), timeout=SEND_TIMEOUT + 5
                )
                received = await read_to_end(silent, timeout=10)
            finally:
                silent.close()

            frames = NOTIFICATION_FRAME.findall(received)
            got = [(int(cursor), codec.loads(data)["id"]) for cursor, data in frames]
            assert [cursor for cursor, _ in got] == list(range(1, len(got) + 1))
            assert len(got) < total, "everything reached the slow client: it never blocked"
            last = str(got[-1][0]) if got else "0"
            slow_headers = {"Authorization": f"Bearer {slow_token}"}
            async with open_stream(client, slow_headers, last_event_id=last) as resumed:
                missed = [await resumed.next() for _ in range(total - len(got))]
                counts = await resumed.next()
    elapsed = time.monotonic() - started

    # Resumed from its last event id, the slow client has every notification once, in order.
    assert [event.event for event in missed] == ["notification"] * len(missed)
    assert [event.id for event in missed] == [str(n) for n in range(len(got) + 1, total + 1)]
    everything = [id_ for _, id_ in got] + [event.data["id"] for event in missed]
    assert sorted(everything) == sorted(run.sent)
    assert counts.event == "unread_count"
    assert counts.data["unread_count"] == total
    print(
        f"\nslow consumer [{settings.database_url.split(':')[0]}]: {total} publishes; slow"
        f" stale after {watch.stale_after}, gone after {watch.gone_after}, longest buffer"
        f" {watch.longest} in {watch.looks} looks, {len(got)} reached it ({len(received)}"
        f" bytes); fast lag at most {fast_lag:.3f} s; {elapsed:.1f} s"
    )


async def _holds(value: bool) -> bool:
    return value
