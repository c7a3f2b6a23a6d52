"""What SSE and WebSocket share before the first event: who is asking, and from where on."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from herald_server.auth import bearer
from herald_server.core.params import parse_cursor
from herald_server.errors import OriginNotAllowed, Unauthenticated
from herald_server.models import Principal
from herald_server.services import services_of


async def stream_principal(conn: HTTPConnection) -> Principal:
    """A stream token in `?token=` (EventSource cannot set headers), else a bearer token.

    Never both, and never neither: no stream silently downgrades to anonymous.
    """
    found = services_of(conn)
    query_token = conn.query_params.get("token")
    if query_token:
        caller = await found.auth.authenticate_stream(query_token)
        revoked = await found.store.streams_revoked_at(caller.sub)
        # iat has whole seconds: a token minted in the second of a revocation is refused too.
        if revoked is not None and caller.issued_at is not None and caller.issued_at <= revoked:
            raise Unauthenticated("this stream token was revoked; get a new one")
        return caller
    token = bearer(conn.headers.get("authorization"))
    if token is None:
        raise Unauthenticated("pass ?token=<stream token> or Authorization: Bearer <token>")
    return await found.auth.authenticate(token)


def resume_cursor(conn: HTTPConnection) -> int | None:
    """Where the client left off: the Last-Event-ID header wins over `?last_event_id=`."""
    raw = conn.headers.get("last-event-id") or conn.query_params.get("last_event_id")
    return parse_cursor(raw)


def check_origin(conn: HTTPConnection) -> None:
    """Browsers do not apply CORS to WebSockets: a page on any origin could open one with a
    token it holds. So a browser's `Origin` must be Herald's own or a configured one; clients
    that send none (servers, mobile apps) are not browsers and pass."""
    origin = conn.headers.get("origin")
    if origin is None:
        return
    allowed = services_of(conn).settings.cors_origins
    same = origin.split("://", 1)[-1] == conn.headers.get("host")
    if not (same or "*" in allowed or origin.rstrip("/") in allowed):
        raise OriginNotAllowed(f"{origin[:200]} is not an allowed origin (HERALD_CORS_ORIGINS)")
