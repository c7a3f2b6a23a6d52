"""Delivery beyond the browser: moving deliveries along in time, and making one attempt.

The store holds every delivery's state; the job queue carries "attempt delivery N now" to
whichever worker is free. `Dispatcher` plans new notifications, releases held deliveries whose
time has come, and queues what is due (retries included, when their backoff has passed).
`Deliverer` makes one attempt of one delivery: claim it under a lease, send it through its
channel, record the provider's answer and what follows from it (sent, retry later, dead
letter). Invariant 4: a job is acked only after its attempt is recorded, so a worker killed
mid-send leaves its job to be reclaimed, and the stable delivery key makes the resend
harmless to a provider that honours it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio

from herald_server.bus import JobQueue
from herald_server.channels import (
    Channel,
    EmailAddress,
    Message,
    Outcome,
    PhoneNumber,
    PushTarget,
    Target,
    WebhookTarget,
)
from herald_server.core.content import UnsubscribeLink, channel_content
from herald_server.core.params import whole_number
from herald_server.core.routing import Router, release
from herald_server.errors import BusUnavailable
from herald_server.models import Delivery, DeliveryTask, now_ms
from herald_server.store import DeliveryStore

log = logging.getLogger(__name__)

# Rows each step of a dispatcher tick takes at once: short transactions, short locks.
BATCH = 200
# Say that the queue is down once per interval, not once per tick.
WARN_EVERY_SECONDS = 10.0


def delivery_key(delivery: Delivery) -> str:
    """The delivery's idempotency key: the same on every retry and on a replay, and different
    after a database is recreated (ids start over; creation times do not)."""
    return f"herald-{delivery.id}-{delivery.created_at}"


def parse_delivery_key(key: str) -> tuple[int, int] | None:
    """(delivery id, created_at) of a key `delivery_key` made, or None."""
    prefix, _, rest = key.partition("-")
    ident, _, created = rest.partition("-")
    delivery_id, created_at = whole_number(ident), whole_number(created)
    if prefix != "herald" or delivery_id is None or created_at is None:
        return None
    return delivery_id, created_at


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Seconds before each retry; a delivery gets one try more than there are delays."""

    backoff: tuple[float, ...] = (1.0, 5.0, 30.0, 300.0)

    @property
    def max_tries(self) -> int:
        return len(self.backoff) + 1

    def retry_at(self, tries: int, retry_after: float | None, now: int) -> int | None:
        """When try `tries + 1` may start, or None when `tries` was the last."""
        if tries > len(self.backoff):
            return None
        delay = self.backoff[tries - 1]
        if retry_after is not None:
            delay = max(delay, min(retry_after, 86_400.0))
        return now + int(delay * 1000)


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        queue: JobQueue,
        router: Router,
        requeue_after: int,
        per_user: int | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        """`requeue_after` (ms): a queued job not attempted in this long was lost (the queue
        restarted, or a put failed after the store marked it queued): queue it again.
        `per_user`: deliveries of one user queued or sending at once, so that one user's slow
        endpoints hold at most that many worker slots (None: no limit)."""
        self._store = store
        self._queue = queue
        self._router = router
        self._requeue_after = requeue_after
        self._per_user = per_user
        self._clock = clock
        self._next_warning = 0.0
        # The first tick queues everything due: jobs held by a queue that died with its
        # process are not worth waiting `requeue_after` for; a duplicate job is harmless.
        self._first = True

    async def tick(self, now: int | None = None) -> int:
        """One pass; `now` lets tests jump ahead in time. Returns how much it moved, so the
        loop runs again at once while there is a backlog."""
        now = self._clock() if now is None else now
        requeue_after = 0 if self._first else self._requeue_after
        self._first = False
        if not await self._store.has_work(now, requeue_after):
            return 0
        routed = await self._store.route(
            now, BATCH, lambda request: self._router.plan(request, now)
        )
        released = await self._store.release_held(now, BATCH, lambda held: release(held, now))
        due = await self._store.claim_due(now, BATCH, requeue_after, self._per_user)
        try:
            await self._queue.put(due)
        except BusUnavailable as exc:
            self._warn(f"job queue unavailable, deliveries wait in the store: {exc}")
        return max(routed, released, len(due))

    def _warn(self, message: str) -> None:
        moment = time.monotonic()
        if moment >= self._next_warning:
            self._next_warning = moment + WARN_EVERY_SECONDS
            log.warning(message)


class Deliverer:
    def __init__(
        self,
        store: DeliveryStore,
        channels: Mapping[str, Channel],
        policy: RetryPolicy,
        unsubscribe: UnsubscribeLink,
        lease: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        """`lease` (ms): how long an attempt may take before another worker may take it over;
        the job queue's visibility timeout."""
        self._store = store
        self.channels = channels
        self._policy = policy
        self._unsubscribe = unsubscribe
        self._lease = lease
        self._clock = clock
        # (channel, provider's answer) → attempts made by this process, for /metrics.
        self.attempts: Counter[tuple[str, str]] = Counter()

    async def attempt(self, delivery_id: int) -> bool:
        """Make one attempt if the delivery is due. False when another worker's attempt is
        still running: the job stays unacked and comes back after the visibility timeout."""
        task = await self._store.start_attempt(delivery_id, self._clock(), self._lease)
        if task == "busy":
            return False
        if task is None:
            return True
        cancelled = self._pointless(task)
        if cancelled is not None:
            await self._store.finish_attempt(task, "skipped", "cancelled", cancelled, self._clock())
        else:
            await self._record(task, await self._send(task))
        return True

    def _pointless(self, task: DeliveryTask) -> str | None:
        """Why this attempt would be pointless, if it would."""
        notification = task.notification
        expires_at = None if notification is None else notification.expires_at
        if expires_at is not None and expires_at <= self._clock():
            return "the notification expired before it could be sent"
        if _target(task) is None:
            return f"the {task.delivery.channel} target was removed"
        return None

    async def _send(self, task: DeliveryTask) -> Outcome:
        delivery = task.delivery
        if task.tries > self._policy.max_tries:
            # Every earlier try was interrupted (a job that kills its worker, say).
            return Outcome("failed", f"gave up after {task.tries - 1} interrupted tries")
        channel = self.channels.get(delivery.channel)
        target = _target(task)
        if channel is None or target is None:
            return Outcome("failed", f"the {delivery.channel} channel is not configured")
        now = self._clock()
        content = channel_content(task, self._unsubscribe, now)
        message = Message(delivery_key(delivery), delivery.user, target, content)
        try:
            with anyio.fail_after(self._lease / 1000):
                return await channel.send(message)
        except TimeoutError:
            return Outcome("retry", "no answer within the lease")
        except Exception as exc:
            log.exception("the %s channel failed on delivery %s", delivery.channel, delivery.id)
            return Outcome("retry", f"internal error: {type(exc).__name__}")

    async def _record(self, task: DeliveryTask, outcome: Outcome) -> None:
        now = self._clock()
        self.attempts[task.delivery.channel, outcome.status] += 1
        status: str = outcome.status
        due_at, detail = None, outcome.detail
        if outcome.status == "gone":
            status = "cancelled"
        elif outcome.status == "retry":
            due_at = self._policy.retry_at(task.tries, outcome.retry_after, now)
            status = "pending" if due_at is not None else "failed"
            if due_at is None:
                detail = f"gave up after {task.tries} tries: {detail}"
        await self._store.finish_attempt(
            task,
            outcome.status,
            status,
            detail,
            now,
            due_at=due_at,
            provider_id=outcome.provider_id,
            remove_target=outcome.status == "gone",
        )


def _target(task: DeliveryTask) -> Target | None:
    """The live target: push subscriptions and webhooks are looked up at send time, so one
    removed since routing is not called."""
    channel, address = task.delivery.channel, task.delivery.target
    if channel == "email":
        return EmailAddress(address)
    if channel == "sms":
        return PhoneNumber(address)
    if channel == "push" and task.push is not None:
        push = task.push
        return PushTarget(push.id, push.endpoint, push.p256dh, push.auth)
    if channel == "webhook" and task.webhook is not None:
        return WebhookTarget(task.webhook.id, task.webhook.url, task.webhook.secret)
    return None
