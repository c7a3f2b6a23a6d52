"""PostgreSQL that cannot serve (hardening, item 4): a full pool, a stopped server, a frozen one.

Publishes then get 503 problem+json with Retry-After within a bound, never a hang and never a
202 for a notification that was not stored; once PostgreSQL serves again the node recovers by
itself, without a restart. The shared PostgreSQL is never stopped: the test fills the node's
pool by holding its engine's connections, and the outage is a TCP proxy the test cuts or
freezes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_PUBLISH
from tests.conftest import auth, run_server
from tests.helpers import assert_problem, free_port

pytestmark = pytest.mark.anyio

# Slack on top of a configured bound for the event loop and two busy CPUs.
SLACK = 3.0


@dataclass
class Outcome:
    title: str
    status: int
    seconds: float
    id: int | None = None


@dataclass
class Node:
    http: httpx.AsyncClient
    settings: Settings
    outcomes: list[Outcome] = field(default_factory=list)

    async def publish(self, title: str, bound: float) -> Outcome:
        """POST one notification to alice; anything but a 202 must be a 503 problem with
        Retry-After, and either must come within `bound` seconds."""
        headers = auth(self.settings, "billing-service", SCOPE_PUBLISH)
        started = time.monotonic()
        with anyio.fail_after(bound):
            response = await self.http.post(
                "/api/notifications",
                json={"recipients": ["alice"], "title": title},
                headers=headers,
            )
        outcome = Outcome(title, response.status_code, time.monotonic() - started)
        if response.status_code == 202:
            outcome.id = response.json()["id"]
        else:
            assert_problem(response, 503, "service-unavailable")
            assert int(response.headers["Retry-After"]) > 0
        self.outcomes.append(outcome)
        return outcome

    async def inbox(self) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/api/notifications", params={"limit": "100"}, headers=auth(self.settings, "alice")
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def assert_only_accepted_are_stored(self) -> None:
        """Every 202 is in alice's inbox, and nothing answered otherwise is."""
        stored = {item["id"]: item["title"] for item in await self.inbox()}
        accepted = {o.id: o.title for o in self.outcomes if o.status == 202}
        assert stored == accepted

    async def recovers(self, title: str, bound: float, attempts: int = 20) -> int:
        """Publish until one is accepted, as a client honouring 503 would; the attempts it
        took. A node that needs a restart never gets there."""
        with anyio.fail_after(attempts * (bound + 0.2)):
            for attempt in range(1, attempts + 1):
                if (await self.publish(f"{title} {attempt}", bound)).status == 202:
                    return attempt
                await anyio.sleep(0.2)
        raise AssertionError(f"no publish accepted in {attempts} attempts")


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Node]:
    async with (
        run_server(create_app(settings)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=60) as http,
    ):
        yield Node(http, settings)


class PgProxy:
    """A TCP proxy in front of PostgreSQL that the test can cut (as if PostgreSQL stopped:
    connections closed, new ones refused) or freeze (as if it stopped answering: bytes held,
    connections open), and then restore, leaving the shared server alone."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    def url(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    def freeze(self) -> None:
        self._flowing.clear()

    async def aclose(self) -> None:
        self.cut()
        self._flowing.set()
        with anyio.fail_after(5):
            while self._handlers:  # noqa: ASYNC110 - asyncio handler tasks, nothing to await
                await anyio.sleep(0.01)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        writers = {writer}
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            writers.add(upstream_writer)
            self._writers.add(upstream_writer)
            async with anyio.create_task_group() as pumps:
                pumps.start_soon(self._pump, reader, upstream_writer, pumps.cancel_scope)
                pumps.start_soon(self._pump, upstream_reader, writer, pumps.cancel_scope)
        except OSError:
            pass
        finally:
            for each in writers:
                each.transport.abort()
                self._writers.discard(each)
            self._handlers.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scope: anyio.CancelScope
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
        scope.cancel()


@asynccontextmanager
async def pg_proxy(database_url: str) -> AsyncIterator[PgProxy]:
    parts = urlsplit(database_url)
    proxy = PgProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.aclose()


async def test_a_full_pool_answers_503_quickly_and_the_node_recovers(
    production_settings: Settings,
) -> None:
    # A pool of one connection; the scheduler kept out of the pool's way, so the test alone
    # holds it.
    settings = replace(
        production_settings,
        db_pool_size=1,
        db_pool_timeout_seconds=0.5,
        db_query_timeout_seconds=5.0,
        scheduler_interval=3600,
    )
    bound = settings.db_pool_timeout_seconds + SLACK
    app = create_app(settings)
    async with run_server(app) as live, httpx.AsyncClient(base_url=live.url, timeout=60) as http:
        node = Node(http, settings)
        assert (await node.publish("before", bound)).status == 202
        # The app's own engine: the pool is full once the test holds its one connection.
        engine: AsyncEngine = vars(app.state.services.store)["_engine"]
        async with contextlib.AsyncExitStack() as held:
            for _ in range(settings.db_pool_size):
                await held.enter_async_context(engine.connect())
            refused = [await node.publish(f"refused {n}", bound) for n in range(3)]
        assert [o.status for o in refused] == [503] * 3, node.outcomes

        assert await node.recovers("after", bound) == 1
        await node.assert_only_accepted_are_stored()
        print("pool full, 503 after:", [round(o.seconds, 3) for o in refused])


async def test_a_stopped_or_frozen_postgresql_answers_503_and_the_node_recovers(
    production_settings: Settings,
) -> None:
    async with pg_proxy(production_settings.database_url) as proxy:
        settings = replace(
            production_settings,
            database_url=proxy.url(production_settings.database_url),
            db_pool_size=2,
            db_pool_timeout_seconds=1.0,
            db_query_timeout_seconds=1.0,
        )
        # A frozen server costs a query timeout, or two when the pooled connection first
        # waits for its previous query's cancellation.
        frozen_bound = 2 * settings.db_query_timeout_seconds + SLACK
        async with serving(settings) as node:
            assert (await node.publish("before", frozen_bound)).status == 202

            proxy.cut()
            stopped = [await node.publish(f"stopped {n}", SLACK) for n in range(3)]
            await proxy.restore()
            after_stop = await node.recovers("after stop", frozen_bound)

            proxy.freeze()
            frozen = [await node.publish(f"frozen {n}", frozen_bound) for n in range(3)]
            await proxy.restore()
            after_freeze = await node.recovers("after freeze", frozen_bound)

            assert [o.status for o in stopped + frozen] == [503] * 6, node.outcomes
            print(
                "stopped:", [round(o.seconds, 3) for o in stopped],
                "recovered after", after_stop,
                "frozen:", [round(o.seconds, 3) for o in frozen],
                "recovered after", after_freeze,
            )  # fmt: skip
            await node.assert_only_accepted_are_stored()
