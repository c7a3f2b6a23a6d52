"""SQLite specifics: WAL, foreign keys, real transactions, and one writer at a time.

pysqlite's default transaction handling runs DDL outside transactions and begins lazily; we
take over (isolation_level=None plus an explicit BEGIN), as SQLAlchemy's aiosqlite docs advise,
so a migration or a publish is all-or-nothing. Concurrent writers queue on an asyncio lock
instead of failing with `database is locked` (19 of 40 concurrent writers failed without it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from herald_server.store.dialect import Dialect

# Another process (a second `herald migrate`, say) may hold the file lock this long.
BUSY_TIMEOUT_MS = 5000
# Attempts at switching a fresh file to WAL, BUSY_TIMEOUT_MS worth in all.
WAL_RETRY_SECONDS = 0.02
WAL_ATTEMPTS = int(BUSY_TIMEOUT_MS / 1000 / WAL_RETRY_SECONDS)


def sqlite_dialect(url: str) -> Dialect:
    _, _, rest = url.partition("://")
    engine = create_async_engine(f"sqlite+aiosqlite://{rest}")

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    lock = asyncio.Lock()
    return Dialect(
        name="sqlite",
        engine=engine,
        insert=insert,
        writer=lambda: lock,
        lock_migrations=_no_lock,
        try_lock=_always_free,
    )


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL, retrying: on a brand-new file another process (a `herald migrate` beside
    a starting `herald serve`) may hold the lock, and SQLite answers this pragma with
    `database is locked` at once instead of honouring busy_timeout."""
    for _ in range(WAL_ATTEMPTS - 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(WAL_RETRY_SECONDS)  # runs in aiosqlite's connection thread, not the loop
    cursor.execute("PRAGMA journal_mode=WAL")


async def _no_lock(_conn: AsyncConnection) -> None:
    """SQLite's own file lock, taken by the migration's first write, serializes migrators."""


async def _always_free(_conn: AsyncConnection, _name: str) -> bool:
    """SQLite has one writer: a transaction that runs holds every lock there is."""
    return True
