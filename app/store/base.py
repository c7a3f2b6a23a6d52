"""What every SQL query class shares: the dialect, transactions that fail as StoreUnavailable,
and row mappers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_server import codec
from herald_server.errors import StoreUnavailable
from herald_server.models import Notification
from herald_server.store.dialect import Dialect

# Rows per multi-row statement: PostgreSQL allows 32,767 bind parameters per statement.
CHUNK = 1000
# Connection failures, a full pool (TimeoutError), and OSError, which covers a refused
# connection and asyncpg's query or connect timeout (asyncio.TimeoutError is an OSError).
_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    OSError,
    # asyncpg's own, from statements sent to it directly (herald_server.store.postgres): a closed
    # connection, or one still busy with a cancelled query.
    asyncpg.InterfaceError,
)
# SQLSTATE classes of a server that cannot serve now rather than a query that is wrong:
# connection exception, insufficient resources (too many connections), operator intervention
# (shutting down, starting up, a statement cancelled for taking too long). asyncpg raises
# these as PostgresError, which SQLAlchemy wraps in a plain DBAPIError.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57")
T = TypeVar("T")
log = logging.getLogger(__name__)


def chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class UnreadableRow(Exception):
    """A stored row whose JSON cannot be decoded, or could not be encoded again to serve it."""


def stored_json(raw: str) -> Any:
    """JSON text from a column, refused as unreadable if it is not JSON or nests deeper than
    anything Herald serves (rows stored before bodies had a depth limit, or written by hand)."""
    try:
        value = codec.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UnreadableRow(type(exc).__name__) from None
    if codec.nests_deeper_than(raw, value, codec.MAX_DEPTH):
        raise UnreadableRow(f"nested more than {codec.MAX_DEPTH} deep")
    return value


def readable(rows: Iterable[Any], read: Callable[[Any], T]) -> list[T]:
    """`read` of each row that can be read; one that cannot is logged with its notification id
    and left out, so one bad row never fails a whole inbox, stream or list."""
    found = []
    for row in rows:
        try:
            found.append(read(row))
        except UnreadableRow as exc:
            log.error("notification %s cannot be read (%s); left out", row.id, exc)
    return found


def notification_of(row: Any) -> Notification:
    return Notification(
        id=row.id,
        type=row.type,
        title=row.title,
        body=row.body,
        data=stored_json(row.data),
        priority=row.priority,
        topic=row.topic,
        collapse_key=row.collapse_key,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class SqlBase:
    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._engine = dialect.engine
        self._autocommit = dialect.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._insert = dialect.insert

    @asynccontextmanager
    async def _write(self, transaction: bool = True) -> AsyncIterator[AsyncConnection]:
        """A connection for writing, in a transaction committed at the end; without one for
        a write made in a single statement (atomic by itself), which then saves the BEGIN
        and COMMIT round trips."""
        with _unavailable_as_store_error():
            if transaction:
                async with self._dialect.writer(), self._engine.begin() as conn:
                    yield conn
            else:
                async with self._dialect.writer(), self._autocommit.connect() as conn:
                    try:
                        yield conn
                    except Exception as exc:
                        # Statements sent to the driver itself bypass SQLAlchemy, which would
                        # otherwise see that the connection is broken and not pool it again.
                        if _unavailable(exc):
                            await conn.invalidate()
                        raise

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with _unavailable_as_store_error():
            async with self._engine.connect() as conn:
                yield conn


@contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not _unavailable(exc):
            raise
        raise StoreUnavailable(_describe(exc)) from exc


def _unavailable(exc: Exception) -> bool:
    """Whether the store cannot answer now, as opposed to a query that is wrong."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    return _sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATES)


def _sqlstate(exc: Exception) -> str:
    """The SQLSTATE of a driver error, raw or wrapped by SQLAlchemy; '' for any other."""
    driver_error = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    return str(getattr(driver_error, "sqlstate", None) or "")


def _describe(exc: Exception) -> str:
    """The class and SQLSTATE, never the message: it may quote the query's parameters."""
    return f"{type(exc).__name__} {_sqlstate(exc)}".strip()
