"""Every request gets an id, an access log line and, unless it is a stream, a place in the
latency histogram: one pure ASGI middleware, outside routing, so refusals and errors are
counted too.

The id is the caller's `X-Request-ID` when it is a plausible one (so a request can be followed
through a proxy), else a new one; it is sent back in `X-Request-ID` and stamped on every log
line written while the request is served.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from prometheus_client import Histogram
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald_server.logs import REQUEST_ID

access = logging.getLogger("herald.access")
INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Streams last as long as their connection: their "latency" would drown everyone else's.
STREAMS = frozenset({"/api/stream", "/api/ws"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def latency_histogram(registry: object) -> Histogram:
    return Histogram(
        "herald_http_request_duration_seconds",
        "Time from a request's arrival to its answer's end, per route and status",
        labelnames=("method", "route", "status"),
        buckets=BUCKETS,
        registry=registry,  # type: ignore[arg-type]
    )


class Observer:
    def __init__(
        self, app: ASGIApp, latency: Histogram, routes: Callable[[], list[BaseRoute]]
    ) -> None:
        """`routes`: the app's routes, read once on first use to name each endpoint's route
        template (a path with its ids in would make a label per notification)."""
        self.app = app
        self._latency = latency
        self._routes = routes
        self._templates: dict[object, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def answer(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and status == 500:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = self._route(scope)
        method = scope.get("method", "WS")
        access.info(
            "%s %s %s %.1f ms",
            method,
            scope["path"],
            status,
            seconds * 1000,
            extra={
                "http": {
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                }
            },
        )
        if route not in STREAMS:
            self._latency.labels(method, route, str(status)).observe(seconds)

    def _route(self, scope: Scope) -> str:
        if self._templates is None:
            self._templates = _templates(self._routes())
        return self._templates.get(scope.get("endpoint"), "unmatched")


def _templates(routes: list[BaseRoute]) -> dict[object, str]:
    found: dict[object, str] = {}
    for route in routes:
        if isinstance(route, Route | WebSocketRoute):
            found[route.endpoint] = route.path
        elif isinstance(route, Mount):
            found[route.app] = route.path
    return found


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if INCOMING_ID.fullmatch(text) else None
    return None
