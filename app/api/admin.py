"""The operator's view for the admin page: this node's live figures, recent notifications and
the audit log of admin actions.

All need the admin scope. Figures are this node's own, like /metrics: with several nodes,
each answers for itself (scrape /metrics for the cluster's sum).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, limit_param, principal_with, services
from herald_server.api.schemas import AUDIT_ACTION
from herald_server.bus import BusStats
from herald_server.core.params import parse_cursor
from herald_server.core.render import notification_body
from herald_server.errors import InvalidParameter
from herald_server.models import SCOPE_ADMIN, iso

RECENT_LIMIT = 50
MAX_RECENT_LIMIT = 100
AUDIT_ACTION_RE = re.compile(AUDIT_ACTION)


async def stats(request: Request) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    found = services(request)
    hub, bus = found.hub, found.bus
    body: dict[str, object] = {
        "connections": hub.connections,
        "users_connected": hub.users_connected,
        "events_out": hub.frames_out,
        "replays": hub.replays,
        "resets": hub.resets,
    }
    if isinstance(bus, BusStats):
        body["bus"] = {
            "events_in": bus.events_in,
            "events_out": bus.events_out,
            "lag_ms": bus.lag_ms,
        }
    return json_response(body, headers={"Cache-Control": "no-store"})


async def recent(request: Request) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    before = parse_cursor(request.query_params.get("before"))
    limit = limit_param(request, RECENT_LIMIT, MAX_RECENT_LIMIT)
    sent = await services(request).store.recent(limit, before)
    items = [
        {
            **notification_body(entry.notification),
            "publisher": entry.publisher,
            "recipients": entry.recipients,
            "read": entry.read,
            "send_at": iso(entry.send_at),
        }
        for entry in sent
    ]
    next_cursor = items[-1]["id"] if len(items) == limit else None
    return json_response({"items": items, "next_cursor": next_cursor})


async def audit(request: Request) -> Response:
    """Newest first, paged back with `before`; `action` (e.g. template.put) narrows it."""
    await principal_with(request, SCOPE_ADMIN)
    before = parse_cursor(request.query_params.get("before"))
    limit = limit_param(request, RECENT_LIMIT, MAX_RECENT_LIMIT)
    action = request.query_params.get("action")
    if action is not None and not AUDIT_ACTION_RE.fullmatch(action):
        raise InvalidParameter("action looks like template.put")
    entries = await services(request).store.audit_entries(limit, before, action)
    items = [
        {
            "id": str(entry.id),
            "at": iso(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "request_id": entry.request_id,
            "detail": entry.detail,
        }
        for entry in entries
    ]
    next_cursor = items[-1]["id"] if len(items) == limit else None
    return json_response({"items": items, "next_cursor": next_cursor})


routes = [
    Route("/api/admin/stats", stats, methods=["GET"]),
    Route("/api/admin/notifications", recent, methods=["GET"]),
    Route("/api/admin/audit", audit, methods=["GET"]),
]
