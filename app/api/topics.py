"""Topics: public ones any user may join by name; private ones only the backend (the publish
scope) adds users to, or a user joins whose token's `topics` claim names it. Publishing to
either needs the publish scope.

An ordinary user never learns more than they may act on: private topics they are not in stay
out of their list and answer 404, and the list shows them no subscriber counts.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import (
    json_response,
    limit_param,
    path_name,
    path_user,
    principal,
    principal_with,
    read_json,
    services,
)
from herald_server.api.schemas import EmptyBody, TopicAccessBody
from herald_server.errors import InvalidParameter, NotFound
from herald_server.models import SCOPE_PUBLISH, Principal, Topic, now_ms

TOPIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A page is bounded like every other list; a cursor is the last name of the page before.
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


def _topic(request: Request) -> str:
    return path_name(request, "name", TOPIC_NAME, "topic")


def _after(request: Request) -> str | None:
    raw = request.query_params.get("after")
    if raw is not None and not TOPIC_NAME.fullmatch(raw):
        raise InvalidParameter("after must be a topic name, the next_cursor of a page")
    return raw


def _oversees(caller: Principal) -> bool:
    """Publishers and admins see every topic, with its subscriber count."""
    return caller.can(SCOPE_PUBLISH)


def _topic_out(topic: Topic, counts: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": topic.name,
        "subscribed": topic.subscribed,
        "private": topic.private,
    }
    if counts:
        out["subscribers"] = topic.subscribers
    return out


async def list_topics(request: Request) -> Response:
    caller = await principal(request)
    limit = limit_param(request, DEFAULT_LIMIT, MAX_LIMIT)
    every = _oversees(caller)
    found = await services(request).store.topics(
        caller.sub, _after(request), limit + 1, every=every, named=caller.topics
    )
    page = found[:limit]
    next_cursor = page[-1].name if len(found) > limit else None
    items = [_topic_out(topic, every) for topic in page]
    return json_response({"items": items, "next_cursor": next_cursor})


async def subscribe(request: Request) -> Response:
    caller = await principal(request)
    name = _topic(request)
    await read_json(request, EmptyBody, optional=True)
    found = services(request)
    limit = found.settings.max_topics_per_user
    entitled = _oversees(caller) or name in caller.topics
    created = await found.store.subscribe(caller.sub, name, now_ms(), limit, entitled=entitled)
    return json_response({"topic": name, "subscribed": True}, 201 if created else 200)


async def unsubscribe(request: Request) -> Response:
    caller = await principal(request)
    name = _topic(request)
    if not await services(request).store.unsubscribe(caller.sub, name):
        raise NotFound(f"not subscribed to {name!r}")
    return Response(status_code=204)


async def set_access(request: Request) -> Response:
    await principal_with(request, SCOPE_PUBLISH)
    name = _topic(request)
    body = await read_json(request, TopicAccessBody)
    created, topic = await services(request).store.set_access(name, body.private, now_ms())
    out = {"name": topic.name, "private": topic.private, "subscribers": topic.subscribers}
    return json_response(out, 201 if created else 200)


async def add_subscriber(request: Request) -> Response:
    await principal_with(request, SCOPE_PUBLISH)
    name, user = _topic(request), path_user(request)
    await read_json(request, EmptyBody, optional=True)
    created = await services(request).store.grant(name, user, now_ms())
    return json_response({"topic": name, "subscribed": True}, 201 if created else 200)


async def remove_subscriber(request: Request) -> Response:
    await principal_with(request, SCOPE_PUBLISH)
    name, user = _topic(request), path_user(request)
    if not await services(request).store.unsubscribe(user, name):
        raise NotFound(f"{user!r} is not subscribed to {name!r}")
    return Response(status_code=204)


routes = [
    Route("/api/topics", list_topics, methods=["GET"]),
    Route("/api/topics/{name}/subscription", subscribe, methods=["PUT"]),
    Route("/api/topics/{name}/subscription", unsubscribe, methods=["DELETE"]),
    Route("/api/topics/{name}/access", set_access, methods=["PUT"]),
    Route("/api/topics/{name}/subscribers/{user}", add_subscriber, methods=["PUT"]),
    Route("/api/topics/{name}/subscribers/{user}", remove_subscriber, methods=["DELETE"]),
]
