"""Fixtures shared by every test: both backends, a live server, tokens and a client.

Backends are parametrized: `embedded` (SQLite file + in-process bus) and `production`
(PostgreSQL + the node's bus). PostgreSQL is used when reachable; with `--require-backends`
(CI) an unreachable one is an error, never a skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
import uvicorn
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette

from app.auth import issue_token
from app.config import Settings
from app.main import create_app
from app.models import SCOPE_ADMIN, SCOPE_PUBLISH
from app.store import Store, open_store

PG_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "test-secret-" + "x" * 40
TABLES = "notifications, users, inbox, user_events, topics, topic_subscriptions, idempotency_keys"
BACKENDS = ["embedded", "production"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-backends",
        action="store_true",
        help="fail, never skip, when PostgreSQL is unreachable (CI sets this)",
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_sse_starlette() -> None:
    """sse-starlette keeps a process-global exit flag; one stopped server must not end the
    next one's streams (NOTES.md)."""
    AppStatus.should_exit = False


async def _pg_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"), timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


_pg_state: dict[str, str | None] = {}


async def _prepare_postgres(request: pytest.FixtureRequest) -> None:
    """Reset the schema once per session; empty the tables before every test."""
    if "error" not in _pg_state:
        _pg_state["error"] = await _pg_reachable()
        if _pg_state["error"] is None:
            conn = await asyncpg.connect(PG_URL)
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            await conn.close()
            store = open_store(Settings(database_url=PG_URL, jwt_secret=SECRET))
            await store.migrate()
            await store.aclose()
    error = _pg_state["error"]
    if error is not None:
        if request.config.getoption("--require-backends"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required but unreachable: {error}")
        pytest.skip(f"PostgreSQL unreachable: {error}")
    conn = await asyncpg.connect(PG_URL)
    await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    await conn.close()


@pytest.fixture(params=BACKENDS)
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    base = Settings(
        jwt_secret=SECRET,
        dev_secret_file=str(tmp_path / "dev-secret"),
        scheduler_interval=0.05,
        heartbeat_seconds=15,
    )
    if request.param == "embedded":
        return replace(base, database_url=f"sqlite:///{tmp_path}/herald.db")
    await _prepare_postgres(request)
    return replace(base, database_url=PG_URL)


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
async def run_server(app: Starlette) -> AsyncIterator[LiveServer]:
    """Serve `app` with uvicorn on a free loopback port in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
                await anyio.sleep(0.01)
        live = LiveServer(f"http://127.0.0.1:{port}", server)
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
