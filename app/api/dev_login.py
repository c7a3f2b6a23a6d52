"""POST /api/dev/login: a token for any user, so the demo page can sign in without an IdP.

It is what `herald token` does, over HTTP: on by default in development, refused in
production (HERALD_DEV_LOGIN). A real app mints its users' tokens itself (README).

Even in development it answers only to this machine: a node started with `--host 0.0.0.0`
(as the container does) would otherwise hand an admin token to anyone on the network. A request
from a loopback address without a forwarding header is local; one relayed by a proxy is not,
whatever address the proxy connects from. HERALD_INSECURE_DEV_LOGIN_FROM_NETWORK lifts this.
"""

from __future__ import annotations

import ipaddress
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, read_json, services
from herald_server.api.schemas import EmptyBody
from herald_server.auth import issue_token
from herald_server.errors import InvalidParameter, NotFound
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH, iso, now_ms

DEV_TOKEN_TTL = 3600
KNOWN_SCOPES = frozenset({SCOPE_PUBLISH, SCOPE_ADMIN})
_USER = re.compile(r"[A-Za-z0-9._@-]{1,100}")


async def dev_login(request: Request) -> Response:
    found = services(request)
    if not found.settings.dev_login_enabled:
        raise NotFound("dev login is off (HERALD_DEV_LOGIN)")
    if not (found.settings.insecure_dev_login_from_network or from_this_machine(request)):
        raise NotFound("dev login answers only to clients on this machine's loopback address")
    await read_json(request, EmptyBody, optional=True)
    sub = request.query_params.get("sub", "")
    if not _USER.fullmatch(sub):
        raise InvalidParameter("sub must be 1-100 letters, digits or ._@-")
    scopes = request.query_params.get("scope", "").split()
    unknown = set(scopes) - KNOWN_SCOPES
    if unknown:
        raise InvalidParameter(f"unknown scope {sorted(unknown)[0][:60]!r}")
    token = issue_token(found.settings, sub, scopes, DEV_TOKEN_TTL)
    expires_at = now_ms() + DEV_TOKEN_TTL * 1000
    return json_response(
        {"token": token, "sub": sub, "scopes": scopes, "expires_at": iso(expires_at)}, 201
    )


# Headers a proxy adds: a request carrying one was relayed from elsewhere.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def from_this_machine(request: Request) -> bool:
    """Whether the client connected from a loopback address, directly."""
    if request.client is None or any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


routes = [Route("/api/dev/login", dev_login, methods=["POST"])]
