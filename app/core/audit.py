"""Admin actions, recorded where an operator looks for them: a row in the audit log (read
through `GET /api/admin/audit`) and a log line carrying `audit`, both with the request's id,
so the row leads to every other line the request logged."""

from __future__ import annotations

import logging
from collections.abc import Callable

from herald_server.logs import REQUEST_ID
from herald_server.models import now_ms
from herald_server.store import AuditStore

log = logging.getLogger("herald.audit")


class Auditor:
    def __init__(self, store: AuditStore, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self, actor: str, action: str, target: str, detail: dict[str, object] | None = None
    ) -> None:
        """Called once the action has succeeded: the log holds what changed, not attempts."""
        detail = detail or {}
        await self._store.record_audit(
            self._clock(), actor, action, target, REQUEST_ID.get(), detail
        )
        entry = {"actor": actor, "action": action, "target": target, "detail": detail}
        log.info("%s by %s on %s", action, actor, target, extra={"audit": entry})
