"""Stream tokens: what a page puts in `?token=`, since EventSource cannot send headers.

Short-lived and single-purpose (they open streams and nothing else), so a token that leaks
through a URL in a log is worth little (docs/concepts.md, stream tokens).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import (
    json_response,
    path_user,
    principal,
    principal_with,
    read_json,
    services,
)
from herald_server.api.schemas import EmptyBody
from herald_server.core.revocation import revoke_streams
from herald_server.models import SCOPE_ADMIN, iso, now_ms


async def stream_token(request: Request) -> Response:
    """A short-lived token for `?token=`, since EventSource cannot send headers."""
    caller = await principal(request)
    await read_json(request, EmptyBody, optional=True)
    token, expires_at = services(request).auth.issue_stream_token(caller)
    return json_response({"token": token, "expires_at": iso(expires_at)}, 201)


async def revoke_mine(request: Request) -> Response:
    """Sign out everywhere: the caller's stream tokens are refused and their streams end."""
    caller = await principal(request)
    await read_json(request, EmptyBody, optional=True)
    found = services(request)
    await revoke_streams(found.store, found.bus, caller.sub, now_ms())
    return Response(status_code=204)


async def revoke_users(request: Request) -> Response:
    """The same for any user, by an admin (a lost device, a departing employee)."""
    caller = await principal_with(request, SCOPE_ADMIN)
    user = path_user(request)
    await read_json(request, EmptyBody, optional=True)
    found = services(request)
    await revoke_streams(found.store, found.bus, user, now_ms())
    await found.audit.record(caller.sub, "streams.revoke", user)
    return Response(status_code=204)


routes = [
    Route("/api/stream/token", stream_token, methods=["POST"]),
    Route("/api/stream/revoke", revoke_mine, methods=["POST"]),
    Route("/api/admin/users/{user}/revoke-streams", revoke_users, methods=["POST"]),
]
