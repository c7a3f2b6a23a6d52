"""SIGTERM to a node under load: its streams are told to reconnect at once, its in-flight
publishes finish, it exits 0 within the grace period, and nothing it accepted is lost.

Two real `herald serve` processes share PostgreSQL and Redis. 200 streams (SSE and WebSocket)
of 20 users are open on node A while publishers send targeted notifications to A and to B.
A gets SIGTERM mid-run; every stream, when A ends it, resumes on B from the last id it saw. A
publisher whose request to A fails at the transport level was refused, not accepted: it stops
using A. At the end every notification answered 202 reached every stream of each recipient,
once, in order.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL
from typing import Any, Literal

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from herald_server import codec
from herald_server.config import Settings
from herald_server.models import SCOPE_PUBLISH
from tests.cluster.harness import Node, herald, node_env, wait_healthy
from tests.conftest import REDIS_URL, token_for
from tests.helpers import SseReader, free_port
from tests.noloss import Client, Run, verify

pytestmark = pytest.mark.anyio

GRACE_SECONDS = 10
USERS = [f"member{n}" for n in range(20)]
SSE_PER_USER = 8
WS_PER_USER = 2
PUBLISHERS_TO_A = 2
PUBLISHERS_TO_B = 2
# SIGTERM once this many notifications were accepted; after it, go on sending until A has
# exited, this long has passed and this many more were accepted.
PUBLISHED_BEFORE_SIGTERM = 200
PUBLISH_AFTER_EXIT = 1.5
PUBLISHED_AFTER_SIGTERM = 50
DEADLINE = 180
# A stream told to go must be gone long before the server would cut it (half the grace).
TOLD_WITHIN = GRACE_SECONDS / 2
SERVICE_RESTART = 1012


@dataclass
class Stream:
    """One client stream of `me.user`: on A first, then, once A ends it, on B."""

    me: Client
    kind: Literal["sse", "ws"]
    connected: anyio.Event = field(default_factory=anyio.Event)
    # How its stream on A ended: ("eof", retry hint) for SSE, ("close", code) for WebSocket.
    ended_on_a: tuple[str, object] | None = None
    ended_after: float | None = None
    sessions_on_b: int = 0

    def receive(self, event: str, event_id: str | None, data: Any) -> None:
        self.connected.set()
        assert event != "reset", f"{self.me.user}: told to refetch, so events were lost"
        if event == "notification":
            assert event_id is not None
            self.me.record(int(event_id), data["id"])


async def sse_session(http: httpx.AsyncClient, headers: dict[str, str], s: Stream) -> int | None:
    """One SSE response read to its end, as EventSource would; the last `retry:` hint."""
    sent = {**headers, "Last-Event-ID": s.me.cursor}
    async with http.stream("GET", "/api/stream", headers=sent) as response:
        assert response.status_code == 200, await response.aread()
        reader = SseReader(response)
        with contextlib.suppress(EOFError):
            while True:
                found = await reader.next(timeout=DEADLINE)
                s.receive(found.event, found.id, found.data)
    return reader.retry


async def ws_session(url: str, headers: dict[str, str], s: Stream) -> int | None:
    """One WebSocket read to its close; the close code the server sent."""
    target = url.replace("http://", "ws://") + f"/api/ws?last_event_id={s.me.cursor}"
    async with connect(target, additional_headers=headers, open_timeout=10) as ws:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                frame: dict[str, Any] = codec.loads(raw)
                s.receive(frame["event"], frame["id"], frame["data"])
        return ws.close_code


@dataclass
class Clock:
    sigterm_at: float | None = None

    def since_sigterm(self) -> float | None:
        return None if self.sigterm_at is None else time.monotonic() - self.sigterm_at


async def test_sigterm_under_load_loses_nothing_and_exits_within_the_grace_period(
    production_settings: Settings, tmp_path: Path
) -> None:
    settings = production_settings
    env = node_env(settings, REDIS_URL) | {
        "HERALD_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        # The limits are tested elsewhere; here every request must be accepted or refused.
        "HERALD_PUBLISH_RATE": "0",
        "HERALD_RECIPIENT_RATE": "0",
    }

    headers = {u: {"Authorization": f"Bearer {token_for(settings, u)}"} for u in USERS}
    publisher = {"Authorization": f"Bearer {token_for(settings, 'svc', SCOPE_PUBLISH)}"}
    sse: list[Literal["sse", "ws"]] = ["sse"] * SSE_PER_USER
    ws: list[Literal["sse", "ws"]] = ["ws"] * WS_PER_USER
    kinds = sse + ws
    streams = [Stream(Client(user), kind) for user in USERS for kind in kinds]
    run = Run(USERS)
    clock = Clock()
    figures: dict[str, Any] = {"in_flight_answered": 0, "accepted_by_a_after": 0, "refused": 0}
    in_flight_to_a = 0
    a_log = tmp_path / "node-a.log"
    started = time.monotonic()
    no_pool_limit = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    port_a, port_b = free_port(), free_port()
    with (
        a_log.open("wb") as a_output,
        herald(env, ["serve", "--port", str(port_a)], a_output) as a_process,
        herald(env, ["serve", "--port", str(port_b)], DEVNULL) as b_process,
    ):
        a = Node(f"http://127.0.0.1:{port_a}", a_process)
        b = Node(f"http://127.0.0.1:{port_b}", b_process)
        await wait_healthy(a.url, b.url)
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30, limits=no_pool_limit) as streams_a,
            httpx.AsyncClient(base_url=b.url, timeout=30, limits=no_pool_limit) as streams_b,
            httpx.AsyncClient(base_url=a.url, timeout=10) as publish_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as publish_b,
        ):

            async def session(s: Stream, on: Node) -> int | None:
                if s.kind == "sse":
                    return await sse_session(
                        streams_a if on is a else streams_b, headers[s.me.user], s
                    )
                return await ws_session(on.url, headers[s.me.user], s)

            async def follow(s: Stream) -> None:
                try:
                    s.ended_on_a = ("eof" if s.kind == "sse" else "close", await session(s, a))
                except (httpx.TransportError, ConnectionClosed, OSError) as exc:
                    s.ended_on_a = ("error", repr(exc))
                s.ended_after = clock.since_sigterm()
                async with anyio.create_task_group() as on_b:

                    async def read() -> None:
                        while True:  # B never shuts down: a second session would be a bug
                            s.sessions_on_b += 1
                            await session(s, b)

                    on_b.start_soon(read)
                    while not run.finished(s.me):
                        await anyio.sleep(0.2)
                    on_b.cancel_scope.cancel()

            async def publish(name: str, rng: random.Random, to_a: bool) -> None:
                nonlocal in_flight_to_a
                n = 0
                while not stop.is_set():
                    n += 1
                    recipients = rng.sample(USERS, rng.randint(1, 3))
                    body = {"recipients": recipients, "title": f"{name}-{n}"}
                    key = {"Idempotency-Key": f"{name}-{n}", **publisher}
                    if not to_a:
                        response = await publish_b.post(
                            "/api/notifications", json=body, headers=key
                        )
                    else:
                        sent_before_sigterm = clock.sigterm_at is None
                        in_flight_to_a += 1
                        try:
                            response = await publish_a.post(
                                "/api/notifications", json=body, headers=key
                            )
                        except httpx.TransportError:
                            # Refused: nothing accepted. Stop using A, as a load balancer would.
                            assert clock.sigterm_at is not None, "A refused before SIGTERM"
                            figures["refused"] += 1
                            to_a = False
                            continue
                        finally:
                            in_flight_to_a -= 1
                        if clock.sigterm_at is not None:
                            key_name = (
                                "in_flight_answered"
                                if sent_before_sigterm
                                else "accepted_by_a_after"
                            )
                            figures[key_name] += 1
                    assert response.status_code == 202, response.text
                    run.sent(recipients, response.json()["id"])

            async def stop_a() -> None:
                with anyio.fail_after(DEADLINE):
                    while run.published < PUBLISHED_BEFORE_SIGTERM or in_flight_to_a < 1:
                        await anyio.sleep(0.005)
                clock.sigterm_at = time.monotonic()
                figures["published_at_sigterm"] = run.published
                a.terminate()
                with anyio.fail_after(GRACE_SECONDS + 5):
                    while a.process.poll() is None:
                        await anyio.sleep(0.02)
                figures["a_exit_seconds"] = clock.since_sigterm()
                # Keep sending to B while the clients resume there, for a while and a number.
                exited_at = time.monotonic()
                with anyio.fail_after(DEADLINE):
                    while (
                        time.monotonic() - exited_at < PUBLISH_AFTER_EXIT
                        or run.published < figures["published_at_sigterm"] + PUBLISHED_AFTER_SIGTERM
                    ):
                        await anyio.sleep(0.05)
                stop.set()

            stop = anyio.Event()
            with anyio.fail_after(DEADLINE):
                async with anyio.create_task_group() as clients:
                    for s in streams:
                        clients.start_soon(follow, s)
                    with anyio.fail_after(60):
                        for s in streams:
                            await s.connected.wait()
                    figures["connect_seconds"] = time.monotonic() - started
                    async with anyio.create_task_group() as producers:
                        producers.start_soon(stop_a)
                        rng = random.Random(20)
                        for p in range(PUBLISHERS_TO_A + PUBLISHERS_TO_B):
                            producers.start_soon(
                                publish, f"p{p}", random.Random(rng.random()), p < PUBLISHERS_TO_A
                            )
                    run.done = True

    log = a_log.read_text(errors="replace")
    assert a.process.returncode == 0, f"node A exited with {a.process.returncode}:\n{log}"
    assert figures["a_exit_seconds"] < GRACE_SECONDS, figures
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log
    for s in streams:
        assert s.ended_after is not None, f"a {s.kind} stream on A ended before SIGTERM"
        assert s.ended_after < TOLD_WITHIN, f"a {s.kind} stream was cut, not told: {s}"
        if s.kind == "sse":
            kind, hint = s.ended_on_a or ("?", None)
            assert kind == "eof", f"not a clean end: {s}"
            assert isinstance(hint, int), f"no retry hint: {s}"
            assert settings.sse_retry_ms <= hint <= 2 * settings.sse_retry_ms
        else:
            assert s.ended_on_a == ("close", SERVICE_RESTART), s
        assert s.sessions_on_b == 1, f"a stream on B was dropped: {s}"
        verify({s.me.user: s.me}, run)
    assert figures["in_flight_answered"] >= 1, figures
    deliveries = sum(len(s.me.received) for s in streams)
    told = max(s.ended_after or 0 for s in streams)
    print(
        f"\ngraceful shutdown: {len(streams)} streams"
        f" ({len(USERS) * SSE_PER_USER} SSE, {len(USERS) * WS_PER_USER} WS),"
        f" {run.published} notifications accepted ({figures['published_at_sigterm']} before"
        f" SIGTERM, {figures['in_flight_answered']} in flight to A answered 202 after it,"
        f" {figures['accepted_by_a_after']} more accepted by A while it closed,"
        f" {figures['refused']} refused), {deliveries} deliveries, all streams told within"
        f" {told:.2f} s, node A exited 0 after {figures['a_exit_seconds']:.2f} s"
        f" (grace {GRACE_SECONDS} s), {time.monotonic() - started:.1f} s in all"
    )
