"""What SSE and WebSocket share before the first event: who is asking, and from where on."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.auth import bearer
from app.core.render import parse_cursor
from app.errors import Unauthenticated
from app.models import Principal
from app.services import services_of


async def stream_principal(conn: HTTPConnection) -> Principal:
    """A stream token in `?token=` (EventSource cannot set headers), else a bearer token.

    Never both, and never neither: no stream silently downgrades to anonymous.
    """
    auth = services_of(conn).auth
    query_token = conn.query_params.get("token")
    if query_token:
        return await auth.authenticate_stream(query_token)
    token = bearer(conn.headers.get("authorization"))
    if token is None:
        raise Unauthenticated("pass ?token=<stream token> or Authorization: Bearer <token>")
    return await auth.authenticate(token)


def resume_cursor(conn: HTTPConnection) -> int | None:
    """Where the client left off: the Last-Event-ID header wins over `?last_event_id=`."""
    raw = conn.headers.get("last-event-id") or conn.query_params.get("last_event_id")
    return parse_cursor(raw)
