"""The store: Herald's source of truth, behind one Protocol, chosen by `DATABASE_URL`.

Every cursor a client sees is a per-user sequence number the store allocates in the same
transaction that writes the row, under a lock on that user's row. So for one user, sequence
order is commit order: once seq N is committed, every seq below it is committed too, and a
client resuming after N can never skip a row that commits later with a smaller number
(docs/streams.md: no loss on reconnect).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from herald_server.config import ConfigError, Settings, redact
from herald_server.models import (
    Audience,
    AuditEntry,
    BulkAction,
    Contact,
    Counts,
    Delivery,
    DeliveryAttempt,
    DeliveryQuery,
    DeliveryTask,
    Draft,
    HeldDelivery,
    InboxItem,
    InboxPage,
    InboxQuery,
    PlannedDelivery,
    Preferences,
    Published,
    PushSubscriptionRecord,
    Release,
    RoutingRequest,
    SentNotification,
    StateAction,
    StateEvent,
    Switches,
    Template,
    Topic,
    TypeDefaults,
    Webhook,
)

IdempotencyClaim = tuple[str, str, str]
"""(publisher, key, fingerprint of the request body)."""

WantsInbox = Callable[[str, frozenset[str] | None, Switches, Switches], bool]
"""(notification type, channels the publisher asked for, the user's switches, the admin's)
→ whether the user gets an inbox item. Only `in_app` switches are passed."""

Planner = Callable[[RoutingRequest], list[PlannedDelivery]]
Releaser = Callable[[HeldDelivery], Release]


class Store(Protocol):
    async def publish(
        self,
        draft: Draft,
        audience: Audience,
        claim: IdempotencyClaim | None,
        now: int,
        wants_inbox: WantsInbox | None = None,
    ) -> Published:
        """Commit a notification and its inbox rows in one transaction, then return.

        A `send_at` after `now` stores it with its audience and writes no inbox rows until
        `release_due`. With a claim whose key was used before, nothing is written and the first
        result comes back with `replayed=True`; a different fingerprint raises
        IdempotencyConflict. The caller has validated the draft and the audience size.
        Recipients `wants_inbox` turns away get no inbox item (None: every recipient does);
        every recipient is counted and routed to the other channels.
        """
        ...

    async def release_due(
        self, now: int, limit: int, wants_inbox: WantsInbox | None = None
    ) -> list[Published]:
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

    async def topics(
        self,
        user: str,
        after: str | None,
        limit: int,
        *,
        every: bool = False,
        named: Collection[str] = (),
    ) -> list[Topic]:
        """At most `limit` topics named after `after`, by name: those published to or
        configured, and those anyone subscribes to. Private ones only when `every`, when the
        user subscribes, or when `named` (the user's token claim) holds them. Subscriber
        counts leave out subscriptions that do not count (self-made ones to a private topic)."""
        ...

    async def subscribe(
        self, user: str, topic: str, now: int, limit: int | None = None, *, entitled: bool = False
    ) -> bool:
        """The user subscribes themself; False if they already were. With `limit`,
        TooManyTopics when the user already holds that many other subscriptions. A private
        topic needs `entitled` (the publish scope, or the token's claim names it): NotFound
        otherwise, as if it did not exist."""
        ...

    async def grant(self, topic: str, user: str, now: int) -> bool:
        """The backend subscribes a user, to a private topic too; False if they already were
        (a subscription they made themself now counts as granted)."""
        ...

    async def set_access(self, topic: str, private: bool, now: int) -> tuple[bool, Topic]:
        """Make the topic private or public, creating it if it had no row (True then). Turning
        it private drops the subscriptions users made themselves, unless granted."""
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


class ProfileStore(Protocol):
    """What users and admins configure for delivery beyond the inbox."""

    async def preferences(self, user: str) -> Preferences:
        """The user's preferences; the defaults for a user who never set any."""
        ...

    async def set_preferences(self, user: str, preferences: Preferences, now: int) -> None:
        """Replace the user's preferences, their channel switches included."""
        ...

    async def set_switch(self, owner: str, type: str, channel: str, enabled: bool) -> None: ...

    async def type_defaults(self) -> list[TypeDefaults]: ...

    async def set_type_defaults(self, defaults: TypeDefaults, now: int) -> bool:
        """Replace one type's defaults; True if the type had none before."""
        ...

    async def delete_type_defaults(self, type: str) -> bool: ...

    async def contact(self, user: str) -> Contact: ...

    async def set_contact(self, user: str, contact: Contact, now: int) -> bool:
        """Replace the user's contact; True if they had none before."""
        ...

    async def delete_contact(self, user: str) -> bool: ...

    async def push_subscriptions(self, user: str) -> list[PushSubscriptionRecord]: ...

    async def add_push_subscription(
        self, user: str, endpoint: str, p256dh: str, auth: str, now: int, limit: int | None = None
    ) -> tuple[PushSubscriptionRecord, bool]:
        """Store a browser's subscription; True if new. The user who holds a known endpoint
        may register it again (fresh keys); anyone else gets PushEndpointTaken, and a new
        endpoint past the user's `limit` gets TooManyTargets; either changes nothing."""
        ...

    async def remove_push_subscription(self, user: str, endpoint: str) -> bool:
        """Remove the user's own subscription; another user's endpoint is not found."""
        ...

    async def webhooks(self, user: str | None) -> list[Webhook]:
        """The user's webhooks, or every user's with None."""
        ...

    async def add_webhook(
        self,
        user: str,
        url: str,
        secret: str,
        types: tuple[str, ...] | None,
        created_by: str,
        now: int,
        limit: int | None = None,
    ) -> Webhook:
        """Store a webhook for `user`; TooManyTargets, storing nothing, when they already
        have `limit` (None: no limit), whoever registers it."""
        ...

    async def remove_webhook(self, webhook_id: int, user: str | None) -> bool:
        """Remove a webhook of `user` (of anyone's with None)."""
        ...

    async def templates(self) -> list[Template]: ...

    async def template(self, key: str) -> Template | None: ...

    async def put_template(
        self, key: str, document: dict[str, object], by: str, now: int
    ) -> tuple[Template, bool]:
        """Store a new version of the template; True if the key is new."""
        ...

    async def delete_template(self, key: str) -> bool: ...


class DeliveryStore(Protocol):
    """Deliveries through their life: planned, held, queued, attempted, finished.

    Every method is safe to call from several workers at once: each row is taken by one.
    """

    async def has_work(self, now: int, requeue_after: int) -> bool:
        """Whether `route`, `release_held` or `claim_due` would find anything now."""
        ...

    async def route(self, now: int, limit: int, plan: Planner) -> int:
        """Plan the deliveries of up to `limit` notifications waiting for it, each in its own
        transaction with the plan's rows; return how many were planned."""
        ...

    async def release_held(self, now: int, limit: int, decide: Releaser) -> int:
        """Decide up to `limit` held deliveries whose time has come; a `digest` decision
        gathers a user's digested deliveries into one email delivery. Return how many were
        decided."""
        ...

    async def claim_due(
        self, now: int, limit: int, requeue_after: int, per_user: int | None = None
    ) -> list[int]:
        """Mark up to `limit` due deliveries as queued and return their ids: pending ones not
        queued yet, or queued longer than `requeue_after` ms ago (a job that was lost), and
        sending ones whose lease ran out that long ago (a worker that died). With `per_user`,
        no user gets more than that many queued or sending at once: the rest of theirs stay
        in the store, and other users' due deliveries are claimed past them."""
        ...

    async def start_attempt(
        self, delivery_id: int, now: int, lease: int
    ) -> DeliveryTask | Literal["busy"] | None:
        """Take the delivery for one attempt lasting at most `lease` ms: a pending one that is
        due, or one whose previous attempt's lease ran out (its worker died). "busy" while
        another attempt's lease runs; None when there is nothing to attempt now (finished,
        cancelled, held, not due yet, or no such delivery)."""
        ...

    async def finish_attempt(
        self,
        task: DeliveryTask,
        outcome: str,
        status: str,
        detail: str,
        now: int,
        *,
        due_at: int | None = None,
        provider_id: str | None = None,
        remove_target: bool = False,
    ) -> bool:
        """Record the attempt's outcome (the provider's answer: sent, delivered, retry, failed,
        gone) and the delivery's new status (`pending` again with `due_at` for a retry).
        `remove_target` deletes the push subscription or webhook it went to. False if the
        attempt's lease was lost to another worker meanwhile (the outcome is still kept with
        the attempt)."""
        ...

    async def provider_report(
        self, delivery_id: int, created_at: int, channel: str, status: str, detail: str, now: int
    ) -> bool:
        """A provider's later word on a delivery: `delivered`, or `failed` after all. Kept
        even when the attempt that sent it is not recorded yet (it then finishes with it).
        False if there is no such delivery on that channel."""
        ...

    async def deliveries(self, query: DeliveryQuery) -> list[Delivery]: ...

    async def delivery(self, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]] | None: ...

    async def replay(self, delivery_id: int, now: int) -> Delivery | None:
        """Send a failed (dead-lettered) delivery again: the same delivery, a fresh set of
        tries. None if there is no such delivery; its status unchanged if it was not failed."""
        ...

    async def delivery_backlog(self) -> dict[tuple[str, str], int]:
        """(channel, status) → count, for the statuses that are not final, and `failed`."""
        ...

    async def delivery_queue(self, now: int) -> tuple[int, int | None]:
        """The deliveries due by `now` that no worker has taken yet (pending), and the oldest
        one's due_at (None when there are none): how far behind the workers are."""
        ...


class AuditStore(Protocol):
    """The admin audit log, and the instant before which a user's stream tokens are void."""

    async def record_audit(
        self,
        at: int,
        actor: str,
        action: str,
        target: str,
        request_id: str | None,
        detail: dict[str, object],
    ) -> None: ...

    async def audit_entries(
        self, limit: int, before: int | None, action: str | None
    ) -> list[AuditEntry]:
        """Newest first; `before` is an entry id to page back from."""
        ...

    async def revoke_streams(self, user: str, at: int) -> None: ...

    async def streams_revoked_at(self, user: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention run removed; `transactions` counts its write transactions."""

    notifications: int = 0
    inbox: int = 0
    deliveries: int = 0
    attempts: int = 0
    user_events: int = 0
    idempotency_keys: int = 0
    partitions_dropped: tuple[str, ...] = ()
    partitions_created: tuple[str, ...] = ()
    transactions: int = 0


class RetentionStore(Protocol):
    """Forgetting old notifications, in short transactions that never hold long locks."""

    async def retain(self, cutoff: int, batch: int, now: int) -> RetentionReport:
        """Delete notifications created before `cutoff` (ms) and what hangs on them: inbox
        rows, deliveries and their attempts; also state events and idempotency keys older than
        `cutoff`. At most `batch` rows of a table per transaction; a whole partition older than
        `cutoff` is dropped instead. Scheduled notifications not yet released are kept, and
        so is every user's sequence: a cursor never goes back, and a client resuming from
        before the cutoff replays what is left, as if the rest had been deleted."""
        ...

    async def prepare_partitions(self, now: int) -> tuple[str, ...]:
        """Create the notifications partitions for the month of `now` and the next one, if
        missing; return the names created (always none where nothing is partitioned)."""
        ...


class Backend(Store, ProfileStore, DeliveryStore, AuditStore, RetentionStore, Protocol):
    """Everything the SQL backend offers; the composition root hands each part to its user."""


def open_store(settings: Settings) -> Backend:
    """Build the store named by DATABASE_URL: the one place its scheme is interpreted."""
    url = settings.database_url
    scheme = urlsplit(url).scheme
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        from herald_server.store.sqlite import sqlite_dialect

        dialect = sqlite_dialect(url)
    elif scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        from herald_server.store.postgres import postgres_dialect

        dialect = postgres_dialect(
            url,
            settings.db_pool_size,
            settings.db_pool_timeout_seconds,
            settings.db_query_timeout_seconds,
        )
    else:
        raise ConfigError(f"DATABASE_URL: unsupported scheme {scheme!r} in {redact(url)}")
    from herald_server.store.sql import SqlStore

    return SqlStore(dialect)
