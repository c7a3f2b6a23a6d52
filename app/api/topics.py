"""Topics: any user may subscribe to a topic by name; publishing to one needs the publish scope."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, path_name, principal, read_json, services
from herald_server.api.schemas import EmptyBody
from herald_server.errors import NotFound
from herald_server.models import now_ms

TOPIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _topic(request: Request) -> str:
    return path_name(request, "name", TOPIC_NAME, "topic")


async def list_topics(request: Request) -> Response:
    caller = await principal(request)
    found = await services(request).store.topics(caller.sub)
    items = [
        {"name": t.name, "subscribed": t.subscribed, "subscribers": t.subscribers} for t in found
    ]
    return json_response({"items": items})


async def subscribe(request: Request) -> Response:
    caller = await principal(request)
    name = _topic(request)
    await read_json(request, EmptyBody, optional=True)
    found = services(request)
    limit = found.settings.max_topics_per_user
    created = await found.store.subscribe(caller.sub, name, now_ms(), limit)
    return json_response({"topic": name, "subscribed": True}, 201 if created else 200)


async def unsubscribe(request: Request) -> Response:
    caller = await principal(request)
    name = _topic(request)
    if not await services(request).store.unsubscribe(caller.sub, name):
        raise NotFound(f"not subscribed to {name!r}")
    return Response(status_code=204)


routes = [
    Route("/api/topics", list_topics, methods=["GET"]),
    Route("/api/topics/{name}/subscription", subscribe, methods=["PUT"]),
    Route("/api/topics/{name}/subscription", unsubscribe, methods=["DELETE"]),
]
