"""Publishing: authorize, bound, commit, then announce.

The order matters (DESIGN.md, invariant 5): the store commits before anything is announced, so
a 202 always means stored, and a bus failure after the commit costs only latency (streams catch
up from the store).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from app import codec
from app.bus import EventBus
from app.core.announce import announce
from app.core.render import published_event
from app.errors import Forbidden, NotificationTooLarge, TooManyRecipients
from app.models import (
    SCOPE_ADMIN,
    SCOPE_PUBLISH,
    Audience,
    Draft,
    Everyone,
    Principal,
    Published,
    Recipients,
    now_ms,
)
from app.store import Store


@dataclass(frozen=True, slots=True)
class PublishLimits:
    max_recipients: int = 10_000
    max_notification_bytes: int = 10 * 1024


class Publisher:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        limits: PublishLimits = PublishLimits(),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._bus = bus
        self._limits = limits
        self._clock = clock

    async def publish(
        self,
        principal: Principal,
        draft: Draft,
        audience: Audience,
        idempotency_key: str | None = None,
    ) -> Published:
        self._authorize(principal, audience)
        self._check_size(draft, audience)
        claim = None
        if idempotency_key is not None:
            claim = (principal.sub, idempotency_key, _fingerprint(draft, audience))
        published = await self._store.publish(draft, audience, claim, self._clock())
        await self.announce(published)
        return published

    async def announce(self, published: Published) -> None:
        """Tell the live streams; the store already has it, so failure here is survivable."""
        if not published.targets:
            return
        await announce(self._bus, published_event(published))

    def _authorize(self, principal: Principal, audience: Audience) -> None:
        if isinstance(audience, Everyone):
            if not principal.can(SCOPE_ADMIN):
                raise Forbidden(f"a broadcast needs the {SCOPE_ADMIN} scope")
        elif isinstance(audience, Recipients) and set(audience.users) <= {principal.sub}:
            return
        elif not principal.can(SCOPE_PUBLISH):
            raise Forbidden(f"sending to others needs the {SCOPE_PUBLISH} scope")

    def _check_size(self, draft: Draft, audience: Audience) -> None:
        if isinstance(audience, Recipients) and len(audience.users) > self._limits.max_recipients:
            raise TooManyRecipients(
                f"{len(audience.users)} recipients; at most {self._limits.max_recipients}"
                " per request (publish to a topic to reach more)"
            )
        size = len(codec.dumps([draft.title, draft.body, draft.data, draft.type]))
        if size > self._limits.max_notification_bytes:
            raise NotificationTooLarge(
                f"title, body and data take {size} bytes; at most"
                f" {self._limits.max_notification_bytes}"
            )


def _fingerprint(draft: Draft, audience: Audience) -> str:
    """What makes two publishes 'the same request' for an Idempotency-Key."""
    material = codec.dumps([repr(draft), repr(audience)])
    return hashlib.sha256(material).hexdigest()
