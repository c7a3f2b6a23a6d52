"""The audit log of admin actions, and per-user stream revocation: small appends and point
reads, apart from the hot publish path."""

from __future__ import annotations

from sqlalchemy import select

from herald_server import codec
from herald_server.models import AuditEntry
from herald_server.store.base import SqlBase
from herald_server.store.tables import audit_log, users


class AuditQueries(SqlBase):
    async def record_audit(
        self,
        at: int,
        actor: str,
        action: str,
        target: str,
        request_id: str | None,
        detail: dict[str, object],
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                audit_log.insert().values(
                    at=at,
                    actor=actor,
                    action=action,
                    target=target,
                    request_id=request_id,
                    detail=codec.dumps_str(detail),
                )
            )

    async def audit_entries(
        self, limit: int, before: int | None, action: str | None
    ) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit_log.c.id < before)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEntry(
                id=row.id,
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                request_id=row.request_id,
                detail=codec.loads(row.detail),
            )
            for row in rows
        ]

    async def revoke_streams(self, user: str, at: int) -> None:
        """Refuse the user's stream tokens issued up to `at`. A user Herald has not seen yet
        gets a row, so a token minted before their first stream is refused too."""
        async with self._write() as conn:
            await conn.execute(
                self._insert(users)
                .values(user_id=user, last_seq=0, created_at=at, streams_revoked_at=at)
                .on_conflict_do_update(
                    index_elements=[users.c.user_id], set_={"streams_revoked_at": at}
                )
            )

    async def streams_revoked_at(self, user: str) -> int | None:
        async with self._read() as conn:
            revoked: int | None = (
                await conn.execute(
                    select(users.c.streams_revoked_at).where(users.c.user_id == user)
                )
            ).scalar()
        return revoked
