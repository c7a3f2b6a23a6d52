"""SqlStore: every query written once, in SQLAlchemy Core, for SQLite and PostgreSQL alike.

Dialect differences (the INSERT construct, the writer lock, the migration lock) come in
through `Dialect`; nothing here branches on the dialect's name.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_server import codec
from herald_server.errors import IdempotencyConflict, NotFound, TooManyTopics
from herald_server.models import (
    ADMIN_OWNER,
    EVERY_TYPE,
    Audience,
    BulkAction,
    Counts,
    Draft,
    Everyone,
    InboxItem,
    InboxPage,
    InboxQuery,
    Notification,
    Published,
    Recipients,
    SentNotification,
    StateAction,
    StateEvent,
    Switches,
    Topic,
    TopicAudience,
    now_ms,
)
from herald_server.store import Backend, IdempotencyClaim, WantsInbox
from herald_server.store.audit import AuditQueries
from herald_server.store.base import CHUNK, SqlBase, chunks, notification_of, readable
from herald_server.store.deliveries import DeliveryQueries
from herald_server.store.migrations import apply_migrations
from herald_server.store.postgres import (
    IN_APP_SWITCHES,
    NOTIFICATION_COLUMNS,
    PUBLISH,
    driver_connection,
)
from herald_server.store.profiles import ProfileQueries
from herald_server.store.retention import RetentionQueries
from herald_server.store.tables import (
    channel_switches,
    idempotency_keys,
    inbox,
    notifications,
    topic_subscriptions,
    topics,
    user_events,
    users,
)

# Which column each state action sets, and to what (None clears it).
_STATE_COLUMNS: dict[str, tuple[str, bool]] = {
    "read": ("read_at", True),
    "unread": ("read_at", False),
    "seen": ("seen_at", True),
    "archive": ("archived_at", True),
    "unarchive": ("archived_at", False),
    "delete": ("deleted_at", True),
}


# Built once (SQLite's; PostgreSQL's is `herald_server.store.postgres.IN_APP_SWITCHES`): on the
# publish path, building and caching a fresh SELECT cost more than running it.
_IN_APP_SWITCHES = select(
    channel_switches.c.owner, channel_switches.c.type, channel_switches.c.enabled
).where(
    channel_switches.c.channel == "in_app",
    channel_switches.c.type.in_(bindparam("types", expanding=True)),
    channel_switches.c.owner.in_(bindparam("owners", expanding=True)),
)


def _visible(now: int) -> ColumnElement[bool]:
    return and_(
        inbox.c.deleted_at.is_(None),
        or_(notifications.c.expires_at.is_(None), notifications.c.expires_at > now),
    )


def _audience_json(audience: Audience) -> str:
    if isinstance(audience, Recipients):
        return codec.dumps_str({"users": list(audience.users)})
    if isinstance(audience, TopicAudience):
        return codec.dumps_str({"topic": audience.name})
    return codec.dumps_str({"everyone": True})


def _audience_from_json(raw: str) -> Audience:
    doc = codec.loads(raw)
    if "users" in doc:
        return Recipients(tuple(doc["users"]))
    if "topic" in doc:
        return TopicAudience(doc["topic"])
    return Everyone()


def _item(row: Any) -> InboxItem:
    return InboxItem(
        seq=row.seq,
        notification=notification_of(row),
        seen_at=row.seen_at,
        read_at=row.read_at,
        archived_at=row.archived_at,
    )


_ITEM_COLUMNS = (
    inbox.c.seq,
    inbox.c.seen_at,
    inbox.c.read_at,
    inbox.c.archived_at,
    notifications.c.id,
    notifications.c.type,
    notifications.c.title,
    notifications.c.body,
    notifications.c.data,
    notifications.c.priority,
    notifications.c.topic,
    notifications.c.collapse_key,
    notifications.c.created_at,
    notifications.c.expires_at,
)
_ITEMS = select(*_ITEM_COLUMNS).select_from(
    inbox.join(notifications, notifications.c.id == inbox.c.notification_id)
)


class SqlStore(ProfileQueries, DeliveryQueries, AuditQueries, RetentionQueries, SqlBase):
    """The inbox and publishing here; preferences and deliveries in their own modules."""

    # --- publishing ---------------------------------------------------------------------

    async def publish(
        self,
        draft: Draft,
        audience: Audience,
        claim: IdempotencyClaim | None,
        now: int,
        wants_inbox: WantsInbox | None = None,
    ) -> Published:
        single = (
            self._dialect.name == "postgresql"
            and claim is None
            and _written_in_one_statement(draft, audience, now)
        )
        async with self._write(transaction=not single) as conn:
            if claim is not None:
                prior = await self._claim(conn, claim, now)
                if prior is not None:
                    return prior
            if draft.topic is not None:
                await self._ensure_topic(conn, draft.topic, now)
            recipients = await self._resolve(conn, audience)
            if draft.send_at is not None and draft.send_at > now:
                notification_id = await self._insert_notification(
                    conn, draft, now, pending_audience=_audience_json(audience)
                )
                result = Published(notification_id, len(recipients), scheduled=True)
            else:
                inboxed = await self._inboxed(conn, recipients, draft, wants_inbox)
                notification_id, targets = await self._insert_delivered(
                    conn, draft, now, recipients, inboxed
                )
                result = Published(
                    notification_id,
                    len(recipients),
                    _draft_notification(notification_id, draft, now),
                    targets,
                )
            if claim is not None:
                await conn.execute(
                    update(idempotency_keys)
                    .where(
                        idempotency_keys.c.publisher == claim[0], idempotency_keys.c.key == claim[1]
                    )
                    .values(
                        notification_id=notification_id,
                        recipients=result.recipients,
                        scheduled=int(result.scheduled),
                    )
                )
            return result

    async def _claim(
        self, conn: AsyncConnection, claim: IdempotencyClaim, now: int
    ) -> Published | None:
        """Take the key, or return what the request that first took it got."""
        publisher, key, fingerprint = claim
        taken = await conn.execute(
            self._insert(idempotency_keys)
            .values(publisher=publisher, key=key, fingerprint=fingerprint, created_at=now)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        if taken.first() is not None:
            return None
        row = (
            await conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.publisher == publisher, idempotency_keys.c.key == key
                )
            )
        ).one()
        if row.fingerprint != fingerprint:
            raise IdempotencyConflict(f"Idempotency-Key {key!r} was first used with another body")
        scheduled = bool(row.scheduled)
        return Published(row.notification_id, row.recipients, scheduled=scheduled, replayed=True)

    async def _insert_notification(
        self,
        conn: AsyncConnection,
        draft: Draft,
        now: int,
        *,
        pending_audience: str | None = None,
        offline: str | None = None,
    ) -> int:
        result = await conn.execute(
            notifications.insert()
            .values(**_notification_values(draft, now, pending_audience, offline))
            .returning(notifications.c.id)
        )
        return int(result.scalar_one())

    async def _insert_delivered(
        self,
        conn: AsyncConnection,
        draft: Draft,
        now: int,
        recipients: Sequence[str],
        inboxed: Sequence[str],
    ) -> tuple[int, tuple[tuple[str, int], ...]]:
        """Store a notification that goes out now, with an inbox item for each of `inboxed`:
        its id and each target's seq. On PostgreSQL it is one statement whatever the number
        of recipients (`herald_server.store.postgres.PUBLISH`)."""
        offline = _offline(recipients, inboxed)
        if self._dialect.name != "postgresql":
            notification_id = await self._insert_notification(conn, draft, now, offline=offline)
            return notification_id, await self._deliver(conn, notification_id, inboxed, draft, now)
        values = _notification_values(draft, now, None, offline)
        rows = await (await driver_connection(conn)).fetch(
            PUBLISH, *(values[column] for column in NOTIFICATION_COLUMNS), list(inboxed)
        )
        notification_id = int(rows[0]["id"])
        targets = tuple(
            (row["user_id"], row["last_seq"]) for row in rows if row["user_id"] is not None
        )
        if draft.collapse_key is not None and targets:
            await self._collapse(conn, inboxed, draft.collapse_key, notification_id, now)
        return notification_id, targets

    async def _resolve(self, conn: AsyncConnection, audience: Audience) -> list[str]:
        """The recipients' user ids, sorted: every writer locks user rows in the same order,
        so concurrent multi-recipient publishes cannot deadlock."""
        if isinstance(audience, Recipients):
            return sorted(set(audience.users))
        if isinstance(audience, TopicAudience):
            subs = topic_subscriptions
            query = select(subs.c.user_id).where(subs.c.topic == audience.name)
            if await self._private(conn, audience.name):
                query = query.where(subs.c.granted == 1)
        else:
            query = select(users.c.user_id)
        return sorted((await conn.execute(query)).scalars())

    async def _inboxed(
        self,
        conn: AsyncConnection,
        recipients: Sequence[str],
        draft: Draft,
        wants_inbox: WantsInbox | None,
    ) -> list[str]:
        """The recipients who get an inbox item, still sorted. One query reads every in-app
        switch that could matter (the users' and the admin's, for this type and for all)."""
        requested = None if draft.channels is None else frozenset(draft.channels)
        if requested is not None and "in_app" not in requested:
            return []
        if wants_inbox is None:
            return list(recipients)
        switches: dict[str, Switches] = {}
        for chunk in chunks(recipients):
            types, owners = [draft.type, EVERY_TYPE], [*chunk, ADMIN_OWNER]
            if self._dialect.name == "postgresql":
                driver = await driver_connection(conn)
                rows = [tuple(row) for row in await driver.fetch(IN_APP_SWITCHES, types, owners)]
            else:
                result = await conn.execute(_IN_APP_SWITCHES, {"types": types, "owners": owners})
                rows = [tuple(row) for row in result]
            for owner, type_, enabled in rows:
                switches.setdefault(owner, {})[type_] = {"in_app": bool(enabled)}
        admin = switches.get(ADMIN_OWNER, {})
        return [
            user
            for user in recipients
            if wants_inbox(draft.type, requested, switches.get(user, {}), admin)
        ]

    async def _deliver(
        self,
        conn: AsyncConnection,
        notification_id: int,
        recipients: Sequence[str],
        draft: Draft,
        now: int,
    ) -> tuple[tuple[str, int], ...]:
        """Give each recipient an inbox item with their next seq."""
        targets = await self._advance(conn, recipients, now)
        if draft.collapse_key is not None and targets:
            await self._collapse(conn, recipients, draft.collapse_key, notification_id, now)
        for start in range(0, len(targets), CHUNK):
            await conn.execute(
                inbox.insert(),
                [
                    {"user_id": user, "seq": seq, "notification_id": notification_id}
                    for user, seq in targets[start : start + CHUNK]
                ],
            )
        return targets

    async def _advance(
        self, conn: AsyncConnection, recipients: Sequence[str], now: int
    ) -> tuple[tuple[str, int], ...]:
        """Take the next seq of each recipient, locking their rows until commit."""
        taken: list[tuple[str, int]] = []
        for chunk in chunks(recipients):
            stmt = self._insert(users).values(
                [{"user_id": user, "last_seq": 1, "created_at": now} for user in chunk]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[users.c.user_id], set_={"last_seq": users.c.last_seq + 1}
            ).returning(users.c.user_id, users.c.last_seq)
            taken.extend((row.user_id, row.last_seq) for row in await conn.execute(stmt))
        return tuple(taken)

    async def _collapse(
        self,
        conn: AsyncConnection,
        recipients: Sequence[str],
        collapse_key: str,
        notification_id: int,
        now: int,
    ) -> None:
        """A newer notification with the same collapse key replaces the older ones."""
        older = select(notifications.c.id).where(
            notifications.c.collapse_key == collapse_key, notifications.c.id != notification_id
        )
        for chunk in chunks(recipients):
            await conn.execute(
                update(inbox)
                .where(
                    inbox.c.user_id.in_(chunk),
                    inbox.c.deleted_at.is_(None),
                    inbox.c.notification_id.in_(older),
                )
                .values(deleted_at=now)
            )

    async def _ensure_topic(self, conn: AsyncConnection, name: str, now: int) -> None:
        """A topic published to is listed from then on, public unless configured otherwise."""
        await conn.execute(
            self._insert(topics)
            .values(name=name, created_at=now, private=0)
            .on_conflict_do_nothing()
        )

    async def release_due(
        self, now: int, limit: int, wants_inbox: WantsInbox | None = None
    ) -> list[Published]:
        released = []
        for _ in range(limit):
            one = await self._release_one(now, wants_inbox)
            if one is None:
                break
            released.append(one)
        return released

    async def _release_one(self, now: int, wants_inbox: WantsInbox | None) -> Published | None:
        """One due notification per transaction: its recipients are locked in sorted order and
        released at commit, so releasers on several nodes and publishers never deadlock."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    select(notifications)
                    .where(
                        notifications.c.pending_audience.is_not(None),
                        notifications.c.send_at <= now,
                    )
                    .order_by(notifications.c.send_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return None
            draft = _row_draft(row)
            recipients = await self._resolve(conn, _audience_from_json(row.pending_audience))
            inboxed = await self._inboxed(conn, recipients, draft, wants_inbox)
            await conn.execute(
                update(notifications)
                .where(notifications.c.id == row.id)
                .values(
                    pending_audience=None,
                    created_at=now,
                    route_pending=int(_routes(draft)),
                    offline_recipients=_offline(recipients, inboxed),
                )
            )
            targets = await self._deliver(conn, row.id, inboxed, draft, now)
            return Published(
                row.id, len(recipients), _draft_notification(row.id, draft, now), targets
            )

    # --- reading --------------------------------------------------------------------------

    async def inbox(self, user: str, query: InboxQuery, now: int) -> InboxPage:
        conditions = [inbox.c.user_id == user, _visible(now)]
        archived = inbox.c.archived_at
        conditions.append(archived.is_not(None) if query.archived else archived.is_(None))
        if query.unread is not None:
            read = inbox.c.read_at
            conditions.append(read.is_(None) if query.unread else read.is_not(None))
        if query.type is not None:
            conditions.append(notifications.c.type == query.type)
        if query.topic is not None:
            conditions.append(notifications.c.topic == query.topic)
        if query.before is not None:
            conditions.append(inbox.c.seq < query.before)
        if query.after is not None:
            conditions.append(inbox.c.seq > query.after)
        order = inbox.c.seq.asc() if query.after is not None else inbox.c.seq.desc()
        stmt = _ITEMS.where(*conditions).order_by(order).limit(query.limit + 1)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        page = rows[: query.limit]
        return InboxPage(
            readable(page, _item),
            has_more=len(rows) > query.limit,
            last_seq=page[-1].seq if page else None,
        )

    async def item(self, user: str, notification_id: int, now: int) -> InboxItem | None:
        stmt = _ITEMS.where(
            inbox.c.user_id == user, inbox.c.notification_id == notification_id, _visible(now)
        )
        async with self._read() as conn:
            row = (await conn.execute(stmt)).first()
        found = readable([] if row is None else [row], _item)
        return found[0] if found else None

    async def recent(self, limit: int, before: int | None) -> list[SentNotification]:
        stmt = select(notifications).order_by(notifications.c.id.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(notifications.c.id < before)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
            tallies: dict[int, tuple[int, int]] = {}
            if rows:
                tally = (
                    select(
                        inbox.c.notification_id,
                        func.count().label("recipients"),
                        func.count(inbox.c.read_at).label("read"),
                    )
                    .where(inbox.c.notification_id.in_([row.id for row in rows]))
                    .group_by(inbox.c.notification_id)
                )
                tallies = {
                    row.notification_id: (row.recipients, row.read)
                    for row in await conn.execute(tally)
                }

        def sent(row: Row[Any]) -> SentNotification:
            recipients, read = tallies.get(row.id, (0, 0))
            held = row.pending_audience is not None
            return SentNotification(
                notification_of(row), row.publisher, recipients, read, row.send_at if held else None
            )

        return readable(rows, sent)

    async def counts(self, user: str, now: int) -> Counts:
        async with self._read() as conn:
            return await self._counts(conn, user, now)

    async def _counts(self, conn: AsyncConnection, user: str, now: int) -> Counts:
        # The head in the same statement, hence the same snapshot as the counts.
        head = select(users.c.last_seq).where(users.c.user_id == user).scalar_subquery()
        stmt = (
            select(
                func.coalesce(func.sum(case((inbox.c.read_at.is_(None), 1), else_=0)), 0),
                func.coalesce(func.sum(case((inbox.c.seen_at.is_(None), 1), else_=0)), 0),
                func.coalesce(head, 0),
            )
            .select_from(inbox.join(notifications, notifications.c.id == inbox.c.notification_id))
            .where(inbox.c.user_id == user, inbox.c.archived_at.is_(None), _visible(now))
        )
        unread, unseen, seq = (await conn.execute(stmt)).one()
        return Counts(int(unread), int(unseen), int(seq))

    async def head(self, user: str) -> int:
        async with self._read() as conn:
            seq = (
                await conn.execute(select(users.c.last_seq).where(users.c.user_id == user))
            ).scalar()
        return int(seq or 0)

    async def events_since(
        self, user: str, after: int, limit: int, now: int
    ) -> Sequence[InboxItem | StateEvent]:
        items_stmt = (
            _ITEMS.where(inbox.c.user_id == user, inbox.c.seq > after, _visible(now))
            .order_by(inbox.c.seq)
            .limit(limit)
        )
        events_stmt = (
            select(user_events)
            .where(user_events.c.user_id == user, user_events.c.seq > after)
            .order_by(user_events.c.seq)
            .limit(limit)
        )
        async with self._read() as conn:
            items = readable(await conn.execute(items_stmt), _item)
            events = [_state_event(row) for row in await conn.execute(events_stmt)]
        merged: list[InboxItem | StateEvent] = [*items, *events]
        merged.sort(key=lambda event: event.seq)
        return merged[:limit]

    # --- state changes --------------------------------------------------------------------

    async def change(
        self, user: str, notification_id: int, action: StateAction, now: int
    ) -> tuple[bool, StateEvent | None]:
        column_name, setting = _STATE_COLUMNS[action]
        column = inbox.c[column_name]
        async with self._write() as conn:
            await self._lock_user(conn, user)
            found = (
                await conn.execute(
                    select(inbox.c.seq)
                    .select_from(
                        inbox.join(notifications, notifications.c.id == inbox.c.notification_id)
                    )
                    .where(
                        inbox.c.user_id == user,
                        inbox.c.notification_id == notification_id,
                        _visible(now),
                    )
                )
            ).first()
            if found is None:
                return False, None
            where = [inbox.c.user_id == user, inbox.c.notification_id == notification_id]
            where.append(column.is_(None) if setting else column.is_not(None))
            values: dict[str, Any] = {column_name: now if setting else None}
            if action == "read":
                values["seen_at"] = func.coalesce(inbox.c.seen_at, now)
            changed = await conn.execute(update(inbox).where(*where).values(values))
            if changed.rowcount == 0:
                return True, None
            event = await self._record(conn, user, action, notification_id, None, now)
            return True, event

    async def change_all(
        self, user: str, action: BulkAction, up_to: int | None, now: int
    ) -> StateEvent | None:
        column_name, _ = _STATE_COLUMNS[action]
        column = inbox.c[column_name]
        async with self._write() as conn:
            await self._lock_user(conn, user)
            if up_to is None:
                up_to = int(
                    (
                        await conn.execute(select(users.c.last_seq).where(users.c.user_id == user))
                    ).scalar()
                    or 0
                )
            values: dict[str, Any] = {column_name: now}
            if action == "read":
                values["seen_at"] = func.coalesce(inbox.c.seen_at, now)
            changed = await conn.execute(
                update(inbox)
                .where(
                    inbox.c.user_id == user,
                    inbox.c.seq <= up_to,
                    inbox.c.deleted_at.is_(None),
                    column.is_(None),
                )
                .values(values)
            )
            if changed.rowcount == 0:
                return None
            return await self._record(conn, user, action, None, up_to, now)

    async def _lock_user(self, conn: AsyncConnection, user: str) -> None:
        """Take the user's row before touching their inbox rows: publishing locks users, then
        inbox rows, and a change must lock in that same order or the two can deadlock."""
        await conn.execute(select(users.c.user_id).where(users.c.user_id == user).with_for_update())

    async def _record(
        self,
        conn: AsyncConnection,
        user: str,
        action: str,
        notification_id: int | None,
        up_to: int | None,
        now: int,
    ) -> StateEvent:
        ((_, seq),) = await self._advance(conn, [user], now)
        counts = await self._counts(conn, user, now)
        await conn.execute(
            user_events.insert().values(
                user_id=user,
                seq=seq,
                action=action,
                notification_id=notification_id,
                up_to=up_to,
                at=now,
                unread=counts.unread,
                unseen=counts.unseen,
            )
        )
        return StateEvent(seq, action, notification_id, up_to, now, counts)

    # --- users and topics -----------------------------------------------------------------

    async def ensure_user(self, user: str, now: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                self._insert(users)
                .values(user_id=user, last_seq=0, created_at=now)
                .on_conflict_do_nothing()
            )

    async def topics(
        self,
        user: str,
        after: str | None,
        limit: int,
        *,
        every: bool = False,
        named: Collection[str] = (),
    ) -> list[Topic]:
        subs = topic_subscriptions
        # Topics published to or configured have a row; the others exist while subscribed.
        names = union(
            select(topics.c.name.label("name")), select(subs.c.topic.label("name"))
        ).subquery("names")
        private = func.coalesce(topics.c.private, 0)
        counted = and_(subs.c.user_id.is_not(None), or_(private == 0, subs.c.granted == 1))
        subscribers = func.coalesce(func.sum(case((counted, 1), else_=0)), 0)
        mine = func.coalesce(func.sum(case((and_(counted, subs.c.user_id == user), 1), else_=0)), 0)
        stmt = (
            select(names.c.name, private, subscribers, mine)
            .select_from(
                names.outerjoin(topics, topics.c.name == names.c.name).outerjoin(
                    subs, subs.c.topic == names.c.name
                )
            )
            .group_by(names.c.name, topics.c.private)
            .order_by(names.c.name)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(names.c.name > after)
        if not every:
            # A private topic is shown only to its subscribers and to those who may join it.
            stmt = stmt.having(or_(private == 0, mine > 0, names.c.name.in_(list(named))))
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            Topic(name, bool(held), int(count), bool(closed)) for name, closed, count, held in rows
        ]

    async def subscribe(
        self, user: str, topic: str, now: int, limit: int | None = None, *, entitled: bool = False
    ) -> bool:
        async with self._write() as conn:
            await conn.execute(
                self._insert(users)
                .values(user_id=user, last_seq=0, created_at=now)
                .on_conflict_do_nothing()
            )
            if limit is not None:
                # Under the user's row lock, so concurrent subscribes cannot both pass.
                await self._lock_user(conn, user)
                await self._check_topic_limit(conn, user, topic, limit)
            # The topic's row stays locked until commit, so it cannot turn private between
            # this check and the subscription.
            if await self._private(conn, topic, lock=True) and not entitled:
                raise NotFound(f"no topic {topic!r}")
            return await self._join(conn, topic, user, now, entitled)

    async def grant(self, topic: str, user: str, now: int) -> bool:
        async with self._write() as conn:
            await conn.execute(
                self._insert(users)
                .values(user_id=user, last_seq=0, created_at=now)
                .on_conflict_do_nothing()
            )
            return await self._join(conn, topic, user, now, granted=True)

    async def _join(
        self, conn: AsyncConnection, topic: str, user: str, now: int, granted: bool
    ) -> bool:
        """Subscribe; a grant upgrades a subscription the user made themself."""
        subs = topic_subscriptions
        inserted = await conn.execute(
            self._insert(subs)
            .values(topic=topic, user_id=user, created_at=now, granted=int(granted))
            .on_conflict_do_nothing()
        )
        if inserted.rowcount:
            return True
        if granted:
            await conn.execute(
                update(subs)
                .where(subs.c.topic == topic, subs.c.user_id == user, subs.c.granted == 0)
                .values(granted=1)
            )
        return False

    async def set_access(self, topic: str, private: bool, now: int) -> tuple[bool, Topic]:
        subs = topic_subscriptions
        async with self._write() as conn:
            prior = await self._private(conn, topic, lock=True)
            await conn.execute(
                self._insert(topics)
                .values(name=topic, created_at=now, private=int(private))
                .on_conflict_do_update(
                    index_elements=[topics.c.name], set_={"private": int(private)}
                )
            )
            if private:
                # Users who joined by themselves while it was public are no longer let in.
                await conn.execute(subs.delete().where(subs.c.topic == topic, subs.c.granted == 0))
            count = (
                await conn.execute(
                    select(func.count()).select_from(subs).where(subs.c.topic == topic)
                )
            ).scalar_one()
        return prior is None, Topic(topic, False, int(count), private)

    async def _private(self, conn: AsyncConnection, topic: str, lock: bool = False) -> bool | None:
        """Whether the topic is private; None when it has no row (public, never configured)."""
        stmt = select(topics.c.private).where(topics.c.name == topic)
        if lock:
            stmt = stmt.with_for_update()
        found = (await conn.execute(stmt)).scalar()
        return None if found is None else bool(found)

    async def _check_topic_limit(
        self, conn: AsyncConnection, user: str, topic: str, limit: int
    ) -> None:
        mine = select(topic_subscriptions.c.topic).where(topic_subscriptions.c.user_id == user)
        held = set((await conn.execute(mine)).scalars())
        if topic not in held and len(held) >= limit:
            raise TooManyTopics(f"subscribed to {len(held)} topics; at most {limit}")

    async def unsubscribe(self, user: str, topic: str) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                topic_subscriptions.delete().where(
                    topic_subscriptions.c.topic == topic, topic_subscriptions.c.user_id == user
                )
            )
            return bool(result.rowcount)

    # --- operations -----------------------------------------------------------------------

    async def purge_idempotency(self, older_than: int) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < older_than)
            )
            return int(result.rowcount)

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(select(1))

    async def migrate(self) -> list[str]:
        async with self._engine.begin() as conn:
            await self._dialect.lock_migrations(conn)
            applied = await apply_migrations(conn, self._dialect.name)
            # On PostgreSQL, this month's and next month's notifications partitions.
            await self._prepare_partitions(conn, now_ms())
            return applied

    async def aclose(self) -> None:
        await self._engine.dispose()


def _draft_notification(notification_id: int, draft: Draft, now: int) -> Notification:
    return Notification(
        id=notification_id,
        type=draft.type,
        title=draft.title,
        body=draft.body,
        data=draft.data,
        priority=draft.priority,
        topic=draft.topic,
        collapse_key=draft.collapse_key,
        created_at=now,
        expires_at=draft.expires_at,
    )


def _notification_values(
    draft: Draft, now: int, pending_audience: str | None, offline: str | None
) -> dict[str, Any]:
    return {
        "type": draft.type,
        "title": draft.title,
        "body": draft.body,
        "data": codec.dumps_str(draft.data),
        "priority": draft.priority,
        "topic": draft.topic,
        "collapse_key": draft.collapse_key,
        "publisher": draft.publisher,
        "created_at": now,
        "send_at": draft.send_at,
        "expires_at": draft.expires_at,
        "pending_audience": pending_audience,
        "route_pending": int(pending_audience is None and _routes(draft)),
        "channels": None if draft.channels is None else codec.dumps_str(draft.channels),
        "content": draft.content,
        "template": draft.template,
        "offline_recipients": offline,
    }


def _written_in_one_statement(draft: Draft, audience: Audience, now: int) -> bool:
    """Whether publishing writes with one statement on PostgreSQL (`_insert_delivered`), so
    it needs no transaction around it: named recipients, who need no lookup, and nothing else
    to write (no topic to create, no older items to collapse, not held for later)."""
    return (
        isinstance(audience, Recipients)
        and draft.topic is None
        and draft.collapse_key is None
        and (draft.send_at is None or draft.send_at <= now)
    )


def _routes(draft: Draft) -> bool:
    """Whether any channel beyond the inbox may be asked of it: then a worker plans it."""
    return draft.channels is None or any(channel != "in_app" for channel in draft.channels)


def _offline(recipients: Sequence[str], inboxed: Sequence[str]) -> str | None:
    """The recipients without an inbox item, as JSON for the router; None when there are none."""
    if len(inboxed) == len(recipients):
        return None
    kept = set(inboxed)
    return codec.dumps_str([user for user in recipients if user not in kept])


def _row_draft(row: Row[Any]) -> Draft:
    return Draft(
        type=row.type,
        title=row.title,
        body=row.body,
        data=codec.loads(row.data),
        priority=row.priority,
        publisher=row.publisher,
        topic=row.topic,
        collapse_key=row.collapse_key,
        send_at=row.send_at,
        expires_at=row.expires_at,
        channels=None if row.channels is None else tuple(codec.loads(row.channels)),
        content=row.content,
        template=row.template,
    )


def _state_event(row: Row[Any]) -> StateEvent:
    return StateEvent(
        seq=row.seq,
        action=row.action,
        notification_id=row.notification_id,
        up_to=row.up_to,
        at=row.at,
        counts=Counts(row.unread, row.unseen, row.seq),
    )


_: type[Backend] = SqlStore
