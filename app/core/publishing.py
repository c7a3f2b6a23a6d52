"""Publishing: authorize, bound, commit, then announce.

The order matters (docs/architecture.md, "The store is the record"): the store commits before
anything is announced, so a 202 always means stored, and a bus failure after the commit costs
only latency (streams catch up from the store).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from herald_server import codec
from herald_server.bus import EventBus, RateLimiter
from herald_server.core.announce import announce
from herald_server.core.preferences import wants_inbox
from herald_server.core.render import published_event
from herald_server.core.renderer import TemplateRenderer
from herald_server.errors import (
    BusUnavailable,
    Forbidden,
    NotificationTooLarge,
    RateLimited,
    TooManyRecipients,
    UnknownTemplate,
)
from herald_server.models import (
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
from herald_server.store import ProfileStore, Store

log = logging.getLogger(__name__)
# While the limiter's backend is down, say so once per interval, not once per publish.
WARN_EVERY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PublishLimits:
    max_recipients: int = 10_000
    max_notification_bytes: int = 10 * 1024
    # Token buckets per publisher and per named recipient (per second, burst); 0: no limit.
    publish_rate: float = 0.0
    publish_burst: int = 0
    recipient_rate: float = 0.0
    recipient_burst: int = 0


@dataclass(frozen=True, slots=True)
class TemplateUse:
    """A publish by template: the key, its variables, and the locale of the in-app text."""

    key: str
    variables: dict[str, Any]
    locale: str | None = None


class Publisher:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        limits: PublishLimits = PublishLimits(),
        clock: Callable[[], int] = now_ms,
        *,
        templates: ProfileStore | None = None,
        renderer: TemplateRenderer | None = None,
        limiter: RateLimiter | None = None,
        on_published: Callable[[], None] | None = None,
    ) -> None:
        """`on_published` is told whenever notifications went out, so an in-process delivery
        worker can plan them at once instead of at its next look."""
        self._store = store
        self._bus = bus
        self._limits = limits
        self._clock = clock
        self._templates = templates
        self._renderer = renderer
        self._limiter = limiter
        self._on_published = on_published
        self._next_warning = 0.0

    async def publish(
        self,
        principal: Principal,
        draft: Draft,
        audience: Audience,
        idempotency_key: str | None = None,
        template: TemplateUse | None = None,
    ) -> Published:
        self._authorize(principal, audience)
        self._check_recipients(audience)
        # Refusals that cost nothing come before the rate limits take a token.
        self._check_size(draft)
        reached, rate_limited = await self._throttle(principal, audience)
        claim = None
        if idempotency_key is not None:
            fingerprint = _fingerprint(draft, audience, template)
            claim = (principal.sub, idempotency_key, fingerprint)
        if template is not None:
            draft = await self._render(draft, template)
            self._check_size(draft)
        published = await self._store.publish(draft, reached, claim, self._clock(), wants_inbox)
        await self.announce(published)
        return replace(published, rate_limited=rate_limited)

    async def _render(self, draft: Draft, use: TemplateUse) -> Draft:
        """The draft with the template's in-app title and body, and every rendering kept."""
        if self._templates is None or self._renderer is None:
            raise UnknownTemplate("this publisher has no templates")
        found = await self._templates.template(use.key)
        if found is None:
            raise UnknownTemplate(f"no template {use.key!r}")
        rendered = await self._renderer.render(found, use.variables, use.locale)
        return replace(
            draft,
            title=rendered.title,
            body=rendered.body,
            content=rendered.content,
            template=use.key,
        )

    async def announce(self, published: Published) -> None:
        """Tell the live streams and the delivery worker; the store already has it, so
        failure here is survivable."""
        if published.replayed or published.scheduled:
            return
        if self._on_published is not None:
            self._on_published()
        if published.targets:
            await announce(self._bus, published_event(published))

    def _authorize(self, principal: Principal, audience: Audience) -> None:
        if isinstance(audience, Everyone):
            if not principal.can(SCOPE_ADMIN):
                raise Forbidden(f"a broadcast needs the {SCOPE_ADMIN} scope")
        elif isinstance(audience, Recipients) and set(audience.users) <= {principal.sub}:
            return
        elif not principal.can(SCOPE_PUBLISH):
            raise Forbidden(f"sending to others needs the {SCOPE_PUBLISH} scope")

    def _check_recipients(self, audience: Audience) -> None:
        if isinstance(audience, Recipients) and len(audience.users) > self._limits.max_recipients:
            raise TooManyRecipients(
                f"{len(audience.users)} recipients; at most {self._limits.max_recipients}"
                " per request (publish to a topic to reach more)"
            )

    async def _throttle(
        self, principal: Principal, audience: Audience
    ) -> tuple[Audience, tuple[str, ...]]:
        """Take the publisher's token (a 429 when its bucket is empty), then one from each
        bucket this publisher keeps for a named recipient: the audience left to reach, and
        the recipients left out because their bucket was empty. A 429 only when no one is
        left, before anything is rendered or stored.

        Recipient buckets are per (publisher, recipient), and a send to oneself draws on none:
        only the publisher's own sends empty them, so nothing another user does can make this
        publish fail or lose a recipient. With the limiter's backend down (Redis), publishing
        goes on unthrottled rather than failing: limits protect the service, and refusing
        every publish would be the outage they guard against."""
        limits = self._limits
        if limits.publish_rate > 0:
            key = f"publisher:{principal.sub}"
            (wait,) = await self._take([key], limits.publish_rate, limits.publish_burst)
            if wait > 0:
                raise _rate_limited("publisher", limits.publish_rate, limits.publish_burst, wait)
        if limits.recipient_rate <= 0 or not isinstance(audience, Recipients):
            return audience, ()
        others = sorted(set(audience.users) - {principal.sub})
        keys = [_recipient_bucket(principal.sub, user) for user in others]
        waits = await self._take(keys, limits.recipient_rate, limits.recipient_burst)
        limited = {user: wait for user, wait in zip(others, waits, strict=True) if wait > 0}
        kept = tuple(user for user in audience.users if user not in limited)
        if not kept:
            soonest = min(limited.values())
            raise _rate_limited("recipient", limits.recipient_rate, limits.recipient_burst, soonest)
        return Recipients(kept), tuple(sorted(limited))

    async def _take(self, keys: list[str], rate: float, burst: int) -> list[float]:
        """Each key's wait (0.0: a token was taken); all 0.0 while the limiter is down."""
        if self._limiter is None:
            return [0.0] * len(keys)
        try:
            return await self._limiter.take(keys, rate, max(burst, 1))
        except BusUnavailable as exc:
            moment = time.monotonic()
            if moment >= self._next_warning:
                self._next_warning = moment + WARN_EVERY_SECONDS
                log.warning("rate limits unavailable, publishing unthrottled: %s", exc)
            return [0.0] * len(keys)

    def _check_size(self, draft: Draft) -> None:
        size = len(codec.dumps([draft.title, draft.body, draft.data, draft.type]))
        if size > self._limits.max_notification_bytes:
            raise NotificationTooLarge(
                f"title, body and data take {size} bytes; at most"
                f" {self._limits.max_notification_bytes}"
            )


def _recipient_bucket(publisher: str, recipient: str) -> str:
    """The bucket one publisher draws on to send to one recipient. The publisher's length
    comes first so that no two (publisher, recipient) pairs can spell the same key."""
    return f"recipient:{len(publisher)}:{publisher}:{recipient}"


def _rate_limited(who: str, rate: float, burst: int, wait: float) -> RateLimited:
    return RateLimited(
        f"{who} limit reached: {rate:g} per second, bursts of {burst}",
        retry_after=max(1, math.ceil(wait)),
    )


def _fingerprint(draft: Draft, audience: Audience, template: TemplateUse | None) -> str:
    """What makes two publishes 'the same request' for an Idempotency-Key: the request, not
    its rendering, so a retry after the template was edited is still the same request."""
    material = codec.dumps([repr(draft), repr(audience), repr(template)])
    return hashlib.sha256(material).hexdigest()
