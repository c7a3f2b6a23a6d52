"""Fixtures shared by every test: both backends, a live server, tokens and a client.

Backends are parametrized: `embedded` (SQLite file + in-process bus) and `production`
(PostgreSQL + Redis Streams, with a key prefix of its own per test). Both services are used
when reachable; with `--require-backends` (CI) an unreachable one is an error, never a skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette

from herald_server.auth import issue_token
from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from herald_server.server import uvicorn_config
from herald_server.store import Store, open_store

PG_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "test-secret-" + "x" * 40
TABLES = (
    "notifications, users, inbox, user_events, topics, topic_subscriptions, idempotency_keys,"
    " preferences, channel_switches, notification_types, contacts, push_subscriptions, webhooks,"
    " templates, deliveries, delivery_attempts"
)
BACKENDS = ["embedded", "production"]
# The server settings a test gets unless it asks for others: the defaults, logging warnings
# only, and a short grace so a stopped server does not hold the test up.
QUIET = Settings(log_level="warning", shutdown_grace_seconds=1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-backends",
        action="store_true",
        help="fail, never skip, when PostgreSQL or Redis is unreachable (CI sets this)",
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_sse_starlette() -> None:
    """sse-starlette keeps a process-global exit flag; one stopped server must not end the
    next one's streams."""
    AppStatus.should_exit = False


async def _services_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {PG_URL}: {type(exc).__name__}: {exc}"
    await conn.close()
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return f"Redis at {REDIS_URL}: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


_services_state: dict[str, str | None] = {}


@pytest.fixture(scope="session")
async def _session_database() -> AsyncIterator[dict[str, str | None]]:
    """A database of this test session's own, so parallel sessions never truncate each
    other's tables; dropped at the end."""
    yield _services_state
    name = _services_state.get("database")
    if name is not None:
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _create_session_database() -> str:
    name = f"herald_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(PG_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    _services_state["database"] = name
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    store = open_store(Settings(database_url=url, jwt_secret=SECRET))
    await store.migrate()
    await store.aclose()
    return url


async def _prepare_services(request: pytest.FixtureRequest) -> str:
    """The session database's URL, its tables emptied for this test."""
    if "error" not in _services_state:
        _services_state["error"] = await _services_reachable()
        if _services_state["error"] is None:
            _services_state["url"] = await _create_session_database()
    error = _services_state["error"]
    if error is not None:
        if request.config.getoption("--require-backends"):
            pytest.fail(f"required but unreachable: {error}")
        pytest.skip(f"unreachable: {error}")
    url = _services_state["url"]
    assert url is not None
    conn = await asyncpg.connect(url)
    await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    await conn.close()
    return url


@pytest.fixture(params=BACKENDS)
async def settings(
    request: pytest.FixtureRequest, tmp_path: Path, _session_database: dict[str, str | None]
) -> AsyncIterator[Settings]:
    base = Settings(
        jwt_secret=SECRET,
        dev_secret_file=str(tmp_path / "dev-secret"),
        scheduler_interval=0.05,
        heartbeat_seconds=15,
    )
    if request.param == "embedded":
        yield replace(base, database_url=f"sqlite:///{tmp_path}/herald.db")
        return
    async for production in _production(request, base):
        yield production


@pytest.fixture
async def production_settings(
    request: pytest.FixtureRequest, tmp_path: Path, _session_database: dict[str, str | None]
) -> AsyncIterator[Settings]:
    """PostgreSQL + Redis only, for tests of what only the production backend does."""
    base = Settings(jwt_secret=SECRET, dev_secret_file=str(tmp_path / "dev-secret"))
    async for production in _production(request, base):
        yield production


async def _production(request: pytest.FixtureRequest, base: Settings) -> AsyncIterator[Settings]:
    database_url = await _prepare_services(request)
    prefix = f"herald-test-{uuid.uuid4().hex[:12]}"
    yield replace(base, database_url=database_url, redis_url=REDIS_URL, redis_prefix=prefix)
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = open_store(settings)
    await opened.migrate()
    yield opened
    await opened.aclose()


@dataclass
class LiveServer:
    url: str
    uvicorn: uvicorn.Server

    def stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM would."""
        self.uvicorn.should_exit = True


@asynccontextmanager
async def run_server(
    app: Starlette, port: int = 0, settings: Settings = QUIET, host: str = "127.0.0.1"
) -> AsyncIterator[LiveServer]:
    """Serve `app` with uvicorn in this event loop, configured as `herald serve` configures it
    from `settings` (protocol limits, redaction), on `port` or a free one; the test's own
    logging is left alone."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn_config(settings, app, configure_logging=False)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
                await anyio.sleep(0.01)
        live = LiveServer(f"http://{host}:{port}", server)
        try:
            yield live
        finally:
            live.stop()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[str]:
    async with run_server(create_app(settings)) as live:
        yield live.url


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        yield http


def token_for(settings: Settings, sub: str, *scopes: str, ttl: int = 3600) -> str:
    return issue_token(settings, sub, list(scopes), ttl)


def auth(settings: Settings, sub: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(settings, sub, *scopes)}"}


@pytest.fixture
def publisher(settings: Settings) -> dict[str, str]:
    return auth(settings, "billing-service", SCOPE_PUBLISH)


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    return auth(settings, "ops", SCOPE_ADMIN)


@pytest.fixture
def alice(settings: Settings) -> dict[str, str]:
    return auth(settings, "alice")


@pytest.fixture
def bob(settings: Settings) -> dict[str, str]:
    return auth(settings, "bob")
