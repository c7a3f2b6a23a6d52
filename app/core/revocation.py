"""Revoking a user's stream tokens: from now on they are refused, and the user's open streams
on every node end (sign-out everywhere, a lost device). API tokens are the identity
provider's to revoke; a client holding a valid one just asks for a new stream token."""

from __future__ import annotations

import logging

from herald_server.bus import EventBus
from herald_server.errors import BusUnavailable
from herald_server.models import LiveEvent
from herald_server.store import AuditStore

log = logging.getLogger(__name__)

# The live event that ends a user's streams on every node; it has no cursor and no payload.
STREAMS_REVOKED = "revoked"


async def revoke_streams(store: AuditStore, bus: EventBus, user: str, now: int) -> None:
    await store.revoke_streams(user, now)
    try:
        await bus.publish(LiveEvent(STREAMS_REVOKED, "{}", ((user, 0),)))
    except BusUnavailable as exc:
        # Stored first: new connections are refused everywhere; streams already open on other
        # nodes last until their token expires.
        log.warning(
            "revoked %s's stream tokens, but could not end their open streams: %s", user, exc
        )
