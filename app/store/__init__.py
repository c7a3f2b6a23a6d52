"""The store: Herald's source of truth, behind one Protocol, chosen by `DATABASE_URL`.

Every cursor a client sees is a per-user sequence number the store allocates in the same
transaction that writes the row, under a lock on that user's row. So for one user, sequence
order is commit order: once seq N is committed, every seq below it is committed too, and a
client resuming after N can never skip a row that commits later with a smaller number
(DESIGN.md, invariant 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from app.config import ConfigError, Settings, redact
from app.models import (
    Audience,
    BulkAction,
    Counts,
    Draft,
    InboxItem,
    InboxPage,
    InboxQuery,
    Published,
    SentNotification,
    StateAction,
    StateEvent,
    Topic,
)

IdempotencyClaim = tuple[str, str, str]
"""(publisher, key, fingerprint of the request body)."""


class Store(Protocol):
    async def publish(
        self, draft: Draft, audience: Audience, claim: IdempotencyClaim | None, now: int
    ) -> Published:
        """Commit a notification and its inbox rows in one transaction, then return.

        A `send_at` after `now` stores it with its audience and writes no inbox rows until
        `release_due`. With a claim whose key was used before, nothing is written and the first
        result comes back with `replayed=True`; a different fingerprint raises
        IdempotencyConflict. The caller has validated the draft and the audience size.
        """
        ...

    async def release_due(self, now: int, limit: int) -> list[Published]:
        """Deliver scheduled notifications whose time has come, each exactly once.

        Safe to call from every node at once: a row is taken by one caller only.
        """
        ...

    async def inbox(self, user: str, query: InboxQuery, now: int) -> InboxPage:
        """One page of the user's visible items: newest first, or oldest first with `after`."""
        ...

    async def item(self, user: str, notification_id: int, now: int) -> InboxItem | None:
        """The user's own item, or None: another user's id is indistinguishable from none."""
        ...

    async def change(
        self, user: str, notification_id: int, action: StateAction, now: int
    ) -> tuple[bool, StateEvent | None]:
        """Apply one state change. Returns (found, event); no event when nothing changed."""
        ...

    async def change_all(
        self, user: str, action: BulkAction, up_to: int | None, now: int
    ) -> StateEvent | None:
        """Apply `action` to every item up to the cursor (all when None); None if none changed."""
        ...

    async def recent(self, limit: int, before: int | None) -> list[SentNotification]:
        """Every user's notifications, newest first, ids below `before`: the admin's view."""
        ...

    async def counts(self, user: str, now: int) -> Counts:
        """Unread and unseen visible items (archived and expired excluded)."""
        ...

    async def head(self, user: str) -> int:
        """The user's latest seq (0 for a user never seen); it moves on every change."""
        ...

    async def events_since(
        self, user: str, after: int, limit: int, now: int
    ) -> Sequence[InboxItem | StateEvent]:
        """Committed events with seq > `after`, in seq order, at most `limit`.

        Deleted and expired notifications are left out; their seqs simply do not appear.
        """
        ...

    async def ensure_user(self, user: str, now: int) -> None:
        """Record that the user exists, so a broadcast reaches them."""
        ...

    async def topics(self, user: str) -> list[Topic]: ...

    async def subscribe(self, user: str, topic: str, now: int) -> bool:
        """Subscribe; False if the user already was."""
        ...

    async def unsubscribe(self, user: str, topic: str) -> bool:
        """Unsubscribe; False if the user was not subscribed."""
        ...

    async def purge_idempotency(self, older_than: int) -> int: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers a trivial query."""
        ...

    async def migrate(self) -> list[str]:
        """Apply pending migrations, serialized across processes; return the applied names."""
        ...

    async def aclose(self) -> None: ...


def open_store(settings: Settings) -> Store:
    """Build the store named by DATABASE_URL: the one place its scheme is interpreted."""
    url = settings.database_url
    scheme = urlsplit(url).scheme
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        from app.store.sqlite import sqlite_dialect

        dialect = sqlite_dialect(url)
    elif scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        from app.store.postgres import postgres_dialect

        dialect = postgres_dialect(url, settings.db_pool_size)
    else:
        raise ConfigError(f"DATABASE_URL: unsupported scheme {scheme!r} in {redact(url)}")
    from app.store.sql import SqlStore

    return SqlStore(dialect)
