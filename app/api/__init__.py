"""JSON over HTTP: the routes, and every error rendered as application/problem+json."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from herald_server import codec
from herald_server.api import (
    admin,
    contacts,
    deliveries,
    dev_login,
    health,
    notifications,
    openapi,
    preferences,
    push,
    sms_status,
    stream_token,
    templates,
    topics,
    unsubscribe,
    webhooks,
)
from herald_server.api._http import problem_response
from herald_server.errors import (
    InternalError,
    MethodNotAllowed,
    NotFound,
    Problem,
    ServiceUnavailable,
    StoreUnavailable,
)

log = logging.getLogger(__name__)


def routes() -> list[BaseRoute]:
    return [
        *notifications.routes,
        *stream_token.routes,
        *topics.routes,
        *preferences.routes,
        *contacts.routes,
        *push.routes,
        *webhooks.routes,
        *templates.routes,
        *unsubscribe.routes,
        *sms_status.routes,
        *admin.routes,
        *deliveries.routes,
        *dev_login.routes,
        *health.routes,
        *openapi.routes,
    ]


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return problem_response(NotFound(f"no route for {request.url.path}"))
    if exc.status_code == 405:
        problem = MethodNotAllowed(f"{request.method} is not allowed here")
        problem.headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return problem_response(problem)
    document = {"type": "about:blank", "title": exc.detail, "status": exc.status_code}
    return Response(codec.dumps(document), exc.status_code, media_type="application/problem+json")


def _allowed_methods(request: Request) -> set[str]:
    """Every method some route serves at this path: one path may span several routes, and
    Starlette's own 405 names only the first one's (RFC 9110 wants them all)."""
    allowed: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match == Match.PARTIAL:
                allowed |= route.methods
    return allowed


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug is still answered in the contract's format; uvicorn logs the traceback."""
    return problem_response(InternalError("an unexpected error; it has been logged"))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable: %s", exc)
    return problem_response(ServiceUnavailable("the store is unavailable"))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left, or was cut for sending its body too slowly (herald_server.server), while its
    body was read: nobody hears an answer, and it is no bug to log a traceback for."""
    return Response(status_code=400)


exception_handlers = {
    Problem: _problem,
    ClientDisconnect: _client_gone,
    HTTPException: _http,
    StoreUnavailable: _unavailable,
    Exception: _unexpected,
}
