"""Stream tokens: what a page puts in `?token=`, since EventSource cannot send headers.

Short-lived and single-purpose (they open streams and nothing else), so a token that leaks
through a URL in a log is worth little (DESIGN.md).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api._http import json_response, principal, read_json, services
from app.api.schemas import EmptyBody
from app.models import iso


async def stream_token(request: Request) -> Response:
    """A short-lived token for `?token=`, since EventSource cannot send headers."""
    caller = await principal(request)
    await read_json(request, EmptyBody, optional=True)
    token, expires_at = services(request).auth.issue_stream_token(caller)
    return json_response({"token": token, "expires_at": iso(expires_at)}, 201)


routes = [Route("/api/stream/token", stream_token, methods=["POST"])]
