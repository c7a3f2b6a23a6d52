"""The inbox as a user works it: list, read, mark, count; every change reaches their streams."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from herald_server import codec
from herald_server.bus import EventBus
from herald_server.core.announce import announce
from herald_server.core.render import counts_body, item_body, state_event
from herald_server.errors import InvalidCursor, NotFound
from herald_server.models import BulkAction, InboxQuery, StateAction, StateEvent, now_ms
from herald_server.store import Store


class Inbox:
    def __init__(self, store: Store, bus: EventBus, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock

    async def page(self, user: str, query: InboxQuery) -> tuple[bytes, str]:
        """The encoded page and its ETag: a hash of the bytes, so a poll that would get the
        same answer gets a 304 instead, whatever changed underneath."""
        now = self._clock()
        page = await self._store.inbox(user, query, now)
        counts = await self._store.counts(user, now)
        if query.after is not None and not page.items and query.after > counts.head:
            # A cursor this inbox never issued: polling on from it would skip what comes.
            raise InvalidCursor(f"{query.after} is ahead of this inbox; refetch without after")
        items = [item_body(item) for item in page.items]
        body: dict[str, Any] = {"items": items, "next_cursor": None, **counts_body(counts)}
        last = None if page.last_seq is None else str(page.last_seq)
        if query.after is not None:
            # Polling forward: the next poll starts after the newest item returned.
            body["next_cursor"] = last or str(query.after)
            body["has_more"] = page.has_more
        elif page.has_more:
            body["next_cursor"] = last
        encoded = codec.dumps(body)
        return encoded, 'W/"' + hashlib.blake2b(encoded, digest_size=12).hexdigest() + '"'

    async def get(self, user: str, notification_id: int) -> dict[str, Any]:
        item = await self._store.item(user, notification_id, self._clock())
        if item is None:
            raise NotFound(f"notification {notification_id} not found")
        return item_body(item)

    async def counts(self, user: str) -> dict[str, int]:
        return counts_body(await self._store.counts(user, self._clock()))

    async def change(self, user: str, notification_id: int, action: StateAction) -> None:
        found, event = await self._store.change(user, notification_id, action, self._clock())
        if not found:
            raise NotFound(f"notification {notification_id} not found")
        await self._announce(user, event)

    async def change_all(self, user: str, action: BulkAction, up_to: int | None) -> dict[str, Any]:
        event = await self._store.change_all(user, action, up_to, self._clock())
        await self._announce(user, event)
        counts = await self._store.counts(user, self._clock())
        return {"changed": event is not None, **counts_body(counts)}

    async def _announce(self, user: str, event: StateEvent | None) -> None:
        if event is not None:
            await announce(self._bus, state_event(user, event))
