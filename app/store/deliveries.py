"""Deliveries through their life, in the store: it is the source of truth for every delivery's
state, and the job queue only carries "attempt delivery N now" between processes.

Each step takes its rows with `FOR UPDATE SKIP LOCKED` (on SQLite, the single writer), so any
number of workers can plan, release and queue at once and each row moves once. An attempt
holds its delivery under a lease; a worker that dies leaves the lease to run out, and the next
worker to take the job finds the delivery free again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_server import codec
from herald_server.models import (
    ADMIN_OWNER,
    EVERY_TYPE,
    Contact,
    Delivery,
    DeliveryAttempt,
    DeliveryQuery,
    DeliveryTask,
    EscalationStep,
    HeldDelivery,
    Notification,
    PlannedDelivery,
    Preferences,
    RecipientProfile,
    Release,
    RoutingRequest,
    Switches,
)
from herald_server.store import DeliveryStore, Planner, Releaser
from herald_server.store.base import SqlBase, chunks, notification_of
from herald_server.store.profiles import (
    escalation_of,
    group_switches,
    preferences_of,
    push_subscription_of,
    webhook_of,
)
from herald_server.store.tables import (
    channel_switches,
    contacts,
    deliveries,
    delivery_attempts,
    inbox,
    notification_types,
    notifications,
    preferences,
    push_subscriptions,
    webhooks,
)

# Statuses a delivery can still leave, and `failed`, which waits for an operator: the backlog.
BACKLOG_STATUSES = ("held", "pending", "sending", "failed")
# The reason of deliveries held for the user's next digest email
# (herald_server.core.routing.DIGEST).
DIGEST = "digest"
# A delivery the user has read in the inbox reports `read` once it has been sent.
READABLE_STATUSES = ("sent", "delivered")
_INBOX_OF_DELIVERY = and_(
    inbox.c.user_id == deliveries.c.user_id,
    inbox.c.notification_id == deliveries.c.notification_id,
)


class DeliveryQueries(SqlBase):
    async def has_work(self, now: int, requeue_after: int) -> bool:
        """One read, outside any write transaction: an idle dispatcher costs a lookup, not
        SQLite's writer lock or PostgreSQL row locks."""
        stale = now - requeue_after
        due = or_(
            and_(deliveries.c.status == "held", deliveries.c.due_at <= now),
            and_(
                deliveries.c.status == "pending",
                deliveries.c.due_at <= now,
                or_(deliveries.c.queued_at.is_(None), deliveries.c.queued_at < stale),
            ),
            and_(deliveries.c.status == "sending", deliveries.c.lease_until < stale),
        )
        stmt = select(
            select(notifications.c.id).where(notifications.c.route_pending == 1).exists()
            | select(deliveries.c.id).where(due).exists()
        )
        async with self._read() as conn:
            return bool((await conn.execute(stmt)).scalar())

    # --- routing --------------------------------------------------------------------------

    async def route(self, now: int, limit: int, plan: Planner) -> int:
        for routed in range(limit):
            if not await self._route_one(now, plan):
                return routed
        return limit

    async def _route_one(self, now: int, plan: Planner) -> bool:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    select(notifications)
                    .where(notifications.c.route_pending == 1)
                    .order_by(notifications.c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return False
            await conn.execute(
                update(notifications)
                .where(notifications.c.id == row.id)
                .values(route_pending=0, offline_recipients=None)
            )
            inboxed = await conn.execute(
                select(inbox.c.user_id).where(inbox.c.notification_id == row.id)
            )
            offline = codec.loads(row.offline_recipients) if row.offline_recipients else []
            users = sorted({*inboxed.scalars(), *offline})
            request = RoutingRequest(
                notification_id=row.id,
                type=row.type,
                priority=row.priority,
                requested=None if row.channels is None else frozenset(codec.loads(row.channels)),
                created_at=row.created_at,
                recipients=await self._profiles(conn, users),
                admin=await self._admin_switches(conn),
                escalation=await self._escalation(conn, row.type),
            )
            await self._insert_planned(conn, row.id, plan(request), now)
            return True

    async def _profiles(
        self, conn: AsyncConnection, users: Sequence[str]
    ) -> list[RecipientProfile]:
        profiles = []
        for chunk in chunks(users):
            prefs = {
                row.user_id: row
                for row in await conn.execute(
                    select(preferences).where(preferences.c.user_id.in_(chunk))
                )
            }
            switches: dict[str, list[tuple[str, str, bool]]] = {}
            for owner, type_, channel, enabled in await conn.execute(
                select(
                    channel_switches.c.owner,
                    channel_switches.c.type,
                    channel_switches.c.channel,
                    channel_switches.c.enabled,
                ).where(channel_switches.c.owner.in_(chunk))
            ):
                switches.setdefault(owner, []).append((type_, channel, enabled))
            reach = {
                row.user_id: Contact(row.email, row.phone)
                for row in await conn.execute(select(contacts).where(contacts.c.user_id.in_(chunk)))
            }
            pushes: dict[str, list[int]] = {}
            for row in await conn.execute(
                select(push_subscriptions.c.user_id, push_subscriptions.c.id)
                .where(push_subscriptions.c.user_id.in_(chunk))
                .order_by(push_subscriptions.c.id)
            ):
                pushes.setdefault(row.user_id, []).append(row.id)
            hooks: dict[str, list[tuple[int, tuple[str, ...] | None]]] = {}
            for row in await conn.execute(
                select(webhooks).where(webhooks.c.user_id.in_(chunk)).order_by(webhooks.c.id)
            ):
                hook = webhook_of(row)
                hooks.setdefault(hook.user, []).append((hook.id, hook.types))
            for user in chunk:
                grouped = group_switches(switches.get(user, []))
                chosen = (
                    preferences_of(prefs[user], grouped)
                    if user in prefs
                    else Preferences(switches=grouped)
                )
                profiles.append(
                    RecipientProfile(
                        user,
                        chosen,
                        reach.get(user, Contact()),
                        tuple(pushes.get(user, ())),
                        tuple(hooks.get(user, ())),
                    )
                )
        return profiles

    async def _admin_switches(self, conn: AsyncConnection) -> Switches:
        rows = await conn.execute(
            select(
                channel_switches.c.type, channel_switches.c.channel, channel_switches.c.enabled
            ).where(channel_switches.c.owner == ADMIN_OWNER)
        )
        return group_switches(rows)

    async def _escalation(self, conn: AsyncConnection, type_: str) -> tuple[EscalationStep, ...]:
        """The type's own escalation rule, or the one for every type."""
        rows = {
            row.type: row.escalation
            for row in await conn.execute(
                select(notification_types).where(notification_types.c.type.in_([type_, EVERY_TYPE]))
            )
        }
        raw = rows.get(type_, rows.get(EVERY_TYPE))
        return () if raw is None else escalation_of(raw)

    async def _insert_planned(
        self,
        conn: AsyncConnection,
        notification_id: int | None,
        planned: Sequence[PlannedDelivery],
        now: int,
    ) -> list[int]:
        """Insert the planned deliveries (a plan run twice adds nothing); return their ids."""
        ids: list[int] = []
        for chunk in chunks(planned):
            rows = [
                {
                    "notification_id": notification_id,
                    "user_id": one.user,
                    "channel": one.channel,
                    "target": one.target,
                    "step": one.step,
                    "status": one.status,
                    "reason": one.reason,
                    "due_at": one.due_at,
                    "attempts": 0,
                    "tries": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for one in chunk
            ]
            inserted = await conn.execute(
                self._insert(deliveries)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(deliveries.c.id)
            )
            ids.extend(inserted.scalars())
        return ids

    # --- held deliveries ------------------------------------------------------------------

    async def release_held(self, now: int, limit: int, decide: Releaser) -> int:
        async with self._write() as conn:
            decided = [(row, decide(row)) for row in await self._due_held(conn, now, limit)]
            for user, target in await self._due_digests(conn, now, limit):
                # One worker gathers a user's digest, all of it: another that finds it taken
                # leaves it, or the user would get two digests of half each.
                if await self._dialect.try_lock(conn, f"herald digest {user} {target}"):
                    rows = await self._due_held(conn, now, None, (user, target))
                    decided.extend((row, decide(row)) for row in rows)
            await self._apply_releases(conn, decided, now)
            await self._gather_digests(conn, decided, now)
            return len(decided)

    async def _due_digests(self, conn: AsyncConnection, now: int, limit: int) -> list[Any]:
        """(user, address) of digests due, oldest first."""
        rows = await conn.execute(
            select(deliveries.c.user_id, deliveries.c.target)
            .where(
                deliveries.c.status == "held",
                deliveries.c.reason == DIGEST,
                deliveries.c.due_at <= now,
            )
            .group_by(deliveries.c.user_id, deliveries.c.target)
            .order_by(func.min(deliveries.c.due_at), deliveries.c.user_id, deliveries.c.target)
            .limit(limit)
        )
        return list(rows)

    async def _due_held(
        self,
        conn: AsyncConnection,
        now: int,
        limit: int | None,
        digest_of: tuple[str, str] | None = None,
    ) -> list[HeldDelivery]:
        """Due held deliveries other than digests (taken with SKIP LOCKED), or, with
        `digest_of`, all of one user's due digest (its lock is held: nobody skips)."""
        stmt = (
            select(
                deliveries.c.id,
                deliveries.c.user_id,
                deliveries.c.channel,
                deliveries.c.target,
                deliveries.c.reason,
                notifications.c.priority,
                notifications.c.expires_at,
                inbox.c.seen_at,
                inbox.c.read_at,
            )
            .select_from(
                deliveries.join(
                    notifications, notifications.c.id == deliveries.c.notification_id
                ).outerjoin(inbox, _INBOX_OF_DELIVERY)
            )
            .where(deliveries.c.status == "held", deliveries.c.due_at <= now)
            .order_by(deliveries.c.due_at, deliveries.c.id)
        )
        if digest_of is None:
            stmt = stmt.where(
                or_(deliveries.c.reason.is_(None), deliveries.c.reason != DIGEST)
            ).with_for_update(skip_locked=True, of=deliveries)
        else:
            stmt = stmt.where(
                deliveries.c.user_id == digest_of[0],
                deliveries.c.target == digest_of[1],
                deliveries.c.reason == DIGEST,
            ).with_for_update(of=deliveries)
        if limit is not None:
            stmt = stmt.limit(limit)
        rows = (await conn.execute(stmt)).all()
        chosen = await self._preferences_of(conn, sorted({row.user_id for row in rows}))
        return [
            HeldDelivery(
                id=row.id,
                user=row.user_id,
                channel=row.channel,
                target=row.target,
                reason=row.reason,
                priority=row.priority,
                preferences=chosen[row.user_id],
                seen=row.seen_at is not None,
                read=row.read_at is not None,
                expired=row.expires_at is not None and row.expires_at <= now,
            )
            for row in rows
        ]

    async def _preferences_of(
        self, conn: AsyncConnection, users: Sequence[str]
    ) -> dict[str, Preferences]:
        found = {user: Preferences() for user in users}
        for chunk in chunks(users):
            for row in await conn.execute(
                select(preferences).where(preferences.c.user_id.in_(chunk))
            ):
                found[row.user_id] = preferences_of(row, {})
        return found

    async def _apply_releases(
        self, conn: AsyncConnection, decided: Sequence[tuple[HeldDelivery, Release]], now: int
    ) -> None:
        for row, release in decided:
            values: dict[str, Any] = {"updated_at": now}
            if release.action == "send":
                values |= {"status": "pending", "due_at": now, "queued_at": None}
            elif release.action == "hold":
                values |= {"due_at": release.until, "reason": release.reason}
            elif release.action == "cancel":
                values |= {"status": "cancelled", "reason": release.reason}
            else:
                continue
            await conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(values))

    async def _gather_digests(
        self, conn: AsyncConnection, decided: Sequence[tuple[HeldDelivery, Release]], now: int
    ) -> None:
        """One pending email delivery per (user, address) for everything decided `digest`."""
        members: dict[tuple[str, str], list[int]] = {}
        for row, release in decided:
            if release.action == "digest":
                members.setdefault((row.user, row.target), []).append(row.id)
        for (user, target), ids in sorted(members.items()):
            digest = PlannedDelivery(
                user, "email", target, 0, "pending", now, f"digest of {len(ids)}"
            )
            (digest_id,) = await self._insert_planned(conn, None, [digest], now)
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(status="digested", digest_id=digest_id, updated_at=now)
            )

    # --- queueing and attempts ---------------------------------------------------------------

    async def claim_due(
        self, now: int, limit: int, requeue_after: int, per_user: int | None = None
    ) -> list[int]:
        stale = now - requeue_after
        not_queued = or_(deliveries.c.queued_at.is_(None), deliveries.c.queued_at < stale)
        async with self._write() as conn:
            in_flight = await self._in_flight(conn, stale) if per_user is not None else {}
            full = [user for user, count in in_flight.items() if per_user and count >= per_user]
            rows = (
                await conn.execute(
                    select(deliveries.c.id, deliveries.c.user_id)
                    .where(
                        or_(
                            and_(deliveries.c.status == "pending", deliveries.c.due_at <= now),
                            and_(
                                deliveries.c.status == "sending",
                                deliveries.c.lease_until < stale,
                            ),
                        ),
                        not_queued,
                        deliveries.c.user_id.not_in(full),
                    )
                    .order_by(deliveries.c.due_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            ids = _within_share(rows, in_flight, per_user)
            if ids:
                await conn.execute(
                    update(deliveries).where(deliveries.c.id.in_(ids)).values(queued_at=now)
                )
        return ids

    async def _in_flight(self, conn: AsyncConnection, stale: int) -> dict[str, int]:
        """Deliveries per user queued or being sent (by any worker) and not given up as lost."""
        rows = await conn.execute(
            select(deliveries.c.user_id, func.count())
            .where(
                deliveries.c.queued_at.is_not(None),
                deliveries.c.queued_at >= stale,
                deliveries.c.status.in_(("pending", "sending")),
            )
            .group_by(deliveries.c.user_id)
        )
        return {user: count for user, count in rows}

    async def start_attempt(
        self, delivery_id: int, now: int, lease: int
    ) -> DeliveryTask | Literal["busy"] | None:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id == delivery_id,
                        or_(
                            and_(deliveries.c.status == "pending", deliveries.c.due_at <= now),
                            and_(deliveries.c.status == "sending", deliveries.c.lease_until < now),
                        ),
                    )
                    .values(
                        status="sending",
                        attempts=deliveries.c.attempts + 1,
                        tries=deliveries.c.tries + 1,
                        lease_until=now + lease,
                        provider_status=None,
                        updated_at=now,
                    )
                    .returning(*deliveries.c)
                )
            ).first()
            if row is None:
                status = (
                    await conn.execute(
                        select(deliveries.c.status).where(deliveries.c.id == delivery_id)
                    )
                ).scalar()
                return "busy" if status == "sending" else None
            await conn.execute(
                update(delivery_attempts)
                .where(
                    delivery_attempts.c.delivery_id == delivery_id,
                    delivery_attempts.c.finished_at.is_(None),
                )
                .values(
                    finished_at=now,
                    outcome="interrupted",
                    detail="the worker stopped before the provider answered",
                )
            )
            await conn.execute(
                delivery_attempts.insert().values(
                    delivery_id=delivery_id, attempt=row.attempts, started_at=now, outcome="sending"
                )
            )
            return await self._task(conn, row)

    async def _task(self, conn: AsyncConnection, row: Any) -> DeliveryTask:
        notification: Notification | None = None
        content = None
        digest: tuple[Notification, ...] = ()
        if row.notification_id is not None:
            found = (
                await conn.execute(
                    select(notifications).where(notifications.c.id == row.notification_id)
                )
            ).one()
            notification, content = notification_of(found), found.content
        else:
            digest = tuple(
                notification_of(member)
                for member in await conn.execute(
                    select(notifications)
                    .join(deliveries, deliveries.c.notification_id == notifications.c.id)
                    .where(deliveries.c.digest_id == row.id)
                    .order_by(notifications.c.created_at, notifications.c.id)
                )
            )
        locale = (
            await conn.execute(
                select(preferences.c.locale).where(preferences.c.user_id == row.user_id)
            )
        ).scalar()
        task = DeliveryTask(
            delivery=delivery_of(row, read=False),
            tries=row.tries,
            notification=notification,
            content=content,
            locale=locale,
            digest=digest,
        )
        if row.channel == "push":
            push = (
                await conn.execute(
                    select(push_subscriptions).where(push_subscriptions.c.id == int(row.target))
                )
            ).first()
            return replace(task, push=None if push is None else push_subscription_of(push))
        if row.channel == "webhook":
            hook = (
                await conn.execute(select(webhooks).where(webhooks.c.id == int(row.target)))
            ).first()
            return replace(task, webhook=None if hook is None else webhook_of(hook))
        return task

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
        delivery = task.delivery
        new_status: Any = status
        if status == "sent":
            # A provider's report that came before this record wins over its "sent".
            provider_status = deliveries.c.provider_status
            new_status = case((provider_status.is_not(None), provider_status), else_=status)
        values: dict[str, Any] = {
            "status": new_status,
            "updated_at": now,
            "lease_until": None,
            "queued_at": None,
        }
        if due_at is not None:
            values["due_at"] = due_at
        if provider_id is not None:
            values["provider_id"] = provider_id
        if outcome not in READABLE_STATUSES:
            values["last_error"] = detail
        async with self._write() as conn:
            await conn.execute(
                update(delivery_attempts)
                .where(
                    delivery_attempts.c.delivery_id == delivery.id,
                    delivery_attempts.c.attempt == delivery.attempts,
                )
                .values(finished_at=now, outcome=outcome, detail=detail)
            )
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery.id,
                    deliveries.c.attempts == delivery.attempts,
                    deliveries.c.status == "sending",
                )
                .values(values)
            )
            if remove_target and task.push is not None:
                await conn.execute(
                    push_subscriptions.delete().where(push_subscriptions.c.id == task.push.id)
                )
            if remove_target and task.webhook is not None:
                await conn.execute(webhooks.delete().where(webhooks.c.id == task.webhook.id))
        return bool(result.rowcount)

    async def provider_report(
        self, delivery_id: int, created_at: int, channel: str, status: str, detail: str, now: int
    ) -> bool:
        # Only while sending or sent: a report never reopens a delivery that moved on.
        this = and_(
            deliveries.c.id == delivery_id,
            deliveries.c.created_at == created_at,
            deliveries.c.channel == channel,
            deliveries.c.status.in_(("sending", "sent")),
        )
        values: dict[str, Any] = {"provider_status": status, "updated_at": now}
        if status == "failed":
            values["last_error"] = detail
        async with self._write() as conn:
            found = await conn.execute(update(deliveries).where(this).values(values))
            await conn.execute(
                update(deliveries).where(this, deliveries.c.status == "sent").values(status=status)
            )
        return bool(found.rowcount)

    # --- the operator's view ----------------------------------------------------------------

    async def deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        conditions: list[ColumnElement[bool]] = []
        if query.status is not None:
            conditions.append(_status_is(query.status))
        if query.channel is not None:
            conditions.append(deliveries.c.channel == query.channel)
        if query.notification_id is not None:
            conditions.append(deliveries.c.notification_id == query.notification_id)
        if query.user is not None:
            conditions.append(deliveries.c.user_id == query.user)
        if query.before is not None:
            conditions.append(deliveries.c.id < query.before)
        stmt = _WITH_READ.where(*conditions).order_by(deliveries.c.id.desc()).limit(query.limit)
        async with self._read() as conn:
            return [delivery_of(row, row.read_at is not None) for row in await conn.execute(stmt)]

    async def delivery(self, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]] | None:
        async with self._read() as conn:
            row = (await conn.execute(_WITH_READ.where(deliveries.c.id == delivery_id))).first()
            if row is None:
                return None
            attempts = [
                DeliveryAttempt(a.attempt, a.started_at, a.finished_at, a.outcome, a.detail)
                for a in await conn.execute(
                    select(delivery_attempts)
                    .where(delivery_attempts.c.delivery_id == delivery_id)
                    .order_by(delivery_attempts.c.attempt)
                )
            ]
        return delivery_of(row, row.read_at is not None), attempts

    async def replay(self, delivery_id: int, now: int) -> Delivery | None:
        async with self._write() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.status == "failed")
                .values(
                    status="pending",
                    due_at=now,
                    tries=0,
                    queued_at=None,
                    lease_until=None,
                    reason="replayed from the dead-letter queue",
                    updated_at=now,
                )
            )
            row = (await conn.execute(_WITH_READ.where(deliveries.c.id == delivery_id))).first()
        return None if row is None else delivery_of(row, row.read_at is not None)

    async def delivery_backlog(self) -> dict[tuple[str, str], int]:
        stmt = (
            select(deliveries.c.channel, deliveries.c.status, func.count())
            .where(deliveries.c.status.in_(BACKLOG_STATUSES))
            .group_by(deliveries.c.channel, deliveries.c.status)
        )
        async with self._read() as conn:
            return {(channel, status): count for channel, status, count in await conn.execute(stmt)}

    async def delivery_queue(self, now: int) -> tuple[int, int | None]:
        due = and_(deliveries.c.status == "pending", deliveries.c.due_at <= now)
        stmt = select(func.count(), func.min(deliveries.c.due_at)).where(due)
        async with self._read() as conn:
            count, oldest = (await conn.execute(stmt)).one()
        return count, oldest


def _within_share(
    rows: Sequence[Any], in_flight: dict[str, int], per_user: int | None
) -> list[int]:
    """The ids of `rows` (oldest first) that keep each user within `per_user` in flight."""
    if per_user is None:
        return [row.id for row in rows]
    taken = dict(in_flight)
    ids = []
    for row in rows:
        if taken.get(row.user_id, 0) < per_user:
            taken[row.user_id] = taken.get(row.user_id, 0) + 1
            ids.append(row.id)
    return ids


_WITH_READ = select(*deliveries.c, inbox.c.read_at).select_from(
    deliveries.outerjoin(inbox, _INBOX_OF_DELIVERY)
)


def _status_is(status: str) -> ColumnElement[bool]:
    """`read` is derived: a sent delivery whose notification the user has read."""
    readable = deliveries.c.status.in_(READABLE_STATUSES)
    if status == "read":
        return and_(readable, inbox.c.read_at.is_not(None))
    if status in READABLE_STATUSES:
        return and_(deliveries.c.status == status, inbox.c.read_at.is_(None))
    return deliveries.c.status == status


def delivery_of(row: Any, read: bool) -> Delivery:
    status = "read" if read and row.status in READABLE_STATUSES else row.status
    return Delivery(
        id=row.id,
        notification_id=row.notification_id,
        user=row.user_id,
        channel=row.channel,
        target=row.target,
        status=status,
        reason=row.reason,
        attempts=row.attempts,
        due_at=row.due_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_error=row.last_error,
        provider_id=row.provider_id,
        digest_id=row.digest_id,
        read=read,
    )


_: type[DeliveryStore] = DeliveryQueries
