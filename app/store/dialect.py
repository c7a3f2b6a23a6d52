"""What differs between SQLite and PostgreSQL, gathered in one small record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    engine: AsyncEngine
    # The dialect's INSERT construct; both offer `on_conflict_do_update/nothing`.
    insert: Callable[[Any], Any]
    # Held around every write transaction: SQLite allows one writer, PostgreSQL needs none.
    writer: Callable[[], AbstractAsyncContextManager[Any]]
    # Serializes migrators across processes inside the migration transaction.
    lock_migrations: Callable[[AsyncConnection], Any]
    # Takes a lock named by the string until the transaction ends, if no other transaction
    # holds it: work some other worker is already doing is skipped, not waited for.
    try_lock: Callable[[AsyncConnection, str], Awaitable[bool]]
