"""The operator's view for the admin page: this node's live figures and recent notifications.

Both need the admin scope. Figures are this node's own, like /metrics: with several nodes,
each answers for itself (scrape /metrics for the cluster's sum).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api._http import json_response, limit_param, principal, services
from app.bus import BusStats
from app.core.render import notification_body, parse_cursor
from app.errors import Forbidden
from app.models import SCOPE_ADMIN, iso

RECENT_LIMIT = 50
MAX_RECENT_LIMIT = 100


async def _admin(request: Request) -> None:
    caller = await principal(request)
    if not caller.can(SCOPE_ADMIN):
        raise Forbidden(f"this needs the {SCOPE_ADMIN} scope")


async def stats(request: Request) -> Response:
    await _admin(request)
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
    await _admin(request)
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


routes = [
    Route("/api/admin/stats", stats, methods=["GET"]),
    Route("/api/admin/notifications", recent, methods=["GET"]),
]
