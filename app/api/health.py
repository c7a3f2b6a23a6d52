"""Liveness and readiness: the operator's and the load balancer's view of a node."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, services
from herald_server.errors import BusUnavailable, StoreUnavailable


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Store and bus reported apart: a node without its bus still serves (from the store).
    A background loop that keeps crashing makes the node unready: it no longer does its job,
    and the load balancer should send its clients to a node that does."""
    found = services(request)
    crashing = found.supervisor.crashing()
    report: dict[str, object] = {"status": "ready", "store": "up", "bus": "up"}
    try:
        await found.store.ping()
    except StoreUnavailable:
        report.update(status="unavailable", store="down")
    try:
        await found.bus.ping()
    except BusUnavailable:
        report.update(bus="down")
    report["loops"] = {
        name: "crashing" if name in crashing else "up" for name in found.supervisor.loops()
    }
    if crashing:
        report["status"] = "unavailable"
    return json_response(report, 200 if report["status"] == "ready" else 503)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
