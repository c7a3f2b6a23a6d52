"""What users and admins configure: preferences and channel switches, type defaults, contacts,
push subscriptions, webhooks and templates. Small rows, written rarely, read by the router."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_server import codec
from herald_server.errors import PushEndpointTaken, TooManyTargets
from herald_server.models import (
    ADMIN_OWNER,
    Contact,
    EscalationStep,
    Preferences,
    PushSubscriptionRecord,
    QuietHours,
    Switches,
    Template,
    TypeDefaults,
    Webhook,
)
from herald_server.store import ProfileStore
from herald_server.store.base import SqlBase
from herald_server.store.tables import (
    channel_switches,
    contacts,
    notification_types,
    preferences,
    push_subscriptions,
    templates,
    users,
    webhooks,
)


class ProfileQueries(SqlBase):
    # --- preferences and switches ---------------------------------------------------------

    async def preferences(self, user: str) -> Preferences:
        async with self._read() as conn:
            row = (
                await conn.execute(select(preferences).where(preferences.c.user_id == user))
            ).first()
            switches = await self._switches(conn, user)
        return Preferences(switches=switches) if row is None else preferences_of(row, switches)

    async def _switches(self, conn: AsyncConnection, owner: str) -> Switches:
        rows = await conn.execute(
            select(channel_switches.c.type, channel_switches.c.channel, channel_switches.c.enabled)
            .where(channel_switches.c.owner == owner)
            .order_by(channel_switches.c.type, channel_switches.c.channel)
        )
        return group_switches((type_, channel, enabled) for type_, channel, enabled in rows)

    async def set_preferences(self, user: str, chosen: Preferences, now: int) -> None:
        quiet = chosen.quiet_hours
        values = {
            "muted": int(chosen.muted),
            "timezone": chosen.timezone,
            "locale": chosen.locale,
            "quiet_start": None if quiet is None else quiet.start,
            "quiet_end": None if quiet is None else quiet.end,
            "digest": chosen.digest,
            "digest_at": chosen.digest_at,
            "updated_at": now,
        }
        async with self._write() as conn:
            await conn.execute(
                self._insert(preferences)
                .values(user_id=user, **values)
                .on_conflict_do_update(index_elements=[preferences.c.user_id], set_=values)
            )
            await self._replace_switches(conn, user, None, chosen.switches)

    async def _replace_switches(
        self, conn: AsyncConnection, owner: str, only_type: str | None, switches: Switches
    ) -> None:
        delete = channel_switches.delete().where(channel_switches.c.owner == owner)
        if only_type is not None:
            delete = delete.where(channel_switches.c.type == only_type)
        await conn.execute(delete)
        rows = [
            {"owner": owner, "type": type_, "channel": channel, "enabled": int(enabled)}
            for type_, channels in switches.items()
            for channel, enabled in channels.items()
        ]
        if rows:
            await conn.execute(channel_switches.insert(), rows)

    async def set_switch(self, owner: str, type: str, channel: str, enabled: bool) -> None:
        async with self._write() as conn:
            await conn.execute(
                self._insert(channel_switches)
                .values(owner=owner, type=type, channel=channel, enabled=int(enabled))
                .on_conflict_do_update(
                    index_elements=[
                        channel_switches.c.owner,
                        channel_switches.c.type,
                        channel_switches.c.channel,
                    ],
                    set_={"enabled": int(enabled)},
                )
            )

    # --- type defaults (the admin's) -------------------------------------------------------

    async def type_defaults(self) -> list[TypeDefaults]:
        async with self._read() as conn:
            switches = await self._switches(conn, ADMIN_OWNER)
            rows = {row.type: row for row in await conn.execute(select(notification_types))}
        return [
            TypeDefaults(
                type_,
                switches.get(type_, {}),
                escalation_of(rows[type_].escalation) if type_ in rows else (),
                rows[type_].updated_at if type_ in rows else 0,
            )
            for type_ in sorted(set(switches) | set(rows))
        ]

    async def set_type_defaults(self, defaults: TypeDefaults, now: int) -> bool:
        escalation = codec.dumps_str(
            [
                {"after": step.after, "unless": step.unless, "channel": step.channel}
                for step in defaults.escalation
            ]
        )
        async with self._write() as conn:
            existed = await self._delete_type_defaults(conn, defaults.type)
            await self._replace_switches(
                conn, ADMIN_OWNER, defaults.type, {defaults.type: defaults.channels}
            )
            await conn.execute(
                notification_types.insert().values(
                    type=defaults.type, escalation=escalation, updated_at=now
                )
            )
        return not existed

    async def delete_type_defaults(self, type: str) -> bool:
        async with self._write() as conn:
            return await self._delete_type_defaults(conn, type)

    async def _delete_type_defaults(self, conn: AsyncConnection, type_: str) -> bool:
        removed = await conn.execute(
            notification_types.delete().where(notification_types.c.type == type_)
        )
        switches = await conn.execute(
            channel_switches.delete().where(
                channel_switches.c.owner == ADMIN_OWNER, channel_switches.c.type == type_
            )
        )
        return bool(removed.rowcount or switches.rowcount)

    # --- contacts --------------------------------------------------------------------------

    async def contact(self, user: str) -> Contact:
        async with self._read() as conn:
            row = (await conn.execute(select(contacts).where(contacts.c.user_id == user))).first()
        return Contact() if row is None else Contact(row.email, row.phone)

    async def set_contact(self, user: str, contact: Contact, now: int) -> bool:
        values = {"email": contact.email, "phone": contact.phone, "updated_at": now}
        async with self._write() as conn:
            existed = (
                await conn.execute(select(contacts.c.user_id).where(contacts.c.user_id == user))
            ).first()
            await conn.execute(
                self._insert(contacts)
                .values(user_id=user, **values)
                .on_conflict_do_update(index_elements=[contacts.c.user_id], set_=values)
            )
        return existed is None

    async def delete_contact(self, user: str) -> bool:
        async with self._write() as conn:
            result = await conn.execute(contacts.delete().where(contacts.c.user_id == user))
        return bool(result.rowcount)

    # --- push subscriptions ----------------------------------------------------------------

    async def push_subscriptions(self, user: str) -> list[PushSubscriptionRecord]:
        stmt = (
            select(push_subscriptions)
            .where(push_subscriptions.c.user_id == user)
            .order_by(push_subscriptions.c.id)
        )
        async with self._read() as conn:
            return [push_subscription_of(row) for row in await conn.execute(stmt)]

    async def add_push_subscription(
        self, user: str, endpoint: str, p256dh: str, auth: str, now: int, limit: int | None = None
    ) -> tuple[PushSubscriptionRecord, bool]:
        async with self._write() as conn:
            await self._hold_owner(conn, user, now)
            known = await conn.execute(
                select(push_subscriptions.c.id).where(push_subscriptions.c.endpoint == endpoint)
            )
            if known.first() is None:
                await _check_target_limit(conn, push_subscriptions, user, limit)
                # Or nothing: another user's registration of the endpoint may commit first.
                inserted = (
                    await conn.execute(
                        self._insert(push_subscriptions)
                        .values(
                            user_id=user,
                            endpoint=endpoint,
                            p256dh=p256dh,
                            auth=auth,
                            created_at=now,
                        )
                        .on_conflict_do_nothing()
                        .returning(*push_subscriptions.c)
                    )
                ).first()
                if inserted is not None:
                    return push_subscription_of(inserted), True
            # Only the user who holds the endpoint may refresh its keys: moving it would hand
            # another user's pushes to whoever learnt its URL.
            row = (
                await conn.execute(
                    update(push_subscriptions)
                    .where(
                        push_subscriptions.c.endpoint == endpoint,
                        push_subscriptions.c.user_id == user,
                    )
                    .values(p256dh=p256dh, auth=auth)
                    .returning(*push_subscriptions.c)
                )
            ).first()
        if row is None:
            raise PushEndpointTaken(
                "this endpoint is registered to another user; unsubscribe the browser and"
                " subscribe again for a fresh endpoint"
            )
        return push_subscription_of(row), False

    async def remove_push_subscription(self, user: str, endpoint: str) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                push_subscriptions.delete().where(
                    push_subscriptions.c.user_id == user, push_subscriptions.c.endpoint == endpoint
                )
            )
        return bool(result.rowcount)

    # --- webhooks --------------------------------------------------------------------------

    async def webhooks(self, user: str | None) -> list[Webhook]:
        stmt = select(webhooks).order_by(webhooks.c.id)
        if user is not None:
            stmt = stmt.where(webhooks.c.user_id == user)
        async with self._read() as conn:
            return [webhook_of(row) for row in await conn.execute(stmt)]

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
        async with self._write() as conn:
            await self._hold_owner(conn, user, now)
            await _check_target_limit(conn, webhooks, user, limit)
            row = (
                await conn.execute(
                    webhooks.insert()
                    .values(
                        user_id=user,
                        url=url,
                        secret=secret,
                        types=None if types is None else codec.dumps_str(types),
                        created_by=created_by,
                        created_at=now,
                    )
                    .returning(*webhooks.c)
                )
            ).one()
        return webhook_of(row)

    async def remove_webhook(self, webhook_id: int, user: str | None) -> bool:
        stmt = webhooks.delete().where(webhooks.c.id == webhook_id)
        if user is not None:
            stmt = stmt.where(webhooks.c.user_id == user)
        async with self._write() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def _hold_owner(self, conn: AsyncConnection, user: str, now: int) -> None:
        """Lock the user's row until the transaction ends, so that two registrations of theirs
        at once cannot both pass the count below the limit (SQLite's one writer does this
        by itself)."""
        await conn.execute(
            self._insert(users)
            .values(user_id=user, last_seq=0, created_at=now)
            .on_conflict_do_nothing()
        )
        await conn.execute(select(users.c.user_id).where(users.c.user_id == user).with_for_update())

    # --- templates -------------------------------------------------------------------------

    async def templates(self) -> list[Template]:
        async with self._read() as conn:
            rows = await conn.execute(select(templates).order_by(templates.c.key))
            return [template_of(row) for row in rows]

    async def template(self, key: str) -> Template | None:
        async with self._read() as conn:
            row = (await conn.execute(select(templates).where(templates.c.key == key))).first()
        return None if row is None else template_of(row)

    async def put_template(
        self, key: str, document: dict[str, object], by: str, now: int
    ) -> tuple[Template, bool]:
        values = {"document": codec.dumps_str(document), "updated_at": now, "updated_by": by}
        async with self._write() as conn:
            # One statement, so concurrent PUTs each get a version of their own.
            version = (
                await conn.execute(
                    self._insert(templates)
                    .values(key=key, version=1, **values)
                    .on_conflict_do_update(
                        index_elements=[templates.c.key],
                        set_={"version": templates.c.version + 1, **values},
                    )
                    .returning(templates.c.version)
                )
            ).scalar_one()
        return Template(key, version, dict(document), now, by), version == 1

    async def delete_template(self, key: str) -> bool:
        async with self._write() as conn:
            result = await conn.execute(templates.delete().where(templates.c.key == key))
        return bool(result.rowcount)


async def _check_target_limit(
    conn: AsyncConnection, table: Table, user: str, limit: int | None
) -> None:
    """Each target is one more request per notification the user receives: the limit bounds
    what one publish to them can make Herald send. None: no limit (tests of the store)."""
    if limit is None:
        return
    held = (
        await conn.execute(select(func.count()).select_from(table).where(table.c.user_id == user))
    ).scalar_one()
    if held >= limit:
        what = "webhooks" if table is webhooks else "push subscriptions"
        raise TooManyTargets(f"{user!r} has {held} {what}; at most {limit}")


def group_switches(rows: Any) -> Switches:
    """(type, channel, enabled) rows as type → channel → on."""
    switches: Switches = {}
    for type_, channel, enabled in rows:
        switches.setdefault(type_, {})[channel] = bool(enabled)
    return switches


def preferences_of(row: Any, switches: Switches) -> Preferences:
    quiet = None
    if row.quiet_start is not None and row.quiet_end is not None:
        quiet = QuietHours(row.quiet_start, row.quiet_end)
    return Preferences(
        muted=bool(row.muted),
        timezone=row.timezone,
        locale=row.locale,
        quiet_hours=quiet,
        digest=row.digest,
        digest_at=row.digest_at,
        switches=switches,
    )


def escalation_of(raw: str) -> tuple[EscalationStep, ...]:
    return tuple(
        EscalationStep(step["after"], step["unless"], step["channel"]) for step in codec.loads(raw)
    )


def push_subscription_of(row: Any) -> PushSubscriptionRecord:
    return PushSubscriptionRecord(
        row.id, row.user_id, row.endpoint, row.p256dh, row.auth, row.created_at
    )


def webhook_of(row: Any) -> Webhook:
    types = None if row.types is None else tuple(codec.loads(row.types))
    return Webhook(row.id, row.user_id, row.url, row.secret, types, row.created_by, row.created_at)


def template_of(row: Any) -> Template:
    return Template(row.key, row.version, codec.loads(row.document), row.updated_at, row.updated_by)


_: type[ProfileStore] = ProfileQueries
