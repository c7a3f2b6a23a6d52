"""PostgreSQL specifics: asyncpg, a sized pool, and an advisory lock for migrations."""

from __future__ import annotations

import contextlib

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.store.dialect import Dialect

# Any constant works; it only has to be the same for every Herald migrator.
MIGRATION_LOCK_KEY = 0x48455241  # "HERA"


def postgres_dialect(url: str, pool_size: int) -> Dialect:
    _, _, rest = url.partition("://")
    engine = create_async_engine(
        f"postgresql+asyncpg://{rest}",
        pool_size=pool_size,
        max_overflow=pool_size,
        # A request waits this long for a connection, then gets a 503 rather than hanging.
        pool_timeout=5,
        pool_recycle=1800,
    )
    return Dialect(
        name="postgresql",
        engine=engine,
        insert=insert,
        writer=contextlib.nullcontext,
        lock_migrations=_advisory_lock,
    )


async def _advisory_lock(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
