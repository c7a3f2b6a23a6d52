"""PostgreSQL specifics: asyncpg, a sized pool, and an advisory lock for migrations.

Every wait on PostgreSQL is bounded, where asyncpg and SQLAlchemy would wait forever or a minute:
for a pooled connection (`pool_timeout`), for a new connection (asyncpg's connect `timeout`,
60 s by default) and for each query (`command_timeout`, none by default). A saturated pool, a
frozen server or a cut network then surfaces as StoreUnavailable, answered 503 with
Retry-After, and the pool heals by itself once PostgreSQL answers again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from herald_server.store.dialect import Dialect

# Any constant works; it only has to be the same for every Herald migrator.
MIGRATION_LOCK_KEY = 0x48455241  # "HERA"

# Written as SQL for asyncpg itself: on the publish path SQLAlchemy's execution (compiling,
# expanding IN lists, result processing, the greenlet hop) cost more CPU than PostgreSQL did.
NOTIFICATION_COLUMNS = (
    "type",
    "title",
    "body",
    "data",
    "priority",
    "topic",
    "collapse_key",
    "publisher",
    "created_at",
    "send_at",
    "expires_at",
    "pending_audience",
    "route_pending",
    "channels",
    "content",
    "template",
    "offline_recipients",
)
_CREATED_AT = NOTIFICATION_COLUMNS.index("created_at") + 1
_RECIPIENTS = len(NOTIFICATION_COLUMNS) + 1

# A notification and its inbox items in one statement, however many recipients: the values
# in NOTIFICATION_COLUMNS' order, then the recipients. Each recipient's next seq is taken in
# the order given (sorted by the caller, so concurrent publishes lock user rows in one order
# and cannot deadlock); the result has one row per target, or a single row with a NULL user
# when there is none. Only constants are formatted into it.
PUBLISH = f"""
    WITH note AS (
        INSERT INTO notifications ({", ".join(NOTIFICATION_COLUMNS)})
        VALUES ({", ".join(f"${n}" for n in range(1, _RECIPIENTS))})
        RETURNING id
    ), advanced AS (
        INSERT INTO users AS known (user_id, last_seq, created_at)
        SELECT recipient, 1, ${_CREATED_AT}::bigint
        FROM unnest(${_RECIPIENTS}::text[]) WITH ORDINALITY AS given(recipient, position)
        ORDER BY position
        ON CONFLICT (user_id) DO UPDATE SET last_seq = known.last_seq + 1
        RETURNING user_id, last_seq
    ), delivered AS (
        INSERT INTO inbox (user_id, seq, notification_id)
        SELECT advanced.user_id, advanced.last_seq, note.id FROM advanced CROSS JOIN note
    )
    SELECT note.id, advanced.user_id, advanced.last_seq FROM note LEFT JOIN advanced ON true
"""  # noqa: S608

# The in-app switches of some owners for some types: `$1` types, `$2` owners.
IN_APP_SWITCHES = """
    SELECT owner, type, enabled FROM channel_switches
    WHERE channel = 'in_app' AND type = ANY($1::text[]) AND owner = ANY($2::text[])
"""


async def driver_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, in the same transaction if one is open."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def postgres_dialect(
    url: str, pool_size: int, pool_timeout: float = 5.0, query_timeout: float = 10.0
) -> Dialect:
    _, _, rest = url.partition("://")
    engine = create_async_engine(
        f"postgresql+asyncpg://{rest}",
        pool_size=pool_size,
        # No overflow: SQLAlchemy closes an overflow connection as soon as it is returned, so
        # under steady load every request beyond the pool opened a connection (a TLS
        # handshake, and its statements prepared again). Requests wait for one instead.
        max_overflow=0,
        # A request waits this long for a connection, then gets a 503 rather than hanging.
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        # A server that stops answering fails the query or the connection attempt after this
        # long (asyncpg cancels the query server-side too), rather than hanging the request.
        connect_args={"timeout": query_timeout, "command_timeout": query_timeout},
    )
    return Dialect(
        name="postgresql",
        engine=engine,
        insert=insert,
        writer=contextlib.nullcontext,
        lock_migrations=_advisory_lock,
        try_lock=_try_advisory_lock,
    )


async def _advisory_lock(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


async def _try_advisory_lock(conn: AsyncConnection, name: str) -> bool:
    taken = await conn.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name}
    )
    return bool(taken.scalar())
