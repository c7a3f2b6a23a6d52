"""JSON over HTTP: the routes, and every error rendered as application/problem+json."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app import codec
from app.api import health, metrics, notifications, openapi, stream_token, topics
from app.api._http import problem_response
from app.errors import MethodNotAllowed, NotFound, Problem, ServiceUnavailable, StoreUnavailable

log = logging.getLogger(__name__)


def routes() -> list[BaseRoute]:
    return [
        *notifications.routes,
        *stream_token.routes,
        *topics.routes,
        *health.routes,
        *metrics.routes,
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
        problem.headers.update(exc.headers or {})
        return problem_response(problem)
    document = {"type": "about:blank", "title": exc.detail, "status": exc.status_code}
    return Response(codec.dumps(document), exc.status_code, media_type="application/problem+json")


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable: %s", exc)
    return problem_response(ServiceUnavailable("the store is unavailable"))


exception_handlers = {
    Problem: _problem,
    HTTPException: _http,
    StoreUnavailable: _unavailable,
}
